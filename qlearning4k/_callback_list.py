"""What a training run shows and tells: its Keras callbacks (`CallbackList`) and `Progress`."""

from __future__ import annotations

import sys
import time

import keras

WIN_WINDOW = 100  # games in the win rate that progress and logs show
_REPORT_INTERVAL = 0.05  # seconds between progress bar updates

# Each hook a run calls, and the methods through which a callback may take it:
# Keras' on_train_batch_* call the older on_batch_* (keras.callbacks.TerminateOnNaN).
_HOOKS = {
    "on_train_begin": ("on_train_begin",),
    "on_train_end": ("on_train_end",),
    "on_epoch_begin": ("on_epoch_begin",),
    "on_epoch_end": ("on_epoch_end",),
    "on_train_batch_begin": ("on_train_batch_begin", "on_batch_begin"),
    "on_train_batch_end": ("on_train_batch_end", "on_batch_end"),
}


def _overrides(callback, name: str) -> bool:
    """Whether `callback.<name>` is not the empty one of `keras.callbacks.Callback`.

    An instance attribute counts too (`keras.callbacks.LambdaCallback`).
    """
    base = getattr(keras.callbacks.Callback, name)
    return getattr(getattr(callback, name), "__func__", None) is not base


class CallbackList:
    """Drives a run's callbacks (the user's, then its `History`) as Keras' `CallbackList` does.

    Same hooks, order and logs (sorted, every value a Python float), without
    the list's check of every log value for backend tensors: on TensorFlow
    that check cost 0.1 ms a game alone and 0.3 ms inside the training loop
    here, while these logs hold Python numbers only. A hook is called only on
    the callbacks that override it: the base class's are empty.

    Callbacks that evaluate the agent (`_evaluates`, as `EvalCallback`) run
    first, so that the others see the logs they add, and the seconds they
    take are counted in `untimed`, which training leaves out of its time.
    """

    def __init__(self, callbacks: list, model, epochs: int):
        self.callbacks = sorted(callbacks, key=lambda c: not getattr(c, "_evaluates", False))
        self.evaluators = [c for c in callbacks if getattr(c, "_evaluates", False)]
        # Callbacks that need the agent, not only its model (`EvalCallback`, `RunFolder`).
        self.agent_users = [c for c in callbacks if hasattr(c, "_set_agent")]
        self.untimed = 0.0
        for callback in callbacks:
            callback.set_model(model)
            callback.set_params({"verbose": 0, "epochs": epochs})
        # For each hook, the callbacks that override it (evaluators first):
        # with thousands of games a second, the empty ones are not called.
        self.hooked = {}
        for hook, names in _HOOKS.items():
            which = [c for c in self.callbacks if any(_overrides(c, name) for name in names)]
            self.hooked[hook] = (
                [c for c in which if c in self.evaluators],
                [c for c in which if c not in self.evaluators],
            )
        # The run's History (the last callback), when no other callback ends epochs.
        listeners = self.hooked["on_epoch_end"]
        alone = not listeners[0] and listeners[1] == callbacks[-1:]
        self.only_history = callbacks[-1] if alone else None
        # ... and when no callback sees epochs begin either: games' ends can be logged together.
        begins = self.hooked["on_epoch_begin"]
        self.history_alone = None if begins[0] or begins[1] else self.only_history

    def _call(self, hook: str, *args, logs=None) -> None:
        evaluators, others = self.hooked[hook]
        if not evaluators and not others:  # nobody overrides the hook: nothing to do
            return
        logs = {k: float(v) for k, v in sorted(logs.items())} if logs else {}
        if evaluators:
            start = time.perf_counter()
            for callback in evaluators:
                getattr(callback, hook)(*args, logs)
            self.untimed += time.perf_counter() - start
        for callback in others:
            getattr(callback, hook)(*args, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.only_history:  # the logs are sorted Python floats already (`_end_games`)
            self.only_history.on_epoch_end(epoch, logs)
            return
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)


class Progress:
    """A run's progress: a bar (`verbose=1`, at most 20 updates a second) or a
    line a game (`verbose=2`), over `budget` env steps or `nb_epoch` games."""

    def __init__(self, verbose: int, by_steps: bool, budget: int, nb_epoch: int):
        self.verbose, self.by_steps, self.budget, self.nb_epoch = (
            verbose,
            by_steps,
            budget,
            nb_epoch,
        )
        self.bar = (
            keras.utils.Progbar(
                budget if by_steps else nb_epoch,
                unit_name="step" if by_steps else "game",
                stateful_metrics=["loss", "epsilon", "win_rate", "steps/s"],  # shown as they are
            )
            if verbose == 1
            else None
        )
        self.last_report = -_REPORT_INTERVAL

    def report(self, epoch: int, logs: dict, env_steps: int) -> None:
        """Shows game `epoch`'s `logs` after `env_steps` env steps."""
        if self.verbose == 1:
            # At most 20 updates a second: the bar costs nothing measurable.
            final = not self.by_steps and epoch + 1 == self.nb_epoch
            if logs["time"] - self.last_report < _REPORT_INTERVAL and not final:
                return
            self.last_report = logs["time"]
            self.bar.update(
                min(env_steps, self.budget) if self.by_steps else epoch + 1,
                values=[
                    ("loss", logs.get("loss", float("nan"))),
                    ("epsilon", logs["epsilon"]),
                    ("win_rate", logs["win_rate"]),
                    ("steps/s", env_steps / max(logs["time"], 1e-9)),
                ],
                finalize=final,
            )
        elif self.verbose == 2:
            window = min(epoch + 1, WIN_WINDOW)
            if self.by_steps:
                width = len(str(self.budget))
                where = f"Game {epoch + 1} | Steps {env_steps:{width}d}/{self.budget}"
            else:
                width = max(3, len(str(self.nb_epoch)))
                where = f"Epoch {epoch + 1:0{width}d}/{self.nb_epoch:0{width}d}"
            print(
                f"{where} | "
                f"Loss {logs.get('loss', float('nan')):.4f} | Epsilon {logs['epsilon']:.2f} | "
                f"Win count {round(logs['win_rate'] * window)} (last {window})"
            )

    def finish(self, env_steps: int, finished: int) -> None:
        """Ends the bar: full at the end of a step budget, on its own line after
        fewer games than the budget."""
        if self.bar is None:
            return
        if self.by_steps and env_steps >= self.budget:
            self.bar.update(env_steps, finalize=True)
        elif not self.by_steps and finished < self.nb_epoch:
            sys.stdout.write("\n")
