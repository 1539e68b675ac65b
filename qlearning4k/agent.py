"""`Agent`: trains a compiled Keras model to play a `Game` by deep Q-learning."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checkpoints import (
    _SETTINGS_FILE,
    _damage,
    _replace_folder,
    _saved_folder,
    _saved_folders,
    _write_manifest,
)
from qlearning4k._checks import (
    _check_batch_size,
    _check_epsilon,
    _check_positive_int,
    _check_unit,
    _is_int,
)
from qlearning4k._evaluation import _play_games, _summary
from qlearning4k._learner import StepConfig, make_learner
from qlearning4k._training import _Settings, _TrainingRun
from qlearning4k.actors import RayActors
from qlearning4k.distributional import C51, QuantileRegression, _from_config, _to_config
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.history import History
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay
from qlearning4k.render import save_gif

_SAVE_FORMAT = 1
_MODEL_FILE = "model.keras"
_MEMORY_FILE = "memory.npz"
_RUN_FILE = "run.pkl"  # a checkpointed training run, for train(resume=True)


@contextlib.contextmanager
def _reading(folder: str, name: str):
    """Turns a failure to read a saved file into an error that names it."""
    try:
        yield
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, KeyError) as error:
        raise ValueError(
            f"Agent.load() could not read {name} in {folder!r}: it may be damaged "
            f"({type(error).__name__}: {error})"
        ) from error


def _model_signature(model) -> tuple[tuple, int]:
    """Checks `model` and returns `(input_shape, nb_actions)`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Agent expects a keras.Model. Received: {model!r} (of type {type(model).__name__})"
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Agent expects a compiled model: call model.compile(optimizer, loss) first. "
            f"Received: an uncompiled model {model.name!r}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "Agent expects a model with a known input, built from keras.Input (a Sequential "
            f"starting with keras.Input, or a functional model). Received: {model.name!r}"
        )
    if len(inputs) != 1:
        raise ValueError(f"Agent expects a model with one input. Received: {len(inputs)} inputs")
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] is None:
        shapes = [tuple(o.shape) for o in outputs]
        raise ValueError(
            "Agent expects a model with one output of shape (batch, nb_actions). "
            f"Received: output shapes {shapes}"
        )
    input_shape = tuple(inputs[0].shape[1:])
    if len(input_shape) < 2 or None in input_shape:
        raise ValueError(
            "Agent expects a model input of shape (batch, nb_frames) + frame_shape, fully "
            f"known. Received: input shape {tuple(inputs[0].shape)}"
        )
    return input_shape, int(outputs[0].shape[-1])


class Agent:
    """Trains a compiled Keras model to play a `Game` by deep Q-learning.

    The model maps a stack of the last `nb_frames` frames of a game to one
    Q-value per action: input `(batch, nb_frames) + frame_shape`, output
    `(batch, nb_actions)`. The agent plays the game, remembers transitions in
    a replay `Memory`, and after each step fits the model towards
    `r + gamma * max Q(s')` on a batch sampled from memory, all in one
    compiled call of the Keras backend in use.

    Args:
        model: A compiled `keras.Model` with one input and one output, as
            above. Its compiled loss and optimizer are used as they are.
        memory: A `Memory`, or `None` for `ExperienceReplay(memory_size)`.
            Defaults to `None`.
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
        input_shape, nb_outputs = _model_signature(model)
        if distribution is not None and not isinstance(distribution, (C51, QuantileRegression)):
            raise TypeError(
                "distribution must be a qlearning4k C51 or QuantileRegression, "
                f"or None. Received: {distribution!r} (of type {type(distribution).__name__})"
            )
        atoms = 1 if distribution is None else distribution.nb_atoms
        if nb_outputs % atoms:
            raise ValueError(
                f"With {type(distribution).__name__}, the model outputs nb_actions * nb_atoms "
                f"units ({atoms} per action). Received: {nb_outputs} outputs"
            )
        self.nb_actions = nb_outputs // atoms
        self.distribution = distribution
        if nb_frames is not None:
            nb_frames = _check_positive_int("nb_frames", nb_frames)
            if nb_frames != input_shape[0]:
                raise ValueError(
                    "nb_frames must match the model's input (batch, nb_frames) + frame_shape. "
                    f"Received: nb_frames={nb_frames} (model input has {input_shape[0]})"
                )
        self.model = model
        self.nb_frames = input_shape[0]
        self.frame_shape = input_shape[1:]
        agent_seed, memory_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(agent_seed)
        if memory is None:
            memory = ExperienceReplay(memory_size, seed=memory_seed)
        elif not isinstance(memory, Memory):
            raise TypeError(
                "memory must be a qlearning4k Memory or None. "
                f"Received: {memory!r} (of type {type(memory).__name__})"
            )
        self.memory = memory
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
        config = dataclasses.replace(config or StepConfig(), distribution=self.distribution)
        if config not in self._learners:
            self._learners[config] = make_learner(self.model, config)
        return self._learners[config]

    def _check_game(self, game) -> None:
        if not isinstance(game, (Game, VectorGame)):
            raise TypeError(
                "Expected a qlearning4k Game, a VectorGame or a gymnasium.vector.VectorEnv. "
                f"Received: {game!r} (of type {type(game).__name__})"
            )
        if game.nb_actions != self.nb_actions:
            raise ValueError(
                f"The model has {self.nb_actions} outputs but {type(game).__name__} has "
                f"nb_actions={game.nb_actions}. Received: game {game.name!r}"
            )
        game.reset()
        if isinstance(game, VectorGame):
            self._check_frames(game, game.get_frames())
        else:
            self._check_frame(game, game.get_frame())

    def _check_frame(self, game, frame) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(
                f"The model takes frames of shape {self.frame_shape} (its input is "
                f"(batch, {self.nb_frames}) + {self.frame_shape}), but "
                f"{type(game).__name__}.get_frame() returned shape {frame.shape}."
            )
        return frame

    def _first_state(self, game) -> np.ndarray:
        """`(1, nb_frames) + frame_shape`: the first frame, repeated."""
        frame = self._check_frame(game, game.get_frame())
        return np.repeat(frame[None, None], self.nb_frames, axis=1)

    def _check_frames(self, game: VectorGame, frames) -> np.ndarray:
        """A vector game's `get_frames()`: `(nb_copies,) + frame_shape`."""
        try:
            frames = np.asarray(frames)
        except ValueError:  # frames of different shapes
            frames = np.empty(0)
        if frames.shape[1:] != self.frame_shape or len(frames) != game.nb_copies:
            raise ValueError(
                f"The model takes frames of shape {self.frame_shape} (its input is "
                f"(batch, {self.nb_frames}) + {self.frame_shape}), so "
                f"{type(game).__name__}.get_frames() must return shape "
                f"({game.nb_copies},) + {self.frame_shape}. Received: shape {frames.shape}"
            )
        return frames

    def _first_states(self, game: VectorGame, frames) -> np.ndarray:
        """`(nb_copies, nb_frames) + frame_shape`: each copy's first frame, repeated."""
        frames = self._check_frames(game, frames)
        return np.repeat(frames[:, None], self.nb_frames, axis=1)

    def _choose(self, game, q, explore: bool, rng: np.random.Generator | None = None) -> int:
        """An action among the game's possible ones: random (from `rng`, by default the
        agent's), or greedy on `q` `(nb_actions,)`."""
        possible = game.get_possible_actions()
        if len(possible) == 0:
            raise ValueError(f"{type(game).__name__}.get_possible_actions() returned no action.")
        if explore:
            rng = self.rng if rng is None else rng
            return int(possible[rng.integers(len(possible))])
        if len(possible) == self.nb_actions:
            return int(np.argmax(q))
        possible = np.asarray(possible)
        return int(possible[np.argmax(q[possible])])

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
        if total_timesteps is not None:
            total_timesteps = _check_positive_int("total_timesteps", total_timesteps)
            if nb_epoch is not None:
                raise ValueError(
                    "Pass one budget: nb_epoch (games) or total_timesteps (env steps). "
                    f"Received: nb_epoch={nb_epoch!r}, total_timesteps={total_timesteps!r}"
                )
            if observe:
                raise ValueError(
                    "observe counts games; with total_timesteps pass learning_starts (env "
                    f"steps). Received: observe={observe!r}, total_timesteps={total_timesteps!r}"
                )
            nb_epoch = sys.maxsize  # as many games as the budget takes
        else:
            nb_epoch = _check_positive_int("nb_epoch", 1000 if nb_epoch is None else nb_epoch)
        if not _is_int(learning_starts) or learning_starts < 0:
            raise ValueError(
                "learning_starts must be an int >= 0 (env steps). "
                f"Received: learning_starts={learning_starts!r}"
            )
        if learning_starts and observe:
            raise ValueError(
                "Pass one of observe (games) and learning_starts (env steps). "
                f"Received: observe={observe!r}, learning_starts={learning_starts!r}"
            )
        if target_update_interval is not None:
            target_update_interval = _check_positive_int(
                "target_update_interval", target_update_interval
            )
            if target_update is not None:
                raise ValueError(
                    "Pass one of target_update (gradient steps, or tau) and "
                    "target_update_interval (env steps). Received: "
                    f"target_update={target_update!r}, "
                    f"target_update_interval={target_update_interval!r}"
                )
        batch_size = _check_batch_size(batch_size)
        gamma = _check_unit("gamma", gamma)
        eps_start, eps_end = _check_epsilon(epsilon)
        epsilon_rate = _check_unit("epsilon_rate", epsilon_rate)
        if not _is_int(observe) or observe < 0:
            raise ValueError(f"observe must be an int >= 0. Received: observe={observe!r}")
        nb_parallel = _check_positive_int("nb_parallel", nb_parallel)
        train_freq = _check_positive_int("train_freq", train_freq)
        if not (_is_int(gradient_steps) and gradient_steps == -1):
            gradient_steps = _check_positive_int("gradient_steps", gradient_steps)
        if max_steps is not None:
            max_steps = _check_positive_int("max_steps", max_steps)
        if resume and os.fspath(checkpoint_path).endswith(".h5"):
            raise ValueError(
                "resume=True needs checkpoint_path to be a folder (a whole-agent checkpoint). "
                f"Received: checkpoint_path={os.fspath(checkpoint_path)!r}"
            )
        target_update = _check_target_update(target_update)
        if not isinstance(double_dqn, (bool, np.bool_)):
            raise TypeError(f"double_dqn must be a bool. Received: double_dqn={double_dqn!r}")
        n_step = _check_positive_int("n_step", n_step)
        if n_step > 255:
            raise ValueError(f"n_step must be at most 255. Received: n_step={n_step}")
        if not isinstance(single_core, (bool, np.bool_)):
            raise TypeError(f"single_core must be a bool. Received: single_core={single_core!r}")
        if type(self.memory).sample is Memory.sample:
            for name, value, default in (
                ("target_update", target_update, None),
                ("target_update_interval", target_update_interval, None),
                ("double_dqn", double_dqn, False),
                ("n_step", n_step, 1),
            ):
                if value != default:
                    raise ValueError(
                        f"{name} needs a memory that implements sample() (as ExperienceReplay "
                        f"does). Received: {name}={value!r} with a "
                        f"{type(self.memory).__name__}"
                    )
        if n_step > 1 and not isinstance(self.memory, ExperienceReplay):
            raise ValueError(
                "n_step > 1 needs an ExperienceReplay memory (it stores each transition's "
                f"number of steps). Received: n_step={n_step} with a {type(self.memory).__name__}"
            )
        if on_nan not in ("raise", "continue"):
            raise ValueError(f"on_nan must be 'raise' or 'continue'. Received: on_nan={on_nan!r}")
        if checkpoint is not None:
            checkpoint = _check_positive_int("checkpoint", checkpoint)
            path = os.fspath(checkpoint_path)
            if path.endswith(".h5") and not path.endswith(".weights.h5"):
                raise ValueError(
                    "checkpoint_path must be a folder (the whole agent) or end in "
                    f".weights.h5 (the weights only). Received: checkpoint_path={path!r}"
                )
        if isinstance(verbose, bool) or verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not isinstance(callback, keras.callbacks.Callback):
                raise TypeError(
                    "callbacks must be keras.callbacks.Callback instances. "
                    f"Received: {callback!r} (of type {type(callback).__name__})"
                )
        game = _as_game(game, lambda: int(self.rng.integers(2**31)))
        self._check_game(game)
        if actors is not None:
            _check_actors(
                actors, game, nb_parallel=nb_parallel, checkpoint=checkpoint, resume=resume,
                reset_memory=reset_memory, single_core=single_core,
            )  # fmt: skip
        if isinstance(game, VectorGame):
            if nb_parallel not in (1, game.nb_copies):
                raise ValueError(
                    "A vector game plays its own copies: leave nb_parallel at 1 (or pass its "
                    f"nb_copies). Received: nb_parallel={nb_parallel} with nb_copies="
                    f"{game.nb_copies}"
                )
            nb_parallel = game.nb_copies
            if resume and not getattr(game, "_resumable", True):
                raise ValueError(
                    f"resume=True restores the games of the checkpointed run, and a "
                    f"{type(game).__name__}'s environments cannot be saved. Received: "
                    f"resume=True with {game!r}"
                )

        decay_epochs = nb_epoch * epsilon_rate
        decay_steps = (total_timesteps or 0) * epsilon_rate

        def epsilon_of(epoch: int) -> float:
            if epoch < observe:
                return 1.0
            if decay_epochs == 0:
                return eps_end
            return eps_start + (eps_end - eps_start) * min(1.0, (epoch - observe) / decay_epochs)

        def epsilon_at(env_steps: int) -> float:  # Stable-Baselines3's linear schedule
            if decay_steps == 0:
                return eps_end
            return eps_start + (eps_end - eps_start) * min(1.0, env_steps / decay_steps)

        nb_copies = nb_parallel if isinstance(game, VectorGame) else min(nb_parallel, nb_epoch)
        settings = _Settings(
            nb_epoch=nb_epoch,
            total_timesteps=total_timesteps,
            batch_size=batch_size,
            gamma=gamma,
            epsilon_of=epsilon_of,
            epsilon_at=epsilon_at,
            observe=observe,
            learning_starts=int(learning_starts),
            reset_memory=bool(reset_memory),
            checkpoint=checkpoint,
            checkpoint_path=checkpoint_path,
            keep_checkpoints=_check_positive_int("keep_checkpoints", keep_checkpoints),
            verbose=verbose,
            user_callbacks=callbacks,
            nb_parallel=nb_parallel,
            train_freq=train_freq,
            gradient_steps=train_freq * nb_copies if gradient_steps == -1 else gradient_steps,
            max_steps=max_steps,
            on_nan=on_nan,
            target_update=target_update,
            target_update_interval=target_update_interval,
            double_dqn=bool(double_dqn),
            n_step=n_step,
            single_core=bool(single_core),
        )
        if actors is not None:
            return actors._train(self, game, settings)
        run_state = self._restore(os.fspath(checkpoint_path)) if resume else None
        rng_state = self.rng.bit_generator.state
        run = _TrainingRun(self, game, settings)
        if run_state is not None:
            self.rng.bit_generator.state = rng_state  # as checkpointed, before the copies' seeds
            run.resume(run_state)
        return run.run()

    def _save_checkpoint(self, path: str, run_state: dict | None = None, keep: int = 1) -> None:
        """`checkpoint=` in `train()`: the weights only, or the whole agent and run."""
        if str(path).endswith(".weights.h5"):
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            temporary = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
            self.model.save_weights(temporary)
            os.replace(temporary, path)
        else:
            self._save(path, include_memory=isinstance(self.memory, ExperienceReplay),
                       run_state=run_state, keep=keep)  # fmt: skip

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
        if include_memory and not isinstance(self.memory, ExperienceReplay):
            raise ValueError(
                "include_memory=True saves an ExperienceReplay. "
                f"Received: a memory of type {type(self.memory).__name__}"
            )
        self._save(path, include_memory)

    def _save(
        self, path, include_memory: bool, run_state: dict | None = None, keep: int = 1
    ) -> None:
        """`save()`, plus the state of a training run for `train(resume=True)`."""
        path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        temporary = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
        try:
            self.model.save(os.path.join(temporary, _MODEL_FILE))
            memory = self.memory
            settings = {
                "format": _SAVE_FORMAT,
                "nb_frames": self.nb_frames,
                "distribution": _to_config(self.distribution),
                "rng": self.rng.bit_generator.state,
                "memory": {
                    "class": type(memory).__name__,
                    "memory_size": memory.memory_size,
                    "rng": memory.rng.bit_generator.state if hasattr(memory, "rng") else None,
                    "config": memory._config() if hasattr(memory, "_config") else {},
                },
            }
            with open(os.path.join(temporary, _SETTINGS_FILE), "w") as f:
                json.dump(settings, f, indent=2, default=int)
            if include_memory:
                np.savez(os.path.join(temporary, _MEMORY_FILE), **memory._get_state())
            if run_state is not None:
                with open(os.path.join(temporary, _RUN_FILE), "wb") as f:
                    pickle.dump(run_state, f, protocol=pickle.HIGHEST_PROTOCOL)
            _write_manifest(temporary)
            _replace_folder(temporary, path, keep)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise

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
        path = _saved_folder(os.fspath(path))
        damage = _damage(path)
        if damage is not None:
            raise ValueError(
                f"Agent.load() found a damaged save: {damage}. Received: path={path!r}"
            )
        if not os.path.isfile(os.path.join(path, _SETTINGS_FILE)):
            raise FileNotFoundError(
                f"Agent.load() expects a folder written by Agent.save(). Received: {path!r} "
                f"(no {_SETTINGS_FILE} in it)"
            )
        return cls._load(path, memory)

    @classmethod
    def _load(cls, path: str, memory: Memory | None) -> Agent:
        """`load()` of a folder whose checksums are checked."""
        settings_path = os.path.join(path, _SETTINGS_FILE)
        with _reading(path, _SETTINGS_FILE), open(settings_path) as f:
            settings = json.load(f)
        if settings.get("format") != _SAVE_FORMAT:
            raise ValueError(
                f"Agent.load() reads format {_SAVE_FORMAT}. "
                f"Received: format {settings.get('format')!r} in {settings_path}"
            )
        with _reading(path, _MODEL_FILE):
            model = keras.models.load_model(os.path.join(path, _MODEL_FILE))
        saved_memory = settings["memory"]
        if memory is None:
            kind = (
                PrioritizedExperienceReplay
                if saved_memory["class"] == PrioritizedExperienceReplay.__name__
                else ExperienceReplay
            )
            memory = kind(saved_memory["memory_size"], **saved_memory.get("config", {}))
            memory_file = os.path.join(path, _MEMORY_FILE)
            if os.path.isfile(memory_file):
                with _reading(path, _MEMORY_FILE), np.load(memory_file) as arrays:
                    memory._set_state(dict(arrays))
            if saved_memory.get("rng"):
                memory.rng.bit_generator.state = saved_memory["rng"]
        agent = cls(
            model,
            memory=memory,
            nb_frames=settings["nb_frames"],
            distribution=_from_config(settings.get("distribution")),
        )
        agent.rng.bit_generator.state = settings["rng"]
        return agent

    def _restore(self, path: str) -> dict | None:
        """Loads the newest intact checkpoint of `path` into this agent.

        Returns its run state, or `None` when there is no checkpoint of a
        run. Damaged checkpoints are skipped with a warning that names them.
        """
        damaged = []
        for folder in _saved_folders(path):
            damage = _damage(folder)
            if damage is None:
                break
            damaged.append(f"{folder}: {damage}")
            warnings.warn(
                f"resume=True skips a damaged checkpoint ({damage}): {folder}", stacklevel=4
            )
        else:
            if damaged:
                raise ValueError(
                    "resume=True found no intact checkpoint. Received: checkpoint_path="
                    f"{path!r}, whose checkpoints are damaged: " + "; ".join(damaged)
                )
            return None
        if damaged:
            warnings.warn(f"resume=True continues from the older checkpoint {folder}", stacklevel=4)
        run_file = os.path.join(folder, _RUN_FILE)
        if not os.path.isfile(run_file):
            return None
        saved = Agent._load(folder, None)
        model, optimizer = self.model, self.model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        pairs = [
            (model.trainable_variables, saved.model.trainable_variables),
            (model.non_trainable_variables, saved.model.non_trainable_variables),
            (optimizer.variables, saved.model.optimizer.variables),
        ]
        for mine, theirs in pairs:
            if len(mine) != len(theirs):
                raise ValueError(
                    f"resume=True needs the model of the checkpoint in {folder!r}: it has "
                    f"{len(theirs)} variables of a kind where this model has {len(mine)}."
                )
        for mine, theirs in pairs:
            for variable, value in zip(mine, theirs, strict=True):
                variable.assign(value)
        if isinstance(self.memory, ExperienceReplay):
            self.memory = saved.memory
        self.rng = saved.rng
        with _reading(folder, _RUN_FILE), open(run_file, "rb") as f:
            return pickle.load(f)

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
        nb_games = _check_positive_int("nb_games", nb_games)
        eps, _ = _check_epsilon(epsilon)
        if max_steps is not None:
            max_steps = _check_positive_int("max_steps", max_steps)
        nb_parallel = nb_games if nb_parallel is None else nb_parallel
        nb_parallel = _check_positive_int("nb_parallel", nb_parallel)
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ValueError(f"seed must be None or an int >= 0. Received: seed={seed!r}")
        if on_game_end is not None and not callable(on_game_end):
            raise TypeError(f"on_game_end must be callable. Received: {on_game_end!r}")
        if not isinstance(noisy, (bool, np.bool_)):
            raise TypeError(f"noisy must be a bool. Received: noisy={noisy!r}")
        game = _as_game(game, lambda: seed)
        self._check_game(game)
        if isinstance(game, VectorGame) and nb_parallel not in (nb_games, game.nb_copies):
            raise ValueError(
                "A vector game plays its own copies side by side: leave nb_parallel at None. "
                f"Received: nb_parallel={nb_parallel} with nb_copies={game.nb_copies}"
            )
        rng = self.rng if seed is None else np.random.default_rng([seed, 1])
        played = _play_games(
            self, game, nb_games, seed, eps, rng, max_steps, nb_parallel,
            on_game_end=on_game_end, noisy=bool(noisy),
        )  # fmt: skip
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
                animated GIF (from `game.draw()`). Defaults to `True`.
            path: The GIF file, or `None` for `"<game name>.gif"` in the
                current folder. Defaults to `None`.
            fps: Pictures per second of the GIF. Defaults to 10.
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
        self._check_game(game)
        played = _play_games(
            self, game, nb_epoch, None, eps, self.rng, max_steps, nb_epoch, draw=visualize
        )
        wins = int(played.won.sum())
        win_rate = wins / nb_epoch
        if visualize:
            path = path if path is not None else f"{game.name.lower()}.gif"
            save_gif([picture for shots in played.pictures for picture in shots], path, fps=fps)
        if verbose:
            print(f"Win rate: {win_rate:.2%} ({wins}/{nb_epoch} games)")
        return win_rate

    # -- deploying ----------------------------------------------------------

    def _states(self, observation, name: str) -> tuple[np.ndarray, bool]:
        """`(n, nb_frames) + frame_shape` from a frame, a state or a batch; whether one."""
        x = np.asarray(observation)
        rank = len(self.frame_shape)
        state_shape = (self.nb_frames, *self.frame_shape)
        if x.ndim == rank and x.shape == self.frame_shape and self.nb_frames == 1:
            return x[None, None], True
        if x.ndim == rank + 1 and x.shape == state_shape:
            return x[None], True
        if x.ndim == rank + 2 and x.shape[1:] == state_shape:
            return x, False
        one = " or a frame " + str(self.frame_shape) if self.nb_frames == 1 else ""
        raise ValueError(
            f"{name}() expects a state {state_shape}{one}, or a batch (n,) + {state_shape}. "
            f"Received: shape {x.shape}"
        )

    def q_values(self, observation: ArrayLike) -> np.ndarray:
        """The model's Q-values for one state or a batch of them, in one compiled call.

        Args:
            observation: A state `(nb_frames,) + frame_shape` (the last
                `nb_frames` frames, oldest first; a `FrameStack` keeps them),
                a batch of states `(n, nb_frames) + frame_shape`, or, when
                `nb_frames == 1`, a single frame `frame_shape`.

        Returns:
            `(nb_actions,)` for one state or frame, `(n, nb_actions)` for a
            batch.

        Raises:
            ValueError: If the shape fits neither.
        """
        states, one = self._states(observation, "q_values")
        q = self._learner().q_values(states)
        return q[0] if one else q

    def act(self, observation: ArrayLike, mask: ArrayLike | None = None) -> int | np.ndarray:
        """The greedy action for one state or a batch of them.

        Works the same after `Agent.load`, so a saved agent can be deployed
        in another program: feed it what the game shows, get its move.

        Args:
            observation: As for `q_values()`: a state, a batch of states or
                (with one frame per state) a frame.
            mask: The possible actions, a bool array `(nb_actions,)` (for
                every state) or `(n, nb_actions)`; `None` for all of them.
                Defaults to `None`.

        Returns:
            An int for one state or frame, an `(n,)` int array for a batch.

        Raises:
            ValueError: If the shapes do not fit or a mask allows no action.

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
        states, one = self._states(observation, "act")
        q = self._learner().q_values(states)  # (n, nb_actions)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape not in ((self.nb_actions,), (len(states), self.nb_actions)):
                raise ValueError(
                    f"act() expects a mask of shape ({self.nb_actions},) or "
                    f"({len(states)}, {self.nb_actions}). Received: shape {mask.shape}"
                )
            if not np.broadcast_to(mask, q.shape).any(axis=1).all():
                raise ValueError("act() expects a mask that allows at least one action per state.")
            q = np.where(mask, q, -np.inf)
        actions = q.argmax(axis=1)
        return int(actions[0]) if one else actions


def _check_actors(actors, game, **options) -> None:
    """`train(actors=...)`'s checks: what runs with actors and what does not."""
    if not isinstance(actors, RayActors):
        raise TypeError(
            "actors must be a qlearning4k.actors.RayActors or None. "
            f"Received: {actors!r} (of type {type(actors).__name__})"
        )
    if isinstance(game, VectorGame):
        raise ValueError(
            "train(actors=...) plays copies of a Game on each actor (RayActors.nb_copies). "
            f"Received: a {type(game).__name__}"
        )
    unsupported = {"nb_parallel": 1, "checkpoint": None, "resume": False,
                   "reset_memory": False, "single_core": False}  # fmt: skip
    for name, default in unsupported.items():
        if options[name] != default:
            raise ValueError(
                f"train(actors=...) does not take {name}: the actors play the copies "
                f"(RayActors.nb_copies), in their own processes. Received: "
                f"{name}={options[name]!r}"
            )


def _as_game(game, seed: Callable[[], int | None]):
    """`game`, with a `gymnasium.vector.VectorEnv` wrapped in a `GymVectorGame`
    whose first reset gets the seed `seed()` (called only then)."""
    gymnasium = sys.modules.get("gymnasium")  # a vector env means Gymnasium is imported
    if gymnasium is not None and isinstance(game, gymnasium.vector.VectorEnv):
        from qlearning4k.games.gym_vector_game import GymVectorGame

        return GymVectorGame(game, seed=seed())
    return game


def _check_target_update(value):
    """`None`, an int >= 1 (hard updates) or a float in (0, 1) (soft updates)."""
    if value is None:
        return None
    if _is_int(value):
        if value < 1:
            raise ValueError(
                "target_update must be an int >= 1 (gradient steps between copies) or a float "
                f"in (0, 1) (soft updates). Received: target_update={value}"
            )
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not 0.0 < value < 1.0:
            raise ValueError(
                "target_update must be an int >= 1 (gradient steps between copies) or a float "
                f"in (0, 1) (soft updates). Received: target_update={value}"
            )
        return float(value)
    raise TypeError(
        "target_update must be None, an int or a float. "
        f"Received: target_update={value!r} (of type {type(value).__name__})"
    )
