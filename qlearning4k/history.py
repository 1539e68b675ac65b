"""`History`: what happened in each epoch of `Agent.train()`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class History(keras.callbacks.History):
    """Per-epoch record of a training run, returned by `Agent.train()`.

    A `keras.callbacks.History`, so it works wherever Keras expects one:
    `history.history` maps each log name to one value per epoch (game),
    `history.epoch` lists the epoch numbers.

    Logged per epoch: `loss` (mean loss of the epoch's gradient steps; NaN
    here, and absent from the callbacks' logs, when it had none), `epsilon`,
    `win` (1.0 or 0.0), `win_rate` (over the last 100 games), `score` (sum of
    the game's rewards), `steps` (game steps) and `time` (seconds of
    training so far, evaluations by `EvalCallback` left out), and whatever
    the callbacks add (`EvalCallback`'s `eval_score`, say; NaN in the epochs
    before they add it).

    Attributes:
        env_steps: Env steps the run played, of all copies, games not over
            included (with `total_timesteps`, the budget); set when
            `train()` returns, `None` before.
        gradient_steps: With `train(actors=...)`, the gradient steps the
            learner ran; `None` otherwise.
        actor_failures: With `train(actors=...)`, the times an actor stopped
            answering (died, was killed, lost its machine); `None` otherwise.

    Example:

    ```python
    history = agent.train(game, nb_epoch=100, verbose=0)
    print(history.history["win_rate"][-1])
    history.plot("training.png")
    ```
    """

    env_steps: int | None = None
    gradient_steps: int | None = None
    actor_failures: int | None = None

    def set_model(self, model):
        super().set_model(model)
        # Set once here rather than after every epoch as Keras' History does
        # (the same object either way): setting an attribute of a Keras model
        # is tracked, and with thousands of games a second (vector games) it
        # cost more than the rest of the log.
        model.history = self

    def on_train_begin(self, logs=None):
        # Keras' History empties `epoch` here; a run makes a new History, and a
        # resumed one has just restored the epochs of its checkpoint (with
        # their logs), which must stay one per value.
        if not hasattr(self, "epoch"):
            self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        history = self.history
        if "loss" not in logs or logs.keys() != history.keys():
            # Keep every list one value per epoch: an epoch without gradient
            # steps logs no loss, and evaluation logs start at the first
            # evaluation.
            logs = {"loss": float("nan"), **logs}
            seen = len(self.epoch)
            for key in history.keys() - logs.keys():
                logs[key] = float("nan")
            for key in logs.keys() - history.keys():
                history[key] = [float("nan")] * seen
        self.epoch.append(epoch)
        for key, value in logs.items():
            history[key].append(value)

    def _extend(self, epochs: list, columns: dict) -> None:
        """`on_epoch_end` for many epochs at once.

        `columns` maps each log name to its values, one per epoch in
        `epochs`, with NaN where an epoch has no value (`loss`).
        """
        history = self.history
        if columns.keys() != history.keys():
            seen, count = len(self.epoch), len(epochs)
            columns = {**columns, **{k: [float("nan")] * count for k in history.keys() - columns}}
            for key in columns.keys() - history.keys():
                history[key] = [float("nan")] * seen
        self.epoch.extend(epochs)
        for key, values in columns.items():
            history[key].extend(values)

    def plot(self, path: str | None = None, window: int = 100) -> Figure:
        """Draws the win rate (moving average) and the loss per epoch.

        Works without a display (the figure is not shown, only returned).

        Args:
            path: Where to save the figure as PNG, or `None` not to save it.
                Defaults to `None`.
            window: Number of games of the win-rate moving average.
                Defaults to 100.

        Returns:
            The `matplotlib.figure.Figure`.

        Raises:
            ValueError: If nothing was recorded or `window` is not positive.
        """
        from matplotlib.figure import Figure

        if not getattr(self, "epoch", None):
            raise ValueError("History.plot() needs at least one recorded epoch. Received: 0")
        if window < 1:
            raise ValueError(f"window must be positive. Received: window={window}")
        wins = np.asarray(self.history["win"], dtype=float)
        cumulative = np.concatenate([[0.0], np.cumsum(wins)])
        ends = np.arange(1, len(wins) + 1)
        starts = np.maximum(0, ends - window)
        win_rate = (cumulative[ends] - cumulative[starts]) / (ends - starts)
        epochs = np.asarray(self.epoch) + 1

        figure = Figure(figsize=(8, 4.5), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        top.plot(epochs, win_rate, color="tab:green")
        top.set_ylabel(f"win rate ({window} games)")
        top.set_ylim(-0.02, 1.02)
        top.grid(alpha=0.3)
        bottom.plot(epochs, self.history["loss"], color="tab:blue", linewidth=0.8)
        bottom.set_ylabel("loss")
        bottom.set_xlabel("epoch (game)")
        bottom.grid(alpha=0.3)
        if path is not None:
            figure.savefig(path, dpi=100)
        return figure
