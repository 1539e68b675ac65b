"""`Agent`: trains a compiled Keras model to play a `Game` by deep Q-learning."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checks import (
    _check_epsilon,
    _check_positive_int,
)
from qlearning4k._evaluation import _play_games, _summary, checked_evaluation
from qlearning4k._export import export_policy, policy_model
from qlearning4k._learner import StepConfig, make_learner
from qlearning4k._player import as_game, memory_of, player_of
from qlearning4k._saving import load_folder, restore, save_folder
from qlearning4k._settings import train_settings
from qlearning4k._training import _TrainingRun
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.history import History
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.render import save_video
from qlearning4k.sequence_replay import SequenceReplay

if TYPE_CHECKING:  # typing only: actors build on the agent, not the other way round
    from qlearning4k.actors import RayActors


class Agent:
    """Trains a compiled Keras model to play a `Game` by deep Q-learning.

    The model maps a stack of the last `nb_frames` frames of a game to one
    Q-value per action: input `(batch, nb_frames) + frame_shape`, output
    `(batch, nb_actions)`. The agent plays the game, remembers transitions in
    a replay `Memory`, and after each step fits the model towards
    `r + gamma * max Q(s')` on a batch sampled from memory, all in one
    compiled call of the Keras backend in use.

    Args:
        model: A compiled `keras.Model` with one output, as above, and one
            input; or one named input per part, `(batch, nb_frames) +
            part_shape` each, for games whose frames are dicts (or tuples) of
            arrays (`frame_shape` is then a dict of the parts' shapes); or a
            recurrent model (`qlearning4k.recurrent`'s contract). Its
            compiled loss and optimizer are used as they are.
        memory: A `Memory`, or `None` for `ExperienceReplay(memory_size)`
            (`SequenceReplay(memory_size)` for a recurrent model). Defaults to `None`.
        memory_size: Size of the default memory; `-1` for no limit. Ignored
            when `memory` is given. Defaults to 1000.
        nb_frames: Number of stacked frames, or `None` to read it from the
            model's input shape. Defaults to `None`.
        seed: Seed of the agent's random generator (exploration, and the
            default memory's sampling). Defaults to `None`.
        distribution: `qlearning4k.C51(...)` or
            `qlearning4k.QuantileRegression(...)` to learn each action's distribution of
            returns (the model then outputs `nb_actions * nb_atoms` units,
            and the option's loss replaces the compiled one), or `None` for
            Q-values. Defaults to `None`.

    Raises:
        TypeError: If `model` is not a Keras model, `memory` not a `Memory`
            or `distribution` not one of the options.
        ValueError: If the model is not compiled, has several inputs or
            outputs, shapes that do not fit, or `nb_frames` disagrees with it.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(3),
    ])
    model.compile(keras.optimizers.SGD(learning_rate=0.2), "mse")
    agent = Agent(model, seed=0)
    agent.train(Catch(seed=0), nb_epoch=300)
    agent.play(Catch(seed=1), visualize=False)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        memory: Memory | None = None,
        memory_size: int = 1000,
        nb_frames: int | None = None,
        seed: int | None = None,
        distribution: C51 | QuantileRegression | None = None,
    ):
        self._player = player_of(model, distribution, nb_frames)
        parts = self._player.action_parts
        # The game's actions: an int, or one count per part for a branching model.
        self.nb_actions = self._player.nb_actions if parts is None else parts
        self.distribution = distribution
        self.model = model
        self.nb_frames = self._player.nb_frames
        self.frame_shape = self._player.frame_shape
        if self._player.parts is not None:
            self.frame_shape = self._player.parts.frame_shape
        agent_seed, memory_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(agent_seed)
        self.memory = memory_of(self._player, memory, memory_size, memory_seed)
        self._learners = {}

    # -- memory -------------------------------------------------------------

    @property
    def memory_size(self) -> int:
        """Size of the replay memory, `-1` for no limit (settable)."""
        return self.memory.memory_size

    @memory_size.setter
    def memory_size(self, value: int) -> None:
        self.memory.memory_size = value

    def reset_memory(self) -> None:
        """Forgets every transition in the replay memory."""
        self.memory.reset_memory()

    # -- helpers ------------------------------------------------------------

    def _learner(self, config: StepConfig | None = None):
        """The compiled steps for `config`, made once (a target network lives there)."""
        recurrent = self._player.recurrent
        config = dataclasses.replace(
            config or StepConfig(),
            distribution=self.distribution,
            action_parts=self._player.action_parts,
            sequences=recurrent and self.memory._sequence_config(recurrent.state_sizes),
        )
        if config not in self._learners:
            self._learners[config] = make_learner(self._player.step_model(self.model), config)
        return self._learners[config]

    # -- training -----------------------------------------------------------

    def train(
        self,
        game: Game,
        nb_epoch: int | None = None,
        batch_size: int = 50,
        gamma: float = 0.9,
        epsilon: float | Sequence[float] = (1.0, 0.1),
        epsilon_rate: float = 0.5,
        reset_memory: bool = False,
        observe: int = 0,
        checkpoint: int | None = None,
        checkpoint_path: str = "qlearning4k-checkpoint",
        verbose: int = 1,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        nb_parallel: int = 1,
        train_freq: int = 1,
        gradient_steps: int = 1,
        max_steps: int | None = None,
        on_nan: str = "raise",
        resume: bool = False,
        target_update: int | float | None = None,
        double_dqn: bool = False,
        n_step: int = 1,
        single_core: bool = False,
        total_timesteps: int | None = None,
        learning_starts: int = 0,
        target_update_interval: int | None = None,
        keep_checkpoints: int = 2,
        actors: RayActors | None = None,
    ) -> History:
        """Trains the model on `nb_epoch` games, or for `total_timesteps` env steps.

        Each step: choose an action (random with probability epsilon, else
        greedy), play it, remember the transition, then fit the model on a
        batch sampled from memory. An epoch is one game, from `reset()` to
        `is_over()`. With the defaults this is the original qlearning4k
        algorithm, one gradient step per game step.

        Budgets and schedules count games by default. `total_timesteps`,
        `learning_starts` and `target_update_interval` count env steps
        instead, as Stable-Baselines3 does, so that its DQN settings (and
        the RL Baselines3 Zoo's) carry over one to one; the docs' page
        "Coming from Stable-Baselines3" has the table.

        Steps whose next action is random need no Q-values, so their gradient
        steps wait and run together with the next one that does, in one
        compiled call: the same batches, in the same order, on the same
        weights, in fewer calls.

        The modern DQN options (`target_update`, `double_dqn`, `n_step`, a
        `PrioritizedExperienceReplay` memory, action masks) all run inside
        that same compiled call. Action masking needs no option: a game that
        overrides `get_possible_actions()` gets the mask of each next state
        stored in memory, and the max over `Q(S')` (and every greedy move)
        only considers possible actions. Games that allow every action pay
        nothing for it.

        Args:
            game: The `Game` to learn.
            nb_epoch: Number of games, or `None`: 1000 games unless
                `total_timesteps` is given. Defaults to `None`.
            batch_size: Transitions per gradient step. Defaults to 50.
            gamma: Discount factor of future rewards, in [0, 1].
                Defaults to 0.9.
            epsilon: Exploration probability in [0, 1]: a number, or a pair
                `(start, end)` that goes linearly from start to end over the
                first `epsilon_rate` fraction of the budget: of the epochs
                after `observe`, or with `total_timesteps` of the env steps
                from the first one (Stable-Baselines3's
                `exploration_initial_eps`, `exploration_final_eps`). A model
                with `qlearning4k.NoisyDense` layers explores by its noise,
                drawn anew at each acting call, and usually trains with 0.
                Defaults to `(1.0, 0.1)`.
            epsilon_rate: Fraction of the budget over which epsilon decays,
                in [0, 1] (Stable-Baselines3's `exploration_fraction` with
                `total_timesteps`). Defaults to 0.5.
            reset_memory: Forget the memory at the start of every epoch.
                Defaults to `False`.
            observe: Number of first epochs that act randomly and do not
                learn (they fill the memory). Defaults to 0.
            checkpoint: Save every `checkpoint` epochs and at the end, or
                `None` for never. Defaults to `None`.
            checkpoint_path: Where `checkpoint` saves: a folder gets the
                whole agent with its memory (`save(include_memory=True)`,
                loadable with `Agent.load`); a path ending in `.weights.h5`
                gets the weights only. Written atomically, with the
                checksums of its files. Defaults to
                `"qlearning4k-checkpoint"`.
            verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
                Defaults to 1.
            callbacks: `keras.callbacks.Callback` instances, driven with
                epoch logs `loss`, `epsilon`, `win`, `win_rate`, `score`,
                `steps`, `time`. Defaults to `None`.
            nb_parallel: Number of copies of `game` played side by side, each
                with its own seed; one compiled call chooses the actions of
                all of them. A step then plays `nb_parallel` game steps.
                Defaults to 1.
            train_freq: Learn every `train_freq` steps (a step plays one move
                in each of the `nb_parallel` copies). Defaults to 1.
            gradient_steps: Gradient steps each time it learns, each on its
                own batch, all in one compiled call; `-1` for as many as the
                env steps played since it last learned
                (`train_freq * nb_parallel`). Defaults to 1.
            max_steps: Stop a game after this many steps, or `None` for no
                limit. A stopped game counts as not won, and its last
                transition is not a game over (the future still counts).
                Defaults to `None`.
            on_nan: What a non-finite loss does: `"raise"` stops training
                with a `FloatingPointError` naming the epoch and step;
                `"continue"` goes on (for example to let
                `keras.callbacks.TerminateOnNaN` decide). Defaults to
                `"raise"`.
            resume: Continue the run checkpointed in the `checkpoint_path`
                folder, if there is one (else start afresh); if its files
                are damaged, from the newest intact one of those kept (see
                `keep_checkpoints`), with a warning that names them: weights,
                optimizer state, memory, epsilon schedule, game counter,
                games and every random generator come back as they were, so
                that a run interrupted and resumed ends as an uninterrupted
                one would (bit for bit on TensorFlow's CPU backend). Call it
                with the same arguments as the interrupted run. Defaults to
                `False`.
            target_update: A target network for the TD targets: an int `N`
                copies the online weights to it every `N` gradient steps
                (`target_update_interval` counts env steps instead), a
                float `tau` in (0, 1) moves it towards them by `tau` after
                every gradient step (Polyak averaging); `None` for none, the
                original algorithm. With a target network, `keras.losses.Huber()`
                is the usual loss. Defaults to `None`.
            double_dqn: Double DQN: the online network picks the best action
                of `S'` and the target network evaluates it (without a target
                network both are the online network, which is plain DQN).
                Defaults to `False`.
            n_step: Learn from `n_step`-step returns: each remembered
                transition spans up to `n_step` game steps, with the discounted
                sum of their rewards, and bootstraps with `gamma ** n_step`
                (fewer steps at the end of a game; none after a game over).
                Needs an `ExperienceReplay` memory. Defaults to 1.
            single_core: Run training on one CPU core: every thread of the
                process (the training loop's and the backend's) shares the
                core the loop runs on when training starts, and gets its
                former cores back when it ends; first calls, which compile,
                still use every core. Each compiled call then hands its work
                to the backend's threads without waking another core, which
                on small models costs more than their arithmetic (see the
                docs' Backends page). Same results. Linux only (elsewhere it warns
                and uses every core). Processes training side by side on one
                machine each pick their own core; pin them yourself
                (`taskset`) to choose. Defaults to `False`.
            total_timesteps: Train for this many env steps (of all copies
                together) instead of `nb_epoch` games, or `None`. Training
                stops after the step that reaches it, in the middle of a
                game if need be: the `History` has the games that ended, and
                with `checkpoint` the last step is checkpointed. Defaults to
                `None`.
            learning_starts: Env steps played at random, without learning,
                before the first gradient step: learning starts once more
                than `learning_starts` env steps are in memory, as in
                Stable-Baselines3 (`observe` counts games instead).
                Defaults to 0.
            target_update_interval: A target network copied from the online
                weights every `target_update_interval` env steps (every
                `target_update_interval // nb_parallel` steps of all copies),
                between gradient steps as in Stable-Baselines3, or `None`.
                Defaults to `None`.
            keep_checkpoints: How many folder checkpoints to keep: the
                newest in `checkpoint_path`, the ones before it beside it as
                `checkpoint_path.1`, `checkpoint_path.2`, ..., for
                `resume=True` to fall back on. Each holds the whole memory.
                Defaults to 2.
            actors: A `qlearning4k.actors.RayActors`: the game's copies are
                played by Ray actors in other processes (or machines), and
                this process remembers their transitions and learns; or
                `None` to play here. Not with `nb_parallel`, a vector game,
                checkpoints, `resume`, `reset_memory` or `single_core`.
                Defaults to `None`.

        Ctrl-C stops training after the current step (a second one at once):
        the queued gradient steps run, a checkpoint is written if
        `checkpoint` is set, and the `History` so far is returned.

        Returns:
            A `History` with one entry per epoch.

        Raises:
            TypeError, ValueError: If an argument or the game does not fit,
                or arguments that count games and env steps are mixed where
                that is ambiguous (`nb_epoch` with `total_timesteps`,
                `observe` with `total_timesteps` or `learning_starts`,
                `target_update` with `target_update_interval`), before any
                training step.
            FloatingPointError: If a loss is not finite and `on_nan="raise"`.
        """
        arguments = dict(locals())  # train()'s arguments, as passed
        del arguments["self"], arguments["game"]
        settings, game = train_settings(self, game, arguments)
        if actors is not None:
            return actors._train(self, game, settings)
        run_state = restore(self, os.fspath(checkpoint_path)) if resume else None
        rng_state = self.rng.bit_generator.state
        run = _TrainingRun(self, game, settings)
        if run_state is not None:
            self.rng.bit_generator.state = rng_state  # as checkpointed, before the copies' seeds
            run.resume(run_state)
        return run.run()

    # -- saving -------------------------------------------------------------

    def save(self, path: str | os.PathLike, include_memory: bool = False) -> None:
        """Saves the agent to the folder `path`.

        The folder holds `model.keras` (the model with its optimizer state,
        in Keras' own format), `agent.json` (the agent's settings and random
        generators), with `include_memory=True` and an `ExperienceReplay`
        `memory.npz`, and `checksums.json` (the size and SHA-256 of each
        file, which `Agent.load` checks). It is written next to `path` first
        and then moved into place, so an interrupted save leaves the
        previous one whole, and `Agent.load(path)` finds it.

        Args:
            path: The folder to write; replaced if it exists.
            include_memory: Also save the replay memory's transitions.
                Defaults to `False`.

        Raises:
            ValueError: If `include_memory` is asked for a memory that is not
                an `ExperienceReplay`.

        Example:

        ```python
        agent.save("catch_agent")
        agent = Agent.load("catch_agent")
        ```
        """
        if include_memory and not isinstance(self.memory, (ExperienceReplay, SequenceReplay)):
            raise ValueError(
                "include_memory=True saves an ExperienceReplay or a SequenceReplay. "
                f"Received: a memory of type {type(self.memory).__name__}"
            )
        save_folder(self, path, include_memory)

    @classmethod
    def load(cls, path: str | os.PathLike, memory: Memory | None = None) -> Agent:
        """Loads an agent saved by `save()`.

        The model comes back compiled, with its optimizer state, so `play()`
        gives the same actions and `train()` continues where it stopped.

        Args:
            path: The folder that `save()` wrote.
            memory: A `Memory` to use instead of the saved one, or `None` for
                the saved `ExperienceReplay` (with its transitions if they were
                saved). Defaults to `None`.

        Returns:
            The `Agent`.

        Raises:
            FileNotFoundError: If `path` is not a saved agent.
            ValueError: If a file of it is damaged (truncated or altered
                since it was saved: its size or SHA-256 differs from
                `checksums.json`, or it cannot be read), naming the file; or
                if it was saved by an unknown format version.
        """
        return load_folder(cls, os.fspath(path), memory)

    # -- playing ------------------------------------------------------------

    def evaluate(
        self,
        game: Game,
        nb_games: int = 100,
        seed: int | None = None,
        epsilon: float = 0.0,
        max_steps: int | None = 1000,
        nb_parallel: int | None = None,
        on_game_end: Callable[[Game], None] | None = None,
        noisy: bool = False,
        video: str | os.PathLike | None = None,
        fps: float = 10,
    ) -> dict:
        """Plays `nb_games` games greedily, side by side, and sums up their scores.

        The games are copies of `game` (which is only reset), played
        `nb_parallel` at a time with one compiled call per step for the
        moves of all of them. Moves are the possible action of highest
        Q-value or, with probability `epsilon`, a random possible action.
        Training state is left alone: the agent's random generator is not
        used when `seed` is given, so evaluating during training (as
        `qlearning4k.callbacks.EvalCallback` does) does not change the run.

        Args:
            game: The `Game` to play; copies of it are played.
            nb_games: Number of games. Defaults to 100.
            seed: With a seed, game `i` gets the generator
                `np.random.default_rng(seed + i)`, so it is the game that
                `type(game)(seed=seed + i)` plays first (the same games on
                every call), and random moves come from a generator of
                their own. With `None`, the games' generators are drawn from
                `game.rng` and random moves from the agent's. Defaults to
                `None`.
            epsilon: Probability of a random move, in [0, 1]. Defaults to 0.
            max_steps: Stop a game after this many steps (it counts as not
                won), so a policy that loops forever cannot hang; `None` for
                no limit. Defaults to 1000.
            nb_parallel: Games played side by side, or `None` for all of
                them at once. Fewer keep fewer copies of a large game in
                memory. Defaults to `None`.
            on_game_end: A function called with each game copy when its game
                ends, to read what the score does not say (Snake's length,
                say). Defaults to `None`.
            noisy: Play with the noise of the model's `qlearning4k.NoisyDense`
                layers (the model in training mode, new noise at each step),
                as the agent acts while it trains; `False` plays on their
                means. Defaults to `False`.
            video: A file to film the games in, one after the other (`.gif`,
                or `.mp4` with the `video` extra); not for vector games.
                Defaults to `None`.
            fps: Pictures per second of the video. Defaults to 10.

        Returns:
            A dict: `mean_score`, `std_score`, `min_score`, `max_score` (of
            each game's summed `get_score()`), `win_rate`, `mean_steps`
            (game length), `nb_games`, and `scores`, the array of each
            game's score.

        Raises:
            TypeError, ValueError: If an argument or the game does not fit
                the model, before any game is played.

        Example:

        ```python
        results = agent.evaluate(Catch(), nb_games=100, seed=0)
        print(results["win_rate"], results["mean_score"])
        ```
        """
        nb_games, eps, max_steps, nb_parallel = checked_evaluation(
            nb_games, epsilon, max_steps, nb_parallel, seed, on_game_end, noisy, video, fps
        )
        game = as_game(game, lambda: seed)
        self._player.check_game(game)
        if isinstance(game, VectorGame) and (
            video is not None or nb_parallel not in (nb_games, game.nb_copies)
        ):
            raise ValueError(
                "A vector game plays its own copies side by side: leave nb_parallel at None "
                f"(and video: it films a Game's copies). Received: nb_parallel={nb_parallel}, "
                f"video={video!r}, nb_copies={game.nb_copies}"
            )
        rng = self.rng if seed is None else np.random.default_rng([seed, 1])
        played = _play_games(
            self, game, nb_games, seed, eps, rng, max_steps, nb_parallel,
            on_game_end=on_game_end, noisy=bool(noisy), draw=video is not None,
        )  # fmt: skip
        if video is not None:
            save_video([shot for shots in played.pictures for shot in shots], video, fps=fps)
        return _summary(played)

    def play(
        self,
        game: Game,
        nb_epoch: int = 10,
        epsilon: float = 0.0,
        visualize: bool = True,
        path: str | None = None,
        fps: float = 10,
        verbose: int = 1,
        max_steps: int | None = 1000,
    ) -> float:
        """Plays `nb_epoch` games greedily and returns the win rate.

        Actions are the possible action (`game.get_possible_actions()`) of
        highest Q-value, or a random possible action with probability
        `epsilon`. The games are copies of `game` with generators drawn from
        its own, played side by side as `evaluate()` plays them.

        Args:
            game: The `Game` to play.
            nb_epoch: Number of games. Defaults to 10.
            epsilon: Probability of a random action, in [0, 1]. Defaults to 0.
            visualize: Save the games played, one after the other, as one
                video (from `game.draw()`). Defaults to `True`.
            path: The video: an animated GIF (`.gif`) or an MP4 (`.mp4`, with
                the `video` extra); `None` for `"<game name>.gif"`. Defaults to `None`.
            fps: Pictures per second of the video. Defaults to 10.
            verbose: 0 silent, 1 prints the win rate. Defaults to 1.
            max_steps: Stop a game after this many steps (it counts as not
                won), so a policy that loops forever cannot hang; `None` for
                no limit. Defaults to 1000.

        Returns:
            The fraction of games won, in [0, 1].

        Raises:
            TypeError, ValueError: If an argument or the game does not fit.
        """
        nb_epoch = _check_positive_int("nb_epoch", nb_epoch)
        eps, _ = _check_epsilon(epsilon)
        if isinstance(verbose, bool) or verbose not in (0, 1):
            raise ValueError(f"verbose must be 0 or 1. Received: verbose={verbose!r}")
        if max_steps is not None:
            max_steps = _check_positive_int("max_steps", max_steps)
        if not isinstance(game, Game):
            raise TypeError(
                "play() draws its games one by one: pass a Game (a VectorGame or a vector "
                f"env goes to evaluate()). Received: {game!r} (of type {type(game).__name__})"
            )
        self._player.check_game(game)
        played = _play_games(
            self, game, nb_epoch, None, eps, self.rng, max_steps, nb_epoch, draw=visualize
        )
        wins = int(played.won.sum())
        win_rate = wins / nb_epoch
        if visualize:
            path = path if path is not None else f"{game.name.lower()}.gif"
            save_video([shot for shots in played.pictures for shot in shots], path, fps=fps)
        if verbose:
            print(f"Win rate: {win_rate:.2%} ({wins}/{nb_epoch} games)")
        return win_rate

    # -- deploying ----------------------------------------------------------

    def q_values(self, observation: ArrayLike) -> np.ndarray:
        """The model's Q-values for one state or a batch of them, in one compiled call.

        Args:
            observation: A state `(nb_frames,) + frame_shape` (the last
                `nb_frames` frames, oldest first; a `FrameStack` keeps them),
                a batch of states `(n, nb_frames) + frame_shape`, or, when
                `nb_frames == 1`, a single frame `frame_shape`.

        Returns:
            `(nb_actions,)` for one state or frame, `(n, nb_actions)` for a
            batch; for a branching model, the branches' Q-values one after
            another (`sum(nb_actions)` of them).

        Raises:
            ValueError: If the shape fits neither.
        """
        states, one = self._player.states(observation, "q_values()")
        q = self._learner().q_values(states)
        return q[0] if one else q

    def initial_state(self, n: int | None = None) -> np.ndarray:
        """A recurrent agent's state at a game's start: zeros, `(state_size,)` or `(n, state_size)`.

        Args:
            n: Copies, or `None` for one state. Defaults to `None`.

        Returns:
            A float32 array of zeros.
        """
        if self._player.recurrent is None:
            raise ValueError("initial_state() is for recurrent agents; this model is feedforward.")
        size = self._player.recurrent.state_size
        return np.zeros((size,) if n is None else (_check_positive_int("n", n), size), np.float32)

    def act(
        self, observation: ArrayLike, state: ArrayLike | None = None, mask: ArrayLike | None = None
    ) -> int | np.ndarray | tuple:
        """The greedy action for one state or a batch of them (and a recurrent agent's next state).

        Works the same after `Agent.load`, so a saved agent can be deployed
        in another program: feed it what the game shows, get its move.

        Args:
            observation: As for `q_values()`: a state, a batch of states or
                (with one frame per state) a frame. A recurrent agent takes a
                frame or a batch of frames `(n,) + frame_shape`.
            state: A recurrent agent's state, `(state_size,)` or `(n,
                state_size)`: `initial_state()` at a game's start, then the
                one the last `act()` returned. Feedforward agents take none.
                Defaults to `None`.
            mask: The possible actions, a bool array `(nb_actions,)` (for
                every state) or `(n, nb_actions)`; `None` for all of them.
                For a branching model, the parts' masks one after another,
                `sum(nb_actions)` wide, each allowing some action. Defaults
                to `None`.

        Returns:
            An int for one state or frame, an `(n,)` int array for a batch.
            For a branching model, an int array `(nb_parts,)` (one index
            per part) for one state, `(n, nb_parts)` for a batch. A recurrent
            agent returns `(action, next_state)`.

        Raises:
            ValueError: If the shapes do not fit, a mask allows no action, or
                a recurrent agent gets no state (a feedforward one a state).

        Example:

        ```python
        agent = Agent.load("catch_agent")
        game = Catch(seed=0)
        stack = FrameStack(agent.nb_frames)
        state = stack.reset(game.get_frame())
        while not game.is_over():
            game.play(agent.act(state))
            state = stack.push(game.get_frame())
        ```
        """
        if self._player.recurrent is not None or state is not None:
            return self._player.act_recurrent(self._learner(), observation, state, mask)
        states, one = self._player.states(observation, "act()")
        q = self._learner().q_values(states)  # (n, nb_outputs)
        actions = self._player.greedy(q, mask, "act()")
        if one:
            return int(actions[0]) if actions.ndim == 1 else actions[0]
        return actions

    def export(
        self,
        path: str | os.PathLike,
        format: str = "onnx",
        mask: bool = False,
        verbose: bool = False,
    ) -> str:
        """Writes the greedy policy as an artifact that runs without qlearning4k or Keras.

        Inputs: the model's (`state` `(n, nb_frames) + frame_shape` in its
        dtype, as a `FrameStack` keeps it, or one per part by name) and with
        `mask=True` a bool `mask` `(n, width)` of possible actions (none in
        a part: its action 0). Outputs: `action` (int32 `(n,)`, `(n,
        nb_parts)` for branches) and `q_values` (float32 `(n, width)`, C51's
        and QR-DQN's means, no noise); `width` counts all parts' actions.

        Args:
            path: A `.onnx` or `.tflite` file, or a folder for `tf_saved_model`.
            format: `"onnx"` (`onnxruntime`), `"tf_saved_model"` (TensorFlow;
                not on PyTorch) or `"litert"` (`ai-edge-litert`; TensorFlow
                only), by `keras.Model.export`. Defaults to `"onnx"`.
            mask: Whether the artifact takes a mask. Defaults to `False`.
            verbose: Whether Keras prints what it writes. Defaults to `False`.

        Returns:
            `path`, as a string.

        Raises:
            ValueError: If the backend lacks `format`, or `path` ends wrongly.

        Example:

        ```python
        agent.export("catch.onnx")
        session = onnxruntime.InferenceSession("catch.onnx")
        action, q_values = session.run(None, {"state": state[None].astype("float32")})
        ```
        """
        policy = policy_model(self.model, self.nb_actions, self.distribution, mask=bool(mask))
        return export_policy(policy, os.fspath(path), format, bool(verbose))
