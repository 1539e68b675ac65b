"""`train_trial`: `Agent.train` as a Ray Tune trial, reporting and checkpointing through Tune.

Needs Ray Tune: `pip install "qlearning4k[ray]"`. The function runs inside
the function a `ray.tune.Tuner` calls for each trial; Tune's schedulers (ASHA,
PBT) and fault tolerance (`FailureConfig(max_failures=...)`) then work on the
trial as on any other.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from qlearning4k._checks import _check_positive_int
from qlearning4k.agent import Agent
from qlearning4k.callbacks import EvalCallback
from qlearning4k.games.game import Game
from qlearning4k.history import History

__all__ = ["train_trial"]

_AGENT_FOLDER = "agent"  # in each Tune checkpoint: the folder `Agent.load` reads
_TRIAL_FILE = "trial.json"  # beside it: what the trial had reported

# Set by `train_trial` itself, not by its caller.
_OWN_ARGUMENTS = ("checkpoint", "checkpoint_path", "resume", "keep_checkpoints")


def _tune():
    try:
        import ray.tune
    except ImportError as error:
        raise ImportError(
            'qlearning4k.tune needs Ray Tune: pip install "qlearning4k[ray]"'
        ) from error
    return ray.tune


def train_trial(
    agent: Agent,
    game: Game,
    *,
    eval_game: Game,
    every_games: int,
    nb_eval_games: int = 10,
    eval_seed: int = 0,
    eval_max_steps: int | None = 1000,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    **train_kwargs: Any,
) -> History:
    """Runs `agent.train(game, ...)` as a Ray Tune trial.

    Every `every_games` training games it evaluates the agent on
    `nb_eval_games` seeded games of `eval_game` (an `EvalCallback`) and
    reports to Tune the metrics `eval_score`, `eval_win_rate`, `games`,
    `env_steps` and the last game's `score` and `loss`, with a checkpoint of
    the whole run: the agent, its memory and the run's state, as
    `train(checkpoint=every_games)` writes them, with their checksums. When
    training ends it reports the metrics of a last evaluation with the
    trained agent (without its memory).

    A trial that Tune restarts (after its process died, or to resume an
    experiment) continues from its last reported checkpoint exactly as
    `train(resume=True)` does: it ends as the uninterrupted trial would,
    and reports nothing twice. A trial that Tune's `PopulationBasedTraining`
    starts from another trial's checkpoint takes its weights, memory and run
    state, and keeps its own configuration: its own `train_kwargs` and the
    learning rate its model was compiled with.

    Each trial's `Result.checkpoint` holds the agent in its `agent` folder:
    `Agent.load(os.path.join(result.checkpoint.path, "agent"))`.

    Args:
        agent: The trial's `Agent`, built from its config.
        game: The game to train on.
        eval_game: The game to evaluate on (copies of it are played).
        every_games: Evaluate, report and checkpoint every this many
            training games.
        nb_eval_games: Games per evaluation. Defaults to 10.
        eval_seed: Seed of the evaluation games: the same games at every
            evaluation and in every trial. Defaults to 0.
        eval_max_steps: Steps after which an evaluation game stops.
            Defaults to 1000.
        callbacks: More `keras.callbacks.Callback`s for `train()`. Defaults
            to `None`.
        **train_kwargs: The other arguments of `Agent.train` (`nb_epoch` or
            `total_timesteps`, `batch_size`, `target_update`, ...), all but
            `checkpoint`, `checkpoint_path`, `resume` and `keep_checkpoints`,
            which `train_trial` sets.

    Returns:
        The `History` of the training run (of the whole run, when resumed).

    Raises:
        ImportError: If Ray Tune is not installed.
        RuntimeError: If it is not called inside a Ray Tune trial.
        ValueError: If `train_kwargs` sets one of the arguments it sets, or
            `every_games` or `nb_eval_games` is not a positive integer.

    Example:

    ```python
    from ray import tune
    from qlearning4k.tune import train_trial

    def trainable(config):
        agent = Agent(build_model(config["lr"]), memory_size=50_000, seed=config["seed"])
        train_trial(agent, GymGame("CartPole-v1", seed=config["seed"]),
                    eval_game=GymGame("CartPole-v1"), every_games=20,
                    total_timesteps=50_000, target_update=config["target_update"])

    tuner = tune.Tuner(trainable, param_space={"lr": tune.grid_search([1e-3, 3e-4]), ...},
                       tune_config=tune.TuneConfig(metric="eval_score", mode="max",
                                                   scheduler=ASHAScheduler()))
    best = tuner.fit().get_best_result()
    ```
    """
    tune = _tune()
    every_games = _check_positive_int("every_games", every_games)
    nb_eval_games = _check_positive_int("nb_eval_games", nb_eval_games)
    own = [name for name in _OWN_ARGUMENTS if name in train_kwargs]
    if own:
        raise ValueError(
            "train_trial sets checkpoint, checkpoint_path, resume and keep_checkpoints "
            f"itself. Received: {', '.join(f'{name}={train_kwargs[name]!r}' for name in own)}"
        )
    with warnings.catch_warnings():  # Ray warns outside a trial, where this raises below
        warnings.simplefilter("ignore")
        trial_id = tune.get_context().get_trial_id()
    if trial_id is None:
        raise RuntimeError(
            "train_trial runs inside a Ray Tune trial: call it in the function you pass "
            "to ray.tune.Tuner. Received: a call outside any trial"
        )
    workdir = tempfile.mkdtemp(prefix="qlearning4k-trial-")
    try:
        reported = _restore(tune.get_checkpoint(), workdir)
        extra = []
        if reported and reported["trial_id"] != trial_id:
            extra.append(_KeepLearningRate(agent.model.optimizer))  # PBT exploits another trial
        evaluation = EvalCallback(
            eval_game, every_games=every_games, nb_games=nb_eval_games, seed=eval_seed,
            max_steps=eval_max_steps,
        )  # fmt: skip
        report = _Report(tune, workdir, trial_id, every_games, reported)
        history = agent.train(
            game,
            checkpoint=every_games,
            checkpoint_path=os.path.join(workdir, _AGENT_FOLDER),
            keep_checkpoints=1,
            resume=reported is not None,
            callbacks=[evaluation, report, *extra, *(callbacks or [])],
            **train_kwargs,
        )
        report.final(agent, evaluation, history)
        return history
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _restore(checkpoint, workdir: str) -> dict | None:
    """Copies Tune's checkpoint into `workdir`; returns what it had reported."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        shutil.copytree(folder, workdir, dirs_exist_ok=True)
    with open(os.path.join(workdir, _TRIAL_FILE)) as f:
        return json.load(f)


class _Report(keras.callbacks.Callback):
    """Reports each evaluation to Tune with the checkpoint written at its game."""

    def __init__(self, tune, workdir: str, trial_id: str, every_games: int, reported):
        super().__init__()
        self.tune, self.workdir, self.trial_id = tune, workdir, trial_id
        self.every_games = every_games
        self.games = reported["games"] if reported else 0  # reported so far
        self.env_steps = reported["env_steps"] if reported else 0
        self.last: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if epoch + 1 <= self.games:
            return  # logged again after a resume, and reported before it
        self.games = epoch + 1
        self.env_steps += int(logs.get("steps", 0))
        self.last = {name: logs[name] for name in ("score", "loss") if name in logs}
        if self.games % self.every_games == 0:
            metrics = {
                "eval_score": float(logs["eval_score"]),
                "eval_win_rate": float(logs["eval_win_rate"]),
            }
            self._send(metrics)

    def _send(self, metrics: dict) -> None:
        metrics.update(games=self.games, env_steps=self.env_steps, **self.last)
        state = {"trial_id": self.trial_id, "games": self.games, "env_steps": self.env_steps}
        with open(os.path.join(self.workdir, _TRIAL_FILE), "w") as f:
            json.dump(state, f)
        checkpoint = self.tune.Checkpoint.from_directory(self.workdir)
        self.tune.report({k: float(v) for k, v in metrics.items()}, checkpoint=checkpoint)

    def final(self, agent: Agent, evaluation: EvalCallback, history: History) -> None:
        """The last report, unless the last game had one: an evaluation of the trained agent.

        Its checkpoint is the run's newest: that of the end of the budget
        (`nb_epoch` or `total_timesteps`), or of the last report if a
        callback stopped training.
        """
        if self.games % self.every_games == 0 and history.env_steps == self.env_steps:
            return
        self.env_steps = history.env_steps
        results = agent.evaluate(evaluation.game, **evaluation.evaluate_kwargs)
        self._send({"eval_score": results["mean_score"], "eval_win_rate": results["win_rate"]})


class _KeepLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate back to its own after a checkpoint restored another's."""

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer = optimizer
        # A schedule follows the optimizer's step count, which the checkpoint restores.
        scheduled = isinstance(
            getattr(optimizer, "_learning_rate", None),
            keras.optimizers.schedules.LearningRateSchedule,
        )
        self.value = None if scheduled else float(np.asarray(optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        if self.value is not None:
            self.optimizer.learning_rate = self.value
