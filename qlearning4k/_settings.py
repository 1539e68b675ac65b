"""The settings of one training run: `Agent.train()`'s arguments, checked, as `Settings`.

`train_settings()` checks every argument of `train()` in the order the
errors are documented, before any game step, and returns the frozen
`Settings` that the training run (or the Ray actors' run) reads, with the
epsilon schedules as small objects.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import keras
import numpy as np

from qlearning4k._checks import (
    _check_batch_size,
    _check_epsilon,
    _check_positive_int,
    _check_unit,
    _is_int,
)
from qlearning4k._learner import StepConfig
from qlearning4k._player import as_game, restricts_actions
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.noisy_dense import _has_noise
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay
from qlearning4k.sequence_replay import SequenceReplay

MAX_DEFERRED = 8  # gradient steps that may wait for one compiled call


@dataclasses.dataclass(frozen=True)
class GamesEpsilon:
    """Epsilon of each game: 1 while observing, then linear from `start` to `end`
    over `decay` games (`end` at once when `decay` is 0)."""

    start: float
    end: float
    observe: int
    decay: float

    def __call__(self, epoch: int) -> float:
        if epoch < self.observe:
            return 1.0
        if self.decay == 0:
            return self.end
        return self.start + (self.end - self.start) * min(1.0, (epoch - self.observe) / self.decay)

    def many(self, epochs: np.ndarray) -> np.ndarray:
        """`self(epoch)` of each of `epochs` (ints), as float64: the same numbers."""
        epochs = np.asarray(epochs, dtype=np.int64)
        if self.decay == 0:
            decayed = np.full(len(epochs), self.end)
        else:
            share = np.minimum(1.0, (epochs - self.observe) / self.decay)
            decayed = self.start + (self.end - self.start) * share
        return np.where(epochs < self.observe, 1.0, decayed)


@dataclasses.dataclass(frozen=True)
class StepsEpsilon:
    """Epsilon after a number of env steps: Stable-Baselines3's linear schedule
    from `start` to `end` over `decay` env steps (`end` at once when 0)."""

    start: float
    end: float
    decay: float

    def __call__(self, env_steps: int) -> float:
        if self.decay == 0:
            return self.end
        return self.start + (self.end - self.start) * min(1.0, env_steps / self.decay)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The arguments of `Agent.train()`, checked, for one run."""

    nb_epoch: int  # games; with a step budget, as many as it takes
    total_timesteps: int | None  # env steps of all copies together, or None
    batch_size: int
    gamma: float
    epsilon_of: GamesEpsilon  # epsilon of a game (games budget)
    epsilon_at: StepsEpsilon  # epsilon after that many env steps (step budget)
    observe: int  # games
    learning_starts: int  # env steps
    reset_memory: bool
    checkpoint: int | None
    checkpoint_path: str
    keep_checkpoints: int
    verbose: int
    user_callbacks: list
    nb_parallel: int
    train_freq: int
    gradient_steps: int  # per learning step, resolved from -1
    max_steps: int | None
    on_nan: str
    target_update: int | float | None  # gradient steps, or tau
    target_update_interval: int | None  # env steps
    double_dqn: bool
    n_step: int
    single_core: bool


class RemotePlay:
    """What `Agent.train(actors=...)` takes: a way to play the game's copies in
    other processes while this one learns (`qlearning4k.actors.RayActors`)."""

    def _train(self, agent, game, settings: Settings):
        """Runs the training with `settings`; returns its `History`."""
        raise NotImplementedError


def train_settings(agent, game, arguments: dict):
    """Checks `train()`'s `arguments` (its keyword arguments but `game`) against
    the agent and `game`; returns `(Settings, game)`, a Gymnasium vector env
    wrapped as a `GymVectorGame`.

    Raises:
        TypeError, ValueError: As `Agent.train()` documents.
    """
    a = dict(arguments)
    _check_budget(a)
    _check_learning(a, agent.memory)
    _check_run(a)
    if agent._player.recurrent is not None:
        _check_recurrent(a, agent.model)
    game = as_game(game, lambda: int(agent.rng.integers(2**31)))
    agent._player.check_game(game)
    if a["actors"] is not None:
        _check_actors(a, game)
    if isinstance(game, VectorGame):
        _check_vector_game(a, game)
    return _settings(a, game), game


def _check_budget(a: dict) -> None:
    """The budget (games or env steps) and what counts in the same unit."""
    if a["total_timesteps"] is not None:
        a["total_timesteps"] = _check_positive_int("total_timesteps", a["total_timesteps"])
        if a["nb_epoch"] is not None:
            raise ValueError(
                "Pass one budget: nb_epoch (games) or total_timesteps (env steps). "
                f"Received: nb_epoch={a['nb_epoch']!r}, "
                f"total_timesteps={a['total_timesteps']!r}"
            )
        if a["observe"]:
            raise ValueError(
                "observe counts games; with total_timesteps pass learning_starts (env "
                f"steps). Received: observe={a['observe']!r}, "
                f"total_timesteps={a['total_timesteps']!r}"
            )
        a["nb_epoch"] = sys.maxsize  # as many games as the budget takes
    else:
        nb_epoch = 1000 if a["nb_epoch"] is None else a["nb_epoch"]
        a["nb_epoch"] = _check_positive_int("nb_epoch", nb_epoch)
    learning_starts, observe = a["learning_starts"], a["observe"]
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
    if a["target_update_interval"] is not None:
        a["target_update_interval"] = _check_positive_int(
            "target_update_interval", a["target_update_interval"]
        )
        if a["target_update"] is not None:
            raise ValueError(
                "Pass one of target_update (gradient steps, or tau) and "
                "target_update_interval (env steps). Received: "
                f"target_update={a['target_update']!r}, "
                f"target_update_interval={a['target_update_interval']!r}"
            )


def _check_learning(a: dict, memory: Memory) -> None:
    """Batches, schedules and the DQN options, against the memory."""
    a["batch_size"] = _check_batch_size(a["batch_size"])
    a["gamma"] = _check_unit("gamma", a["gamma"])
    a["epsilon"] = _check_epsilon(a["epsilon"])
    a["epsilon_rate"] = _check_unit("epsilon_rate", a["epsilon_rate"])
    if not _is_int(a["observe"]) or a["observe"] < 0:
        raise ValueError(f"observe must be an int >= 0. Received: observe={a['observe']!r}")
    a["nb_parallel"] = _check_positive_int("nb_parallel", a["nb_parallel"])
    a["train_freq"] = _check_positive_int("train_freq", a["train_freq"])
    if not (_is_int(a["gradient_steps"]) and a["gradient_steps"] == -1):
        a["gradient_steps"] = _check_positive_int("gradient_steps", a["gradient_steps"])
    if a["max_steps"] is not None:
        a["max_steps"] = _check_positive_int("max_steps", a["max_steps"])
    if a["resume"] and os.fspath(a["checkpoint_path"]).endswith(".h5"):
        raise ValueError(
            "resume=True needs checkpoint_path to be a folder (a whole-agent checkpoint). "
            f"Received: checkpoint_path={os.fspath(a['checkpoint_path'])!r}"
        )
    a["target_update"] = _check_target_update(a["target_update"])
    if not isinstance(a["double_dqn"], (bool, np.bool_)):
        raise TypeError(f"double_dqn must be a bool. Received: double_dqn={a['double_dqn']!r}")
    a["n_step"] = n_step = _check_positive_int("n_step", a["n_step"])
    if n_step > 255:
        raise ValueError(f"n_step must be at most 255. Received: n_step={n_step}")
    if not isinstance(a["single_core"], (bool, np.bool_)):
        raise TypeError(f"single_core must be a bool. Received: single_core={a['single_core']!r}")
    if type(memory).sample is Memory.sample:
        for name, default in (
            ("target_update", None),
            ("target_update_interval", None),
            ("double_dqn", False),
            ("n_step", 1),
        ):
            if a[name] != default:
                raise ValueError(
                    f"{name} needs a memory that implements sample() (as ExperienceReplay "
                    f"does). Received: {name}={a[name]!r} with a {type(memory).__name__}"
                )
    if n_step > 1 and not isinstance(memory, (ExperienceReplay, SequenceReplay)):
        raise ValueError(
            "n_step > 1 needs an ExperienceReplay memory (it stores each transition's "
            f"number of steps). Received: n_step={n_step} with a {type(memory).__name__}"
        )


def _check_run(a: dict) -> None:
    """NaNs, checkpoints, output and callbacks."""
    if a["on_nan"] not in ("raise", "continue"):
        raise ValueError(f"on_nan must be 'raise' or 'continue'. Received: on_nan={a['on_nan']!r}")
    if a["checkpoint"] is not None:
        a["checkpoint"] = _check_positive_int("checkpoint", a["checkpoint"])
        path = os.fspath(a["checkpoint_path"])
        if path.endswith(".h5") and not path.endswith(".weights.h5"):
            raise ValueError(
                "checkpoint_path must be a folder (the whole agent) or end in "
                f".weights.h5 (the weights only). Received: checkpoint_path={path!r}"
            )
    verbose = a["verbose"]
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")
    a["callbacks"] = list(a["callbacks"] or [])
    for callback in a["callbacks"]:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                "callbacks must be keras.callbacks.Callback instances. "
                f"Received: {callback!r} (of type {type(callback).__name__})"
            )


def _check_recurrent(a: dict, model) -> None:
    """What a recurrent agent does not train with (yet): a clear error naming it."""
    unsupported = {"actors": None, "reset_memory": False}
    for name, default in unsupported.items():
        if a[name] is not default and a[name] != default:
            raise ValueError(
                f"A recurrent agent does not train with {name} yet. Received: {name}={a[name]!r}"
            )
    if _has_noise(model):
        raise ValueError(
            "A recurrent agent does not train with noisy layers (NoisyDense) yet: explore "
            f"with epsilon. Received: a model {model.name!r} with NoisyDense layers"
        )


def _check_actors(a: dict, game) -> None:
    """`train(actors=...)`'s checks: what runs with actors and what does not."""
    actors = a["actors"]
    if not isinstance(actors, RemotePlay):
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
        if a[name] != default:
            raise ValueError(
                f"train(actors=...) does not take {name}: the actors play the copies "
                f"(RayActors.nb_copies), in their own processes. Received: "
                f"{name}={a[name]!r}"
            )


def _check_vector_game(a: dict, game: VectorGame) -> None:
    """A vector game plays its own copies; its environments may not be resumable."""
    if a["nb_parallel"] not in (1, game.nb_copies):
        raise ValueError(
            "A vector game plays its own copies: leave nb_parallel at 1 (or pass its "
            f"nb_copies). Received: nb_parallel={a['nb_parallel']} with nb_copies="
            f"{game.nb_copies}"
        )
    a["nb_parallel"] = game.nb_copies
    if a["resume"] and not getattr(game, "_resumable", True):
        raise ValueError(
            f"resume=True restores the games of the checkpointed run, and a "
            f"{type(game).__name__}'s environments cannot be saved. Received: "
            f"resume=True with {game!r}"
        )


def _settings(a: dict, game) -> Settings:
    """The checked arguments as `Settings`, with their schedules."""
    eps_start, eps_end = a["epsilon"]
    nb_epoch, nb_parallel, rate = a["nb_epoch"], a["nb_parallel"], a["epsilon_rate"]
    nb_copies = nb_parallel if isinstance(game, VectorGame) else min(nb_parallel, nb_epoch)
    gradient_steps = a["gradient_steps"]
    return Settings(
        nb_epoch=nb_epoch,
        total_timesteps=a["total_timesteps"],
        batch_size=a["batch_size"],
        gamma=a["gamma"],
        epsilon_of=GamesEpsilon(eps_start, eps_end, a["observe"], nb_epoch * rate),
        epsilon_at=StepsEpsilon(eps_start, eps_end, (a["total_timesteps"] or 0) * rate),
        observe=a["observe"],
        learning_starts=int(a["learning_starts"]),
        reset_memory=bool(a["reset_memory"]),
        checkpoint=a["checkpoint"],
        checkpoint_path=a["checkpoint_path"],
        keep_checkpoints=_check_positive_int("keep_checkpoints", a["keep_checkpoints"]),
        verbose=a["verbose"],
        user_callbacks=a["callbacks"],
        nb_parallel=nb_parallel,
        train_freq=a["train_freq"],
        gradient_steps=a["train_freq"] * nb_copies if gradient_steps == -1 else gradient_steps,
        max_steps=a["max_steps"],
        on_nan=a["on_nan"],
        target_update=a["target_update"],
        target_update_interval=a["target_update_interval"],
        double_dqn=bool(a["double_dqn"]),
        n_step=a["n_step"],
        single_core=bool(a["single_core"]),
    )


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


def step_config(settings: Settings, game, memory, model) -> StepConfig:
    """The compiled step of a run (or of a run with actors): what `settings` ask
    for, masks only for games that can forbid actions (the others pay nothing),
    priorities with a `PrioritizedExperienceReplay`, noise with noisy layers."""
    return StepConfig(
        batch_size=settings.batch_size,
        max_steps=max(settings.gradient_steps, MAX_DEFERRED),
        target_update=settings.target_update,
        double_dqn=settings.double_dqn,
        target_copied=settings.target_update_interval is not None,
        masked=restricts_actions(game),
        prioritized=isinstance(memory, PrioritizedExperienceReplay)
        or (isinstance(memory, SequenceReplay) and memory.prioritized),
        noisy=_has_noise(model),
    )
