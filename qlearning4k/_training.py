"""One run of `Agent.train()`: the loop that plays, remembers and learns."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import signal
import sys
import threading
import time

import keras
import numpy as np

from qlearning4k._affinity import _OneCore
from qlearning4k._callback_list import WIN_WINDOW, CallbackList, Progress
from qlearning4k._gradient_queue import GradientQueue, non_finite_error
from qlearning4k._nstep import NStep
from qlearning4k._rollout import copies_of
from qlearning4k._saving import keras_seed_state, save_checkpoint, set_keras_seed_state
from qlearning4k._settings import Settings, step_config
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.history import History
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay


class _TrainingRun:
    """The state of one training run: games, call buffers, counters and logs.

    Each step plays one move in every running copy of the game, remembers the
    transitions, queues the step's gradient steps, and makes at most one
    compiled call. Queued gradient steps run when the next move of some copy
    needs Q-values (a random move needs none), when a game ends, or when the
    queue is full: the same batches in the same order on the same weights as
    one call per step, in fewer calls.
    """

    def __init__(self, agent, game, settings: Settings):
        self.agent = agent
        self.player = agent._player
        self.model = agent.model
        self.memory = agent.memory
        self.rng = agent.rng
        self.settings = settings
        self.fast = type(self.memory).sample is not Memory.sample
        if agent.distribution is not None and not self.fast:
            raise ValueError(
                "A distributional agent learns in its compiled step, from memories that "
                "implement sample() (as ExperienceReplay does); get_batch() targets are "
                f"Q-values. Received: {type(self.memory).__name__} with "
                f"distribution={agent.distribution!r}"
            )
        config = step_config(settings, game, self.memory, self.model)
        self.masked = config.masked
        self.learner = agent._learner(config)

        self._start_copies(game)
        nb_copies = self.nb_copies
        # The run's transitions, checked as the games give them, skip
        # remember()'s checks (once the memory is allocated), unless a
        # subclass remembers its own way.
        self.direct = isinstance(self.memory, ExperienceReplay) and type(self.memory).remember in (
            ExperienceReplay.remember,
            PrioritizedExperienceReplay.remember,
        )
        # Each call's gradient steps, then the Q-values of every copy's state.
        self.queue = GradientQueue(
            self.learner, self.memory, settings.gamma, nb_copies, self.states.shape[1:],
            self.states.dtype, settings.n_step,
        )  # fmt: skip
        self.nstep = (
            NStep(
                self.settings.n_step,
                self.settings.gamma,
                nb_copies,
                self.states.shape[1:],
                self.states.dtype,
                () if self.player.action_parts is None else (len(self.player.action_parts),),
            )
            if self.settings.n_step > 1 and not self.recurrent
            else None
        )
        self.batch_index = 0  # compiled calls with gradient steps, for batch-level callbacks

        # The epoch each copy plays; -1 once done (or, for the copies of a
        # vector game beyond nb_epoch, from the start).
        copies = np.arange(nb_copies)
        self.epoch_of = np.where(copies < self.settings.nb_epoch, copies, -1)
        self.everyone = np.ones(nb_copies, dtype=bool)
        self.by_steps = self.settings.total_timesteps is not None  # a budget of env steps
        self.budget = self.settings.total_timesteps if self.by_steps else sys.maxsize
        self.eps = np.array([self.settings.epsilon_of(e) if e >= 0 else 0.0 for e in self.epoch_of])
        if self.by_steps:
            self.eps[:] = self.settings.epsilon_at(0)
        # Target copies every N env steps, as Stable-Baselines3 counts them:
        # every N // nb_copies steps of all copies.
        interval = self.settings.target_update_interval
        self.copy_period = None if interval is None else max(interval // nb_copies, 1)
        self.target_due = False  # a copy comes before the next gradient steps
        self.started = min(nb_copies, self.settings.nb_epoch)
        self.finished, self.total_steps, self.step_count = 0, 0, 0
        self.loss_sum = np.zeros(nb_copies)
        self.nb_updates = np.zeros(nb_copies, dtype=np.int64)
        self.scores = np.zeros(nb_copies)
        self.steps = np.zeros(nb_copies, dtype=np.int64)
        self.wins = np.zeros(WIN_WINDOW)  # the last games' wins, a ring
        self.win_sum = 0  # of `wins`, kept as games end
        self.explore = None  # the next step's random moves, drawn after each step
        # The Q-values of `states` for the next moves, when a call gave them:
        # checkpoints keep them, as noise layers would draw anew for them.
        self.next_q = None
        self.resumed_ended = []

        self._start_logs(agent)

    def _start_copies(self, game) -> None:
        """The copies that play (`_rollout.Copies`): a vector game's own, or
        `nb_parallel` copies of a plain game, each with a generator of its own."""
        games = None
        if not isinstance(game, VectorGame):
            nb_copies = min(self.settings.nb_parallel, self.settings.nb_epoch)
            games = [game] + [copy.deepcopy(game) for _ in range(nb_copies - 1)]
            for clone in games[1:]:
                clone.rng = np.random.default_rng(self.rng.integers(2**63))
                clone.reset()
        self.copies = copies_of(game, self.player, games)
        self.games, self.nb_copies = self.copies.games, self.copies.nb_copies
        frames = self.copies.frames()
        self.states = np.repeat(frames[:, None], self.player.nb_frames, axis=1)  # first frames
        # A recurrent model acts at every move, random ones too: its state moves on.
        self.recurrent = self.player.recurrent is not None
        if self.recurrent:  # the memory's games in progress
            width = self.player.nb_actions if self.masked else None
            size = self.player.recurrent.state_size
            self.memory._start(self.states[:, 0], self.nb_copies, size, width)

    def _start_logs(self, agent) -> None:
        """The run's History, callbacks and progress bar."""
        self.history = History()
        self.callbacks = CallbackList(
            [*self.settings.user_callbacks, self.history],
            self.model,
            None if self.by_steps else self.settings.nb_epoch,
        )
        for callback in self.callbacks.agent_users:
            callback._set_agent(agent)
        # JAX keeps the weights inside the compiled step; callbacks may read them.
        self.sync = bool(self.settings.user_callbacks) and keras.backend.backend() == "jax"
        settings = self.settings
        self.progress = Progress(settings.verbose, self.by_steps, self.budget, settings.nb_epoch)

    # -- the loop -------------------------------------------------------------

    def run(self) -> History:
        if not self.settings.single_core:
            return self._run()
        learner = self.learner
        with _OneCore() as one_core:
            learner.single_core = one_core.core is not None  # None: not supported here
            learner.compiling = one_core.paused  # first calls compile on every core
            try:
                return self._run()
            finally:
                learner.single_core, learner.compiling = False, contextlib.nullcontext

    def _run(self) -> History:
        self.model.stop_training = False
        self.start = time.perf_counter()
        self.interrupted = False
        previous_handler = self._catch_interrupts()
        if self.fast:
            self.learner.begin()
        self.callbacks.on_train_begin()
        if self.recurrent and not self.step_count:  # a resumed run goes on with its games
            self.memory._begin_games()
        if self.settings.reset_memory and not self.step_count:
            self.memory.reset_memory()
        if self.resumed_ended:
            self._end_games(self.resumed_ended, save=False)
        if self.nb_copies == 1 and self.finished < self.settings.nb_epoch:
            self.callbacks.on_epoch_begin(self.finished)
        try:
            active = self._running()
            if self.explore is None:
                self.explore = self._draw_explore()
            q = self.next_q
            while (
                self.finished < self.settings.nb_epoch
                and self.total_steps < self.budget
                and not self.model.stop_training
                and not self.interrupted
            ):
                if q is None and (self.recurrent or not self._all(self.explore, active)):
                    q = self._q_values(self.states)
                next_states, ended = self._play(active, self.explore, q)
                self.step_count += 1
                if self.copy_period is not None and self.step_count % self.copy_period == 0:
                    self.target_due = True
                # With n-step returns the first transitions come n - 1 steps late.
                learning = (
                    self.finished >= self.settings.observe
                    and self.total_steps > self.settings.learning_starts
                    and len(self.memory) > 0
                )
                q = None
                if ended:
                    self._restart(ended, next_states)
                if learning and self.step_count % self.settings.train_freq == 0:
                    q = self._learn(active, next_states)
                # Decide the next moves now: a random one needs no Q-values,
                # so queued gradient steps may wait for a later call.
                going_on = self._running()
                self.explore = self._draw_explore()
                waits = not ended and not self.recurrent and self._all(self.explore, going_on)
                if self.queue.pending and not waits:
                    q = self._flush(active, next_states)
                self.states, self.next_q = next_states, q
                if ended:
                    self._end_games(ended)
                    if self.settings.reset_memory and self.finished < self.settings.nb_epoch:
                        self.memory.reset_memory()  # the next game starts afresh
                    if (
                        self.nb_copies == 1
                        and self.finished < self.settings.nb_epoch
                        and not self.model.stop_training
                    ):
                        self.callbacks.on_epoch_begin(self.finished)
                active = going_on
            if self.interrupted:
                self._stop_after_interrupt(active)
            elif self.by_steps and self.total_steps >= self.budget:
                self._end_budget(active)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if self.fast:
                self.learner.end()
        self.history.env_steps = int(self.total_steps)
        self.callbacks.on_train_end()
        if not self.by_steps:
            self.progress.finish(self.total_steps, self.finished)
        return self.history

    def _catch_interrupts(self):
        """Makes Ctrl-C stop training after the current step; returns the old handler.

        A second Ctrl-C interrupts at once. Only the main thread can do this.
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        signal.signal(signal.SIGINT, handler)
        return previous

    def _stop_after_interrupt(self, active) -> None:
        """After Ctrl-C: run the queued gradient steps, checkpoint, tell the user."""
        if self.queue.pending:
            self.next_q = self._flush(active, self.states)
        if self.settings.checkpoint:
            self._checkpoint_now()
        where = (
            f", checkpoint in {self.settings.checkpoint_path}" if self.settings.checkpoint else ""
        )
        print(f"\nInterrupted after {self.finished} games{where}.")

    def _end_budget(self, active) -> None:
        """At the end of the step budget: the queued gradient steps, the last checkpoint."""
        if self.queue.pending:
            self.next_q = self._flush(active, self.states)
        if self.settings.checkpoint:
            self._checkpoint_now()
        self.progress.finish(self.total_steps, self.finished)

    def _checkpoint_now(self) -> None:
        """Checkpoints the run between two steps."""
        if self.fast:
            self.learner.end()
        self._save_checkpoint([])
        if self.fast:
            self.learner.begin()

    def _save_checkpoint(self, ended) -> None:
        settings = self.settings
        save_checkpoint(
            self.agent, settings.checkpoint_path, self._run_state(ended), settings.keep_checkpoints
        )

    def _draw_explore(self) -> np.ndarray:
        """Which copies move at random next: `(nb_copies,)` bool.

        With probability epsilon each (with a step budget, epsilon follows
        the env steps), and all of them before `learning_starts` env steps.
        """
        if self.by_steps:
            self.eps[:] = self.settings.epsilon_at(self.total_steps)
        explore = self.rng.random(self.nb_copies) < self.eps
        if self.total_steps < self.settings.learning_starts:
            explore[:] = True
        return explore

    def _play(self, active, explore, q):
        """Plays one move in each running copy and remembers the transitions.

        The copies of a vector game that no longer play (`active` false) move
        too, as a vector game steps all its copies; their steps are not
        remembered or counted.
        """
        states, everyone = self.states, active is self.everyone
        running = range(self.nb_copies) if everyone else np.flatnonzero(active)
        actions = self.copies.moves(q, explore, self.rng, running)
        moved = self.copies.play(actions, running)
        next_states = np.empty_like(states)
        next_states[:, :-1] = states[:, 1:]
        if everyone:
            next_states[:, -1] = moved.frames
        else:  # the newest frame of the copies that played
            next_states[:, -1] = states[:, -1]
            next_states[running, -1] = moved.frames[running]
        rewards = moved.rewards
        self.scores += rewards if everyone else np.where(active, rewards, 0.0)
        self.steps += 1 if everyone else active
        ending = moved.over if everyone else moved.over & active
        if self.settings.max_steps is not None:  # stopped: not a game over, not won
            ending = ending | (self.steps == self.settings.max_steps) & active
        # A time limit is not a game over: the future still counts.
        over = moved.over & ~moved.truncated if moved.over.any() else moved.over
        # The actions possible in each next state, for the max over Q(S').
        masks = self.copies.masks(moved.over) if self.masked else None
        ended = []  # (copy, epoch, won, score, steps) of the games that ended
        if ending.any():
            copies = np.flatnonzero(ending)
            columns = (copies, self.epoch_of[copies], moved.won[copies], self.scores[copies])
            ended = list(zip(*(c.tolist() for c in (*columns, self.steps[copies])), strict=True))
        rewards = rewards.astype(np.float32, copy=False)
        self._remember((states, actions, rewards, next_states, over, masks), active, running, ended)
        return next_states, ended

    def _remember(self, transitions, active, running, ended) -> None:
        """Remembers one step's transitions of the copies that played (`running`)."""
        nb_copies = self.nb_copies
        if len(running) != nb_copies:
            transitions = tuple(None if x is None else x[active] for x in transitions)
        states, actions, rewards, next_states, over, masks = transitions
        if self.recurrent or self.nstep is not None:  # each copy's game goes on or ends
            finished = np.zeros(nb_copies, dtype=bool)
            finished[[k for k, *_ in ended]] = True
            copies = np.asarray(running)
        if self.recurrent:
            played = self.queue.buffers.played_states[copies]  # the states before `states`
            self.memory._remember_steps(copies, states[:, 0], played, actions, rewards, over,
                                        finished[copies], next_states[:, 0], masks)  # fmt: skip
        elif self.nstep is not None:
            self.nstep.add(self.memory, copies, transitions, finished[copies])
        elif self.direct and self.memory.capacity:
            memory = self.memory
            if masks is None and len(states) == 1:
                memory._remember_one(states[0], actions[0], rewards[0], next_states[0], over[0])
            else:
                memory._remember_many(states, actions, rewards, next_states, over, None, masks)
        elif masks is not None and isinstance(self.memory, ExperienceReplay):
            self.memory.remember(states, actions, rewards, next_states, over, next_mask=masks)
        else:
            self.memory.remember(states, actions, rewards, next_states, over)
        self.total_steps += len(running)

    def _running(self) -> np.ndarray:
        """Which copies still play: `self.everyone` (one array, never written) while all do."""
        # A copy retires only when its game ends after the last game started.
        if self.started < self.settings.nb_epoch or self.epoch_of.min() >= 0:
            return self.everyone
        return self.epoch_of >= 0

    def _all(self, flags, active) -> bool:
        """Whether `flags` holds for every copy in `active`."""
        return bool(flags.all() if active is self.everyone else flags[active].all())

    def _restart(self, ended, next_states) -> None:
        """Ended games restart now (while games are left), so that this
        step's call also gives the Q-values of their first states."""
        copies = np.array([k for k, *_ in ended], dtype=np.int64)
        self.scores[copies], self.steps[copies] = 0.0, 0
        fresh = min(len(copies), max(self.settings.nb_epoch - self.started, 0))
        starting, retiring = copies[:fresh], copies[fresh:]  # new games go to the first ones
        epochs = range(self.started, self.started + fresh)
        self.epoch_of[starting] = epochs
        self.eps[starting] = self.settings.epsilon_of.many(epochs)
        self.started += fresh
        self.epoch_of[retiring], self.eps[retiring] = -1, 0.0
        restart = np.zeros(self.nb_copies, dtype=bool)
        restart[starting] = True
        if restart.any():
            frames = self.copies.restart(restart)
            next_states[restart] = frames[restart][:, None]  # the first frame, repeated
            if self.recurrent:  # a new game starts from the first state
                self.queue.buffers.acting_states[restart] = 0.0

    def _learn(self, active, next_states):
        """Queues this step's gradient steps; returns Q-values if it had to call."""
        q = None
        if self.target_due:  # as at an env step between calls: after the steps queued so far
            if self.queue.pending:
                q = self._flush(active, next_states)
            self.learner.copy_target()
            self.target_due = False
        for _ in range(self.settings.gradient_steps):
            if not self.fast:
                stepped = self.learner.model  # the model, behind one input for frames in parts
                inputs, targets = self.memory.get_batch(
                    stepped, self.settings.batch_size, self.settings.gamma
                )
                loss = float(stepped.train_on_batch(inputs, targets))
                if not math.isfinite(loss) and self.settings.on_nan == "raise":
                    self._raise_non_finite(np.array([loss]))
                self.loss_sum[active] += loss
                self.nb_updates[active] += 1
                if self.settings.user_callbacks:
                    self.callbacks.on_train_batch_begin(self.batch_index)
                    self.callbacks.on_train_batch_end(self.batch_index, {"loss": loss})
                    self.batch_index += 1
                continue
            if self.queue.full:
                q = self._flush(active, next_states)
            self.queue.add(self.step_count)
        return q

    def _q_values(self, states):
        if not self.fast:
            return self.learner.q_values(states)
        return self.queue.q_values(states)

    def _flush(self, active, act_states):
        """Runs the queued gradient steps; returns Q-values of `act_states`."""
        raising = self._raise_non_finite if self.settings.on_nan == "raise" else None
        loss, count, q = self.queue.run(act_states, raising)
        np.add(self.loss_sum, loss, out=self.loss_sum, where=active)
        np.add(self.nb_updates, count, out=self.nb_updates, where=active)
        if self.settings.user_callbacks and count:  # a Keras "batch": one call's steps
            self.callbacks.on_train_batch_begin(self.batch_index)
            self.callbacks.on_train_batch_end(self.batch_index, {"loss": loss / count})
            self.batch_index += 1
        return q

    def _raise_non_finite(self, losses) -> None:
        first = int(np.flatnonzero(~np.isfinite(losses))[0])
        step = self.queue.queued_at[first] if self.fast else self.step_count
        where = f"at epoch {self.finished} (step {step} of the run, in the gradient step"
        raise non_finite_error(losses[first], where + " that followed it)")

    # -- resuming -------------------------------------------------------------

    _RUN_FIELDS = (
        "states", "explore", "epoch_of", "eps", "started", "finished", "total_steps",
        "step_count", "loss_sum", "nb_updates", "scores", "steps", "wins", "batch_index",
        "nstep", "target_due", "next_q",
    )  # fmt: skip

    def _run_state(self, ended) -> dict:
        """Everything a checkpoint needs to continue this run exactly.

        Taken at the end of a step whose `ended` games are not logged yet:
        they are logged from the saved state when the run resumes.
        """
        state = {name: copy.copy(getattr(self, name)) for name in self._RUN_FIELDS}
        state.update(
            nb_copies=self.nb_copies,
            batch_size=self.settings.batch_size,
            games=self.games if getattr(self.games[0], "_resumable", True) else None,
            ended=ended,
            history=(self.history.epoch, self.history.history),
            python_random=random.getstate(),
            numpy_random=np.random.get_state(),
            keras_seed=keras_seed_state(),
            target=self.learner.get_target(),
        )
        if self.recurrent:
            buffers = self.queue.buffers
            state["recurrent"] = (buffers.acting_states.copy(), buffers.played_states.copy())
        return state

    def resume(self, state: dict) -> None:
        """Continues from a checkpoint's run state (see `_run_state`)."""
        same = (("nb_copies", self.nb_copies), ("batch_size", self.settings.batch_size))
        for name, value in same:
            if state[name] != value:
                raise ValueError(
                    f"resume=True needs the {name} of the checkpointed run. "
                    f"Received: {name}={value} (checkpoint has {state[name]})"
                )
        for name in self._RUN_FIELDS:
            setattr(self, name, state[name] if name in state else getattr(self, name))
        for game, saved in zip(self.games, state["games"], strict=True):
            game.__dict__.update(saved.__dict__)
        self.history.epoch, self.history.history = state["history"]
        random.setstate(state["python_random"])
        np.random.set_state(state["numpy_random"])
        set_keras_seed_state(state["keras_seed"])
        self.learner.set_target(state.get("target"))
        if self.recurrent:
            buffers = self.queue.buffers
            buffers.acting_states[...], buffers.played_states[...] = state["recurrent"]
        self.resumed_ended = state["ended"]
        self.win_sum = int(self.wins.sum())

    # -- logs -----------------------------------------------------------------

    def _end_games(self, ended, save: bool = True) -> None:
        """Logs the games that ended this step, with callbacks and checkpoints.

        The compiled step's state goes back to the model once for all of
        them, when anything may read the weights.
        """
        checkpoint = self.settings.checkpoint
        saves = (
            save
            and checkpoint
            and any(
                (self.finished + i) % checkpoint == 0 or self.finished + i == self.settings.nb_epoch
                for i in range(1, len(ended) + 1)
            )
        )
        synced = self.fast and (saves or self.sync)
        if synced:
            self.learner.end()
        if saves:  # the logs and callbacks of these games come after, as without a checkpoint
            self._save_checkpoint(ended)
        history = self.callbacks.history_alone
        if (
            history is not None
            and len(ended) > 1
            and self.settings.verbose != 2
            and not self.model.stop_training
        ):
            self._log_at_once(ended, history)
            ended = ()
        for k, epoch, won, score, game_steps in ended:
            self.finished += 1
            finished = self.finished
            slot = (finished - 1) % WIN_WINDOW
            self.win_sum += int(won) - int(self.wins[slot])
            self.wins[slot] = won
            nb_updates = int(self.nb_updates[k])
            # Python floats, keys in sorted order: as the callbacks get them.
            logs = {
                "epsilon": (
                    self.settings.epsilon_at(self.total_steps)
                    if self.by_steps
                    else self.settings.epsilon_of(int(epoch))
                )
            }
            if nb_updates:  # no loss at all in epochs without gradient steps
                logs["loss"] = float(self.loss_sum[k]) / nb_updates
            logs["score"] = float(score)
            logs["steps"] = float(game_steps)
            logs["time"] = time.perf_counter() - self.start - self.callbacks.untimed
            logs["win"] = float(won)
            logs["win_rate"] = self.win_sum / min(finished, WIN_WINDOW)
            self.loss_sum[k], self.nb_updates[k] = 0.0, 0
            if self.nb_copies > 1:  # games overlap: each begins when its log is ready
                self.callbacks.on_epoch_begin(finished - 1)
            self.callbacks.on_epoch_end(finished - 1, logs)
            self.progress.report(finished - 1, logs, self.total_steps)
            if self.model.stop_training or finished == self.settings.nb_epoch:
                break
        if synced:
            self.learner.begin()

    def _log_at_once(self, ended, history: History) -> None:
        """`_end_games`' logs of many games in one go, for `History` alone.

        The values of the game-by-game loop, computed as columns (all with
        the same `time`), for vector games that end dozens of games a step.
        """
        ended = ended[: self.settings.nb_epoch - self.finished]
        count = len(ended)
        copies, epochs, won, scores, game_steps = (np.asarray(c) for c in zip(*ended, strict=True))
        first = self.finished
        self.finished += count
        # The win rate of each game: the window's wins in the order played, then these.
        seen = min(first, WIN_WINDOW)
        order = np.arange(first - seen, first) % WIN_WINDOW
        sums = np.concatenate([[0.0], np.cumsum(np.concatenate([self.wins[order], won]))])
        windows = np.minimum(np.arange(first + 1, first + count + 1), WIN_WINDOW)
        last = seen + 1 + np.arange(count)
        win_rate = (sums[last] - sums[last - windows]) / windows
        kept = slice(max(0, count - WIN_WINDOW), count)  # each slot written once
        self.wins[(first + np.arange(count))[kept] % WIN_WINDOW] = won[kept]
        self.win_sum = int(self.wins.sum())
        nb_updates = self.nb_updates[copies]
        loss = self.loss_sum[copies] / np.maximum(nb_updates, 1)
        loss[nb_updates == 0] = np.nan  # as `History` logs a game without gradient steps
        self.loss_sum[copies], self.nb_updates[copies] = 0.0, 0
        if self.by_steps:
            epsilon = [self.settings.epsilon_at(self.total_steps)] * count
        else:
            epsilon = self.settings.epsilon_of.many(epochs).tolist()
        now = time.perf_counter() - self.start - self.callbacks.untimed
        columns = {  # Python floats, keys in sorted order: as the loop logs them
            "epsilon": epsilon,
            "loss": loss.tolist(),
            "score": scores.astype(float).tolist(),
            "steps": game_steps.astype(float).tolist(),
            "time": [now] * count,
            "win": won.astype(float).tolist(),
            "win_rate": win_rate.tolist(),
        }
        history._extend(list(range(first, self.finished)), columns)
        last = {key: values[-1] for key, values in columns.items()}
        self.progress.report(self.finished - 1, last, self.total_steps)
