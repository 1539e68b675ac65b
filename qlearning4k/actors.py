"""`RayActors`: game copies played by Ray actors, while the agent's process learns.

Needs Ray: `pip install "qlearning4k[ray]"`. `Agent.train(game, actors=RayActors(...))`
starts the actors on the Ray cluster (a local one if `ray.init()` was not
called), each with copies of `game` and a copy of the online weights. They
send batches of transitions, with their n-step returns, masks and, for
prioritized replay, initial priorities (as Ape-X does); the agent's process
remembers them and keeps running its compiled gradient steps.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
import time
import warnings

import keras
import numpy as np

from qlearning4k._callback_list import WIN_WINDOW, CallbackList, Progress
from qlearning4k._checks import _check_positive_int
from qlearning4k._gradient_queue import GradientQueue, non_finite_error
from qlearning4k._learner import StepConfig, bootstrapped_returns, make_learner
from qlearning4k._nstep import NStep
from qlearning4k._player import Player, model_signature
from qlearning4k._rollout import copies_of
from qlearning4k._settings import RemotePlay, Settings, step_config
from qlearning4k.history import History
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.noisy_dense import _has_noise, _reseed

__all__ = ["RayActors"]

_IN_FLIGHT = 2  # calls of each actor at a time: one batch sent while the next is played
_RETRY_SECONDS = 0.5  # before calling an actor again that did not answer


@dataclasses.dataclass(frozen=True)
class RayActors(RemotePlay):
    """Plays the game on Ray actors during `Agent.train(game, actors=RayActors(...))`.

    Each of the `nb_actors` actors is a process on the Ray cluster (a local
    one of this machine's cores, unless `ray.init(address=...)` was called
    first) with `nb_copies` copies of the game, each with its own seed, and a
    copy of the model. It plays `steps_per_batch` steps of all its copies
    (one compiled call a step for the moves of all of them, epsilon-greedy
    with the training's current epsilon), then sends the transitions: with
    their n-step returns (`n_step`), the masks of the next states' possible
    actions and, with a `PrioritizedExperienceReplay`, initial priorities
    from its own TD errors, as Ape-X does. Two batches of each actor are in
    flight at a time, so actors never wait for the learner.

    The agent's process remembers them, logs the games that ended (one
    epoch each, as `train()` does; the games of one batch share as `loss`
    the mean of the gradient steps since the batch before) and runs the
    gradient steps in its
    compiled calls: `gradient_steps` per `train_freq` env steps received, as
    far as it keeps up (then as many as it can). Every `sync_every` gradient
    steps the online weights go to the actors through Ray's object store.
    An actor that dies (its process killed, its machine lost) is started
    again by Ray, up to `max_restarts` times, with a warning; training goes
    on, without the batch it had not sent.

    Budgets, epsilon schedules, `learning_starts`, target networks, Double
    DQN, n-step returns, prioritized replay, masks, distributional heads and
    callbacks work as in `train()`; the moves the actors play are no longer
    those of a run without actors (they act on weights up to `sync_every`
    gradient steps old), so runs are not repeatable step for step.

    Args:
        nb_actors: Number of actor processes. Defaults to 2.
        nb_copies: Game copies each actor plays side by side. Defaults to 1.
        steps_per_batch: Steps of each copy per batch sent. Defaults to 50.
        sync_every: Gradient steps between two copies of the weights to the
            actors. Defaults to 100.
        max_restarts: Times Ray starts a dead actor again. Defaults to 10.
        num_cpus: CPUs Ray reserves for each actor. Defaults to 1.

    Raises:
        TypeError: If a count is not an integer.
        ValueError: If a count is not positive (`max_restarts` may be 0),
            or `num_cpus` is negative.

    Example:

    ```python
    from qlearning4k.actors import RayActors

    agent.train(Catch(), nb_epoch=1000, actors=RayActors(nb_actors=2, nb_copies=4))
    ```
    """

    nb_actors: int = 2
    nb_copies: int = 1
    steps_per_batch: int = 50
    sync_every: int = 100
    max_restarts: int = 10
    num_cpus: float = 1

    def __post_init__(self):
        for name in ("nb_actors", "nb_copies", "steps_per_batch", "sync_every"):
            _check_positive_int(name, getattr(self, name))
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(
                f"max_restarts must be a non-negative integer. Received: {self.max_restarts!r}"
            )
        if not isinstance(self.num_cpus, (int, float)) or self.num_cpus < 0:
            raise ValueError(f"num_cpus must be a non-negative number. Received: {self.num_cpus!r}")

    def _train(self, agent, game, settings: Settings) -> History:
        return _DistributedRun(agent, game, settings, self).run()


def _ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError('RayActors needs Ray: pip install "qlearning4k[ray]"') from error
    return ray


@dataclasses.dataclass(frozen=True)
class _ActorSpec:
    """What each actor is made from: sent once, when Ray starts (or restarts) it."""

    model_config: dict
    nb_frames: int
    distribution: object
    game: object
    nb_copies: int
    steps_per_batch: int
    n_step: int
    gamma: float
    max_steps: int | None
    masked: bool
    prioritized: bool
    backend: str


class _Outbox(Memory):
    """A memory that keeps what the actor remembers until it is sent."""

    def __init__(self):
        self.parts: list[tuple] = []

    def remember(self, s, a, r, s_prime, game_over, steps=1, next_mask=None) -> None:
        n = len(s)
        self.parts.append(
            (
                np.array(s),
                np.broadcast_to(np.asarray(a, dtype=np.int32), (n,)).copy(),
                np.broadcast_to(np.asarray(r, dtype=np.float32), (n,)).copy(),
                np.array(s_prime),
                np.broadcast_to(np.asarray(game_over, dtype=bool), (n,)).copy(),
                np.broadcast_to(np.asarray(steps, dtype=np.int64), (n,)).copy(),
                None if next_mask is None else np.array(next_mask, dtype=bool),
            )
        )

    def __len__(self) -> int:
        return sum(len(part[0]) for part in self.parts)

    def reset_memory(self) -> None:
        self.parts = []

    def take(self) -> dict | None:
        """The transitions remembered since the last call, as arrays; `None` if none."""
        if not self.parts:
            return None
        columns = list(zip(*self.parts, strict=True))
        self.parts = []
        names = ("states", "actions", "rewards", "next_states", "game_over", "steps", "next_mask")
        batch = {
            name: None if column[0] is None else np.concatenate(column)
            for name, column in zip(names, columns, strict=True)
        }
        return batch


class _Actor:
    """One actor process: copies of the game, a copy of the model, batches of transitions."""

    def __init__(self, spec: _ActorSpec, seed: int):
        os.environ.setdefault("KERAS_BACKEND", spec.backend)
        model = keras.saving.deserialize_keras_object(spec.model_config)
        model.compile("sgd", "mse")  # acting only; the learner has the optimizer
        _reseed(model, seed)  # each actor its own noise
        self.spec, self.model = spec, model
        atoms = 1 if spec.distribution is None else spec.distribution.nb_atoms
        input_shape, nb_outputs, parts, _ = model_signature(model)
        self.player = Player(spec.nb_frames, input_shape[1:], nb_outputs // atoms, parts)
        self.rng = np.random.default_rng(seed)
        games = []
        for _ in range(spec.nb_copies):
            game = copy.deepcopy(spec.game)
            game.rng = np.random.default_rng(self.rng.integers(2**63))
            game.reset()
            games.append(game)
        self.copies = copies_of(spec.game, self.player, games)
        self.states = np.repeat(self.copies.frames()[:, None], spec.nb_frames, axis=1)
        plain = StepConfig(distribution=spec.distribution)
        stepped = self.player.step_model(model)  # after the first frames (frames in parts)
        self.learner = make_learner(stepped, plain)
        # Acting draws new noise from the model's noise layers, as train() does.
        noisy = dataclasses.replace(plain, noisy=_has_noise(model))
        self.acting = self.learner if noisy == plain else make_learner(stepped, noisy)
        n = spec.nb_copies
        self.scores, self.steps = np.zeros(n), np.zeros(n, dtype=np.int64)
        self.outbox = _Outbox()
        self.nstep = (
            NStep(spec.n_step, spec.gamma, n, self.states.shape[1:], self.states.dtype)
            if spec.n_step > 1
            else None
        )
        self.version = -1  # of the weights it has
        self.incarnation = int.from_bytes(os.urandom(8), "little")  # a new one if restarted

    def pid(self) -> int:
        return os.getpid()

    def life(self) -> int:
        """This life's number: a new one each time Ray starts the actor again."""
        return self.incarnation

    def collect(self, version: int, weights: list, epsilon: float) -> dict:
        """Plays `steps_per_batch` steps of every copy with the given weights and epsilon."""
        if version != self.version:
            import ray

            self.model.set_weights(ray.get(weights[0]))
            self.version = version
        ended = []
        for _ in range(self.spec.steps_per_batch):
            ended += self._step(epsilon)
        batch = self.outbox.take()
        if batch is not None and self.spec.prioritized:
            batch["td_errors"] = self._td_errors(batch)
        env_steps = self.spec.steps_per_batch * self.copies.nb_copies
        return {
            "batch": batch, "ended": ended, "env_steps": env_steps,
            "incarnation": self.incarnation,
        }  # fmt: skip

    def _step(self, epsilon: float) -> list:
        """One move of every copy: remembers the transitions, restarts ended games."""
        copies, states, n = self.copies, self.states, self.copies.nb_copies
        explore = self.rng.random(n) < epsilon
        q = None if explore.all() else self.acting.q_values(states)
        everyone = range(n)
        actions = copies.moves(q, explore, self.rng, everyone)
        moved = copies.play(actions, everyone)
        next_states = np.empty_like(states)
        next_states[:, :-1] = states[:, 1:]
        next_states[:, -1] = moved.frames
        self.scores += moved.rewards
        self.steps += 1
        finished = moved.over.copy()
        if self.spec.max_steps is not None:  # stopped: not a game over, not won
            finished |= self.steps == self.spec.max_steps
        ended = [
            (float(self.scores[k]), int(self.steps[k]), bool(moved.won[k]))
            for k in np.flatnonzero(finished)
        ]
        over = moved.over & ~moved.truncated  # a time limit: the future still counts
        masks = copies.masks(moved.over) if copies.masked else None
        rewards = moved.rewards.astype(np.float32, copy=False)
        transitions = (states, actions, rewards, next_states, over, masks)
        if self.nstep is not None:
            self.nstep.add(self.outbox, np.arange(n), transitions, finished)
        else:
            self.outbox.remember(states, actions, rewards, next_states, over, next_mask=masks)
        self.states = next_states
        if finished.any():
            self.states[finished] = copies.restart(finished)[finished][:, None]
            self.scores[finished], self.steps[finished] = 0.0, 0
        return ended

    def _td_errors(self, batch: dict) -> np.ndarray:
        """Initial priorities: each transition's TD error under the actor's weights."""
        count = len(batch["actions"])
        both = np.concatenate([batch["states"], batch["next_states"]])
        q = self.learner.q_values(both)
        discount = self.spec.gamma ** batch["steps"] * ~batch["game_over"]
        target = bootstrapped_returns(batch["rewards"], discount, q[count:], batch["next_mask"])
        return target - q[np.arange(count), batch["actions"]]


class _DistributedRun:
    """The learner's side of a run with actors: remember, log, learn, send weights."""

    def __init__(self, agent, game, settings: Settings, actors: RayActors):
        self.agent, self.model, self.memory = agent, agent.model, agent.memory
        self.settings, self.actors = settings, actors
        if not isinstance(self.memory, ExperienceReplay):
            raise ValueError(
                "train(actors=...) remembers the actors' batches in an ExperienceReplay (or "
                f"PrioritizedExperienceReplay). Received: a {type(self.memory).__name__}"
            )
        if agent._player.action_parts is not None:
            raise ValueError(
                "train(actors=...) plays games of one action part; a branching model "
                "(qlearning4k.branching) trains in one process. Received: a model with "
                f"branches nb_actions={agent._player.action_parts}"
            )
        self.game = game
        config = step_config(settings, game, self.memory, self.model)
        self.masked, self.prioritized = config.masked, config.prioritized
        self.learner = agent._learner(config)
        state = agent._player.first_state(game)  # checks the game's frames against the model
        # The gradient steps of each call (this process acts on nothing: one idle row).
        self.queue = GradientQueue(
            self.learner, self.memory, settings.gamma, 1, state.shape[1:], state.dtype
        )
        self.by_steps = settings.total_timesteps is not None
        self.budget = settings.total_timesteps if self.by_steps else sys.maxsize
        self.history = History()
        self.callbacks = CallbackList(
            [*settings.user_callbacks, self.history],
            self.model,
            None if self.by_steps else settings.nb_epoch,
        )
        for callback in self.callbacks.agent_users:
            callback._set_agent(agent)
        self.finished, self.env_steps, self.gradient_steps = 0, 0, 0
        self.credits = 0.0  # gradient steps the env steps received have earned
        self.loss_sum, self.nb_losses = 0.0, 0
        self.wins = np.zeros(WIN_WINDOW)
        self.version = 0
        self.failures = 0  # times an actor stopped answering

    # -- the loop -------------------------------------------------------------

    def run(self) -> History:
        ray = _ray()
        if not ray.is_initialized():
            ray.init()
        settings, actors = self.settings, self.actors
        spec = _ActorSpec(
            model_config=keras.saving.serialize_keras_object(self.model),
            nb_frames=self.agent.nb_frames,
            distribution=self.agent.distribution,
            game=self.game,
            nb_copies=actors.nb_copies,
            steps_per_batch=actors.steps_per_batch,
            n_step=settings.n_step,
            gamma=settings.gamma,
            max_steps=settings.max_steps,
            masked=self.masked,
            prioritized=self.prioritized,
            backend=keras.backend.backend(),
        )
        remote = ray.remote(_Actor).options(
            max_restarts=actors.max_restarts,
            max_task_retries=0,
            num_cpus=actors.num_cpus,
            runtime_env={"env_vars": {"KERAS_BACKEND": keras.backend.backend()}},
        )
        seeds = self.agent.rng.integers(2**63, size=actors.nb_actors)
        self.handles = [remote.remote(spec, int(seed)) for seed in seeds]
        self.incarnation = [None] * actors.nb_actors  # of each actor's last answer
        self.warned = {}  # actor -> the incarnation whose failure was reported
        self.retry_at = {}  # actor -> when to send it calls again
        self.dead = set()
        self.model.stop_training = False
        self.start = time.perf_counter()
        self.progress = Progress(settings.verbose, self.by_steps, self.budget, settings.nb_epoch)
        self.learner.begin()
        self.weights = ray.put(self._weights())
        self.pending = {}  # ObjectRef -> actor index
        self.life_of = {}  # ObjectRef -> the life of its actor known when it was sent
        try:
            # Each actor's first life, before any batch: a later answer from
            # another life is a restart, whether or not a failed call of the
            # life before reached the learner first.
            for index, handle in enumerate(self.handles):
                # An actor that cannot start: its calls fail too, handled as they come.
                with contextlib.suppress(ray.exceptions.RayActorError):
                    self.incarnation[index] = ray.get(handle.life.remote())
            self.callbacks.on_train_begin()
            for index in range(actors.nb_actors):
                for _ in range(_IN_FLIGHT):  # one batch in flight while the next is played
                    self._submit(index)
            while not self._done():
                self._harvest(block=self.credits < 1 or not self._can_learn())
                if self._done():
                    break
                if self.credits >= 1 and self._can_learn():
                    self._learn(min(int(self.credits), self.queue.size))
        finally:
            self.learner.end()
            for handle in self.handles:
                ray.kill(handle, no_restart=True)
        self.history.env_steps = int(self.env_steps)
        self.history.gradient_steps = int(self.gradient_steps)
        self.history.actor_failures = int(self.failures)
        self.callbacks.on_train_end()
        return self.history

    def _done(self) -> bool:
        return (
            self.finished >= self.settings.nb_epoch
            or self.env_steps >= self.budget
            or self.model.stop_training
        )

    def _can_learn(self) -> bool:
        return (
            self.finished >= self.settings.observe
            and self.env_steps > self.settings.learning_starts
            and len(self.memory) > 0
        )

    def _epsilon(self) -> float:
        if self.by_steps:
            return float(self.settings.epsilon_at(self.env_steps))
        return float(self.settings.epsilon_of(self.finished))

    def _weights(self) -> list[np.ndarray]:
        self.learner.end()  # JAX keeps them in the compiled step's state
        weights = self.model.get_weights()
        self.learner.begin()
        return weights

    def _submit(self, index: int) -> None:
        call = self.handles[index].collect.remote(self.version, [self.weights], self._epsilon())
        self.pending[call] = index
        self.life_of[call] = self.incarnation[index]

    def _harvest(self, block: bool) -> None:
        """Remembers the batches that arrived (waiting for one if `block`)."""
        ray = _ray()
        self._retry()
        refs = list(self.pending)
        if not refs and not self.retry_at:
            raise RuntimeError(
                "train(actors=...) has no actor left: each died more than "
                f"max_restarts={self.actors.max_restarts} times"
            )
        ready = ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []
        if not ready and block:
            wait = None  # until a batch arrives, or the next actor to call again is due
            if self.retry_at:
                wait = max(min(self.retry_at.values()) - time.monotonic(), 0.0)
            if refs:
                ready = ray.wait(refs, num_returns=1, timeout=wait)[0]
            else:
                time.sleep(wait)
        for ref in ready:
            index, life = self.pending.pop(ref), self.life_of.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.ActorUnavailableError as error:  # restarting, or unreachable
                self._failed(index, error, life)
                self.retry_at[index] = time.monotonic() + _RETRY_SECONDS
                continue
            except ray.exceptions.RayActorError as error:  # dead, and no restart left
                self._failed(index, error, life)
                self.dead.add(index)
                continue
            known = self.incarnation[index]
            if known is not None and result["incarnation"] != known:
                self._failed(index, None, known)  # started again: that life ended
            self.incarnation[index] = result["incarnation"]
            if not self._done():
                self._receive(result)
            if not self._done():
                self._submit(index)

    def _retry(self) -> None:
        """Sends the calls of actors that failed once their pause is over."""
        now = time.monotonic()
        for index, due in list(self.retry_at.items()):
            if due <= now:
                del self.retry_at[index]
                while sum(i == index for i in self.pending.values()) < _IN_FLIGHT:
                    self._submit(index)

    def _failed(self, index: int, error: Exception | None, life) -> None:
        """Actor `index` lost its life `life`: a call sent during it failed, or
        (`error` None) an answer came from its next life. Warns once for each
        life."""
        if index in self.dead:
            return
        if error is None or isinstance(error, _ray().exceptions.ActorUnavailableError):
            if index in self.warned and self.warned[index] == life:
                return  # its other calls fail too while Ray starts it again
            self.warned[index] = life
            self.failures += 1
            reason = "it was started again" if error is None else type(error).__name__
            warnings.warn(
                f"Actor {index} stopped answering ({reason}): Ray starts it "
                "again, and training goes on without the batches it had not sent",
                stacklevel=2,
            )
            return
        self.failures += index not in self.warned or self.warned[index] != life
        warnings.warn(
            f"Actor {index} died and Ray starts it no more (max_restarts="
            f"{self.actors.max_restarts}): training goes on without it "
            f"({type(error).__name__})",
            stacklevel=2,
        )

    def _receive(self, result: dict) -> None:
        settings = self.settings
        batch = result["batch"]
        if batch is not None:
            extra = {}
            if batch["next_mask"] is not None:
                extra["next_mask"] = batch["next_mask"]
            if self.prioritized:
                extra["td_errors"] = batch["td_errors"]
            self.memory.remember(
                batch["states"], batch["actions"], batch["rewards"], batch["next_states"],
                batch["game_over"], steps=batch["steps"], **extra,
            )  # fmt: skip
        before = self.env_steps
        self.env_steps += result["env_steps"]
        interval = settings.target_update_interval
        if interval is not None and self.env_steps // interval > before // interval:
            self.learner.copy_target()
        if self._can_learn():
            self.credits += result["env_steps"] * settings.gradient_steps / settings.train_freq
        # The games of a batch share the mean loss of the gradient steps since the last one.
        loss = self.loss_sum / self.nb_losses if self.nb_losses else None
        self.loss_sum, self.nb_losses = 0.0, 0
        for score, steps, won in result["ended"]:
            self._end_game(score, steps, won, loss)
            if self._done():
                break

    def _learn(self, count: int) -> None:
        for _ in range(count):
            self.queue.add()
        raising = self._raise_non_finite if self.settings.on_nan == "raise" else None
        loss, _, _ = self.queue.run(None, raising)
        self.loss_sum += loss
        self.nb_losses += count
        self.credits -= count
        before = self.gradient_steps
        self.gradient_steps += count
        every = self.actors.sync_every
        if self.gradient_steps // every > before // every:
            self.version += 1
            self.weights = _ray().put(self._weights())

    def _raise_non_finite(self, losses) -> None:
        raise non_finite_error(float(np.sum(losses)), f"after {self.gradient_steps} gradient steps")

    def _end_game(self, score: float, steps: int, won: bool, loss: float | None) -> None:
        self.finished += 1
        slot = (self.finished - 1) % WIN_WINDOW
        self.wins[slot] = won
        logs = {"epsilon": self._epsilon()}
        if loss is not None:
            logs["loss"] = loss
        logs["score"] = float(score)
        logs["steps"] = float(steps)
        logs["time"] = time.perf_counter() - self.start - self.callbacks.untimed
        logs["win"] = float(won)
        logs["win_rate"] = float(self.wins[: min(self.finished, WIN_WINDOW)].mean())
        epoch = self.finished - 1
        synced = self.callbacks.only_history is None  # other callbacks may read the weights
        if synced:
            self.learner.end()
        self.callbacks.on_epoch_begin(epoch)
        self.callbacks.on_epoch_end(epoch, logs)
        if synced:
            self.learner.begin()
        self.progress.report(epoch, logs, self.env_steps)
