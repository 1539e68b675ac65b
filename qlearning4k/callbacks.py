"""`EvalCallback`: evaluates the agent during training, for Keras' callbacks to act on."""

from __future__ import annotations

import os
import time

import keras

from qlearning4k._checks import _check_positive_int
from qlearning4k._player import as_game
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame


class EvalCallback(keras.callbacks.Callback):
    """Evaluates the greedy policy every so often during `Agent.train()`.

    Before training, and then every `every_games` training games or every
    `every_steps` env steps, it plays `nb_games` seeded games of its own
    `game` with `Agent.evaluate()` (the same games each time) and puts the
    latest results into the logs of every game: `eval_score` (mean score),
    `eval_win_rate`, and `eval_seconds` (the evaluations' time so far).
    Keras' `EarlyStopping`, `ModelCheckpoint`, `CSVLogger` and `TensorBoard`
    then work on them, and `History` records them. An `EvalCallback` runs
    before the other callbacks of the run, whatever their order in the list.

    Its time is left out of training's: the `time` log, and the env steps a
    second of the progress bar, count training only. Evaluation does not use
    the training's random generators, so a run gives the same result with or
    without it.

    Args:
        game: The `Game` to evaluate on (copies of it are played), or a
            `VectorGame` or `gymnasium.vector.VectorEnv` (its copies play).
        every_games: Evaluate every this many training games. Defaults to
            `None`.
        every_steps: Or every this many env steps (at the end of the game
            that crosses the mark). Give exactly one of the two. Defaults to
            `None`.
        nb_games: Games per evaluation. Defaults to 100.
        seed: Seed of the evaluation games (see `Agent.evaluate`).
            Defaults to 0.
        epsilon: Probability of a random move while evaluating. Defaults
            to 0.
        max_steps: Steps after which an evaluation game stops. Defaults to
            1000.
        best_path: A folder where the agent is saved (`Agent.save`, without
            its memory) each time `eval_score` is the best so far, or `None`.
            Defaults to `None`.
        threshold: Stop training once `eval_score` reaches this (before any
            game, if the first evaluation does), or `None`. Defaults to
            `None`.
        verbose: 1 prints a line per evaluation. Defaults to 0.

    Attributes:
        results: One dict per evaluation: what `Agent.evaluate` returned,
            with `games` and `env_steps` (of training so far; 0 for the
            evaluation before training) and `training_seconds`.
        best_score: The best `eval_score` so far.
        seconds: Seconds spent evaluating.

    Raises:
        TypeError: If `game` is not a `Game`, `VectorGame` or `VectorEnv`.
        ValueError: If not exactly one of `every_games` and `every_steps` is
            given, or a count is not positive.

    Example:

    ```python
    evaluation = EvalCallback(Catch(), every_games=100, nb_games=100, threshold=1.0)
    agent.train(Catch(seed=0), nb_epoch=2000, callbacks=[
        evaluation,
        keras.callbacks.EarlyStopping(monitor="eval_score", mode="max", patience=500),
    ])
    print(evaluation.results[-1]["mean_score"], evaluation.seconds)
    ```
    """

    # Read by the training run: runs before the other callbacks, and its
    # time is left out of the training time.
    _evaluates = True

    def __init__(
        self,
        game: Game | VectorGame,
        every_games: int | None = None,
        every_steps: int | None = None,
        nb_games: int = 100,
        seed: int = 0,
        epsilon: float = 0.0,
        max_steps: int | None = 1000,
        best_path: str | os.PathLike | None = None,
        threshold: float | None = None,
        verbose: int = 0,
    ):
        super().__init__()
        game = as_game(game, lambda: seed)
        if not isinstance(game, (Game, VectorGame)):
            raise TypeError(
                "EvalCallback expects a qlearning4k Game, VectorGame or a gymnasium "
                f"VectorEnv. Received: {game!r} (of type {type(game).__name__})"
            )
        if (every_games is None) == (every_steps is None):
            raise ValueError(
                "EvalCallback needs exactly one of every_games and every_steps. "
                f"Received: every_games={every_games!r}, every_steps={every_steps!r}"
            )
        if every_games is not None:
            every_games = _check_positive_int("every_games", every_games)
        if every_steps is not None:
            every_steps = _check_positive_int("every_steps", every_steps)
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise TypeError(f"threshold must be a number or None. Received: {threshold!r}")
        self.game = game
        self.every_games, self.every_steps = every_games, every_steps
        self.evaluate_kwargs = {
            "nb_games": _check_positive_int("nb_games", nb_games),
            "seed": seed,
            "epsilon": epsilon,
            "max_steps": max_steps,
        }
        self.best_path = best_path
        self.threshold = threshold
        self.verbose = verbose
        self.results: list[dict] = []
        self.best_score = float("-inf")
        self.seconds = 0.0
        self._agent = None
        self._distribution = None  # the training agent's (see `_set_agent`)
        self._env_steps = 0
        self._next_steps = every_steps
        self._logs: dict = {}

    def set_model(self, model):
        super().set_model(model)
        self._agent = None  # made for this model on the first evaluation

    def _set_agent(self, agent) -> None:
        """Called by the training run: evaluate the model as `agent` reads it."""
        self._distribution = agent.distribution

    def on_train_begin(self, logs=None):
        # The game is checked against the model here, before any training
        # step; the first results are in the logs from the first game on.
        self._evaluate(-1, {})

    def _evaluator(self):
        if self._agent is None:
            from qlearning4k.agent import Agent

            self._agent = Agent(self.model, distribution=self._distribution)
        return self._agent

    def _due(self, epoch: int) -> bool:
        if self.every_games is not None:
            return (epoch + 1) % self.every_games == 0
        if self._env_steps < self._next_steps:
            return False
        while self._next_steps <= self._env_steps:
            self._next_steps += self.every_steps
        return True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self._env_steps += int(logs.get("steps", 0))
        if self._due(epoch):
            self._evaluate(epoch, logs)
        logs.update(self._logs)

    def _evaluate(self, epoch: int, logs: dict) -> None:
        start = time.perf_counter()
        results = self._evaluator().evaluate(self.game, **self.evaluate_kwargs)
        score = results["mean_score"]
        improved = score > self.best_score
        if improved:
            self.best_score = score
            if self.best_path is not None:
                self._agent.save(self.best_path)
        self.seconds += time.perf_counter() - start
        results.update(
            games=epoch + 1, env_steps=self._env_steps, training_seconds=logs.get("time", 0.0)
        )
        self.results.append(results)
        self._logs = {
            "eval_score": score,
            "eval_win_rate": results["win_rate"],
            "eval_seconds": self.seconds,
        }
        if self.verbose:
            print(
                f"Evaluation after {epoch + 1} games ({self._env_steps} env steps): "
                f"score {score:.3f} (best {self.best_score:.3f}), "
                f"win rate {results['win_rate']:.2%}"
            )
        if self.threshold is not None and score >= self.threshold:
            self.model.stop_training = True
