"""`RunFolder`: a training run's folder that a person can read and a program can load."""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import yaml

from qlearning4k.agent import Agent

_CONFIG_FILE = "config.yml"
_AGENT_FOLDER = "agent"
_CHECKPOINTS_FOLDER = "checkpoints"
_HISTORY_FILE = "history.csv"
_CURVE_FILE = "learning_curve.png"
_EVALUATIONS_FOLDER = "evaluations"
_CARD_FILE = "README.md"


class RunFolder(keras.callbacks.Callback):
    """Writes a training run's folder: its config, agent, history, curve and model card.

    Pass it to `Agent.train(callbacks=[...])` (`qlearning4k train` does). When
    training ends the folder holds:

    - `config.yml`: the config as run, if one was given;
    - `agent/`: the trained agent (`Agent.save`), which `Agent.load` and the
      command line's `evaluate`, `play` and `export` read;
    - `history.csv`: one row per game (`History`'s logs);
    - `learning_curve.png`: `History.plot`'s figure;
    - `evaluations/NAME.json`: each evaluation's results
      (`record_evaluation`);
    - `README.md`: a model card: the task, the settings, the results, how to
      load and export the agent.

    `qlearning4k train` also keeps the run's checkpoints in `checkpoints/`
    (for `--resume`). Loading the agent (`load_agent`, `Agent.load`) runs no
    code from the folder: the model is read in Keras' safe mode and the
    arrays without pickle. Only resuming unpickles the checkpointed run
    state, so resume only runs you trust.

    Args:
        path: The folder; made if missing.
        config: The config to keep as `config.yml`, or `None`. Defaults to
            `None`.

    Example:

    ```python
    from qlearning4k import RunFolder

    run = RunFolder("runs/catch")
    agent.train(Catch(seed=0), nb_epoch=20, verbose=0, callbacks=[run])
    run.record_evaluation(agent.evaluate(Catch(), nb_games=10, seed=0))
    agent = run.load_agent()
    ```
    """

    def __init__(self, path: str | os.PathLike, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.path = os.fspath(path)
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping or None. Received: {config!r}")
        self.config = None if config is None else dict(config)
        self._agent = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        """The run folder at `path`, with the config it keeps.

        Raises:
            FileNotFoundError: If `path` is not a run folder (no `agent/` that
                `Agent.save` wrote in it).
        """
        path = os.fspath(path)
        config_path = os.path.join(path, _CONFIG_FILE)
        has_agent = os.path.isfile(os.path.join(path, _AGENT_FOLDER, "agent.json"))
        if not (has_agent or os.path.isfile(config_path)):
            raise FileNotFoundError(
                "Expected a run folder, as qlearning4k train or RunFolder writes it (with "
                f"{_CONFIG_FILE} or an {_AGENT_FOLDER}/ folder of the trained agent). "
                f"Received: {path!r}" + ("" if os.path.isdir(path) else " (no such folder)")
            )
        config = None
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = yaml.safe_load(f)
            if not isinstance(config, Mapping):
                raise ValueError(f"{config_path} holds no config mapping. Received: {config!r}")
        return cls(path, config)

    @property
    def checkpoint_path(self) -> str:
        """Where the run's newest checkpoint is (`train(checkpoint_path=...)`): `last` in
        `checkpoints/`, beside the older ones kept (`last.1`, ...)."""
        return os.path.join(self.path, _CHECKPOINTS_FOLDER, "last")

    def load_agent(self) -> Agent:
        """The trained agent, by `Agent.load` (no code from the folder runs).

        Raises:
            FileNotFoundError: If the run has not finished (no `agent/` yet).
        """
        folder = os.path.join(self.path, _AGENT_FOLDER)
        if not os.path.isfile(os.path.join(folder, "agent.json")):
            raise FileNotFoundError(
                f"The run in {self.path!r} has no trained agent yet ({_AGENT_FOLDER}/ is written "
                "when training ends): resume it with qlearning4k train --resume"
            )
        return Agent.load(folder)

    def _set_agent(self, agent) -> None:
        self._agent = agent

    def on_train_begin(self, logs=None):
        os.makedirs(self.path, exist_ok=True)
        if self.config is not None:
            with open(os.path.join(self.path, _CONFIG_FILE), "w", encoding="utf-8") as f:
                yaml.safe_dump(self.config, f, sort_keys=False)

    def on_train_end(self, logs=None):
        self._agent.save(os.path.join(self.path, _AGENT_FOLDER))
        history = self.model.history
        columns = sorted(history.history)
        with open(os.path.join(self.path, _HISTORY_FILE), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["game", *columns])
            for row, epoch in enumerate(history.epoch):
                writer.writerow([epoch + 1, *(_cell(history.history[c][row]) for c in columns)])
        if history.epoch:
            import matplotlib.pyplot as plt

            plt.close(history.plot(os.path.join(self.path, _CURVE_FILE)))
        self.write_card()

    def record_evaluation(self, results: Mapping[str, Any], name: str = "final") -> str:
        """Writes `results` (of `Agent.evaluate`) as `evaluations/NAME.json` and updates
        the model card. Returns the file's path."""
        if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
            raise ValueError(f"name must be a file name without folders. Received: {name!r}")
        folder = os.path.join(self.path, _EVALUATIONS_FOLDER)
        os.makedirs(folder, exist_ok=True)
        record = {k: np.asarray(v).tolist() for k, v in results.items()}
        record["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        path = os.path.join(folder, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        self.write_card()
        return path

    def evaluations(self) -> dict[str, dict]:
        """The recorded evaluations, by name."""
        folder = os.path.join(self.path, _EVALUATIONS_FOLDER)
        if not os.path.isdir(folder):
            return {}
        found = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    found[name[:-5]] = json.load(f)
        return found

    def write_card(self) -> None:
        """Writes `README.md`, the model card, from what the folder holds."""
        config = self.config or {}
        game = config.get("game", "the game it was trained on")
        from qlearning4k import __version__

        lines = [f"# {game}: a qlearning4k agent", "",
                 f"Written by qlearning4k {__version__} on Keras {keras.__version__} "
                 f"({keras.backend.backend()} backend).", ""]  # fmt: skip
        training = _training_summary(os.path.join(self.path, _HISTORY_FILE))
        if training:
            lines += ["## Training", "", training, ""]
            if os.path.isfile(os.path.join(self.path, _CURVE_FILE)):
                lines += [f"![learning curve]({_CURVE_FILE})", ""]
        evaluations = self.evaluations()
        if evaluations:
            lines += ["## Results", "",
                      "| evaluation | games | mean score | std | win rate | mean steps | date |",
                      "|---|---|---|---|---|---|---|"]  # fmt: skip
            for name, r in evaluations.items():
                lines.append(
                    f"| {name} | {r.get('nb_games')} | {r.get('mean_score', float('nan')):.2f} "
                    f"| {r.get('std_score', float('nan')):.2f} | {r.get('win_rate', 0):.2%} "
                    f"| {r.get('mean_steps', float('nan')):.1f} | {r.get('date', '')} |"
                )
            lines.append("")
        if config:
            written = yaml.safe_dump(config, sort_keys=False).rstrip()
            lines += ["## Settings", "", f"As run ([{_CONFIG_FILE}]({_CONFIG_FILE})):", "",
                      "```yaml", written, "```", ""]  # fmt: skip
        folder = self.path.replace(os.sep, "/")
        lines += [
            "## Use it", "",
            "```bash",
            f"qlearning4k evaluate {folder}   # greedy games, results in evaluations/",
            f"qlearning4k play {folder} --video play.mp4",
            f"qlearning4k export {folder} --format onnx   # runs in onnxruntime alone",
            "```", "",
            "```python",
            "from qlearning4k import Agent",
            "",
            f'agent = Agent.load("{folder}/{_AGENT_FOLDER}")  # Keras safe mode, no pickle',
            "action = agent.act(observation)",
            "```", "",
        ]  # fmt: skip
        with open(os.path.join(self.path, _CARD_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))


def _cell(value) -> str:
    value = float(value)
    return "" if math.isnan(value) else repr(value)


def _training_summary(path: str) -> str:
    """Games, env steps, seconds and the last win rate, from `history.csv`."""
    if not os.path.isfile(path):
        return ""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return ""
    steps = sum(float(row.get("steps") or 0) for row in rows)
    seconds = float(rows[-1].get("time") or "nan")
    scores = [float(row["score"]) for row in rows[-100:] if row.get("score")]
    mean = f", mean score of the last {len(scores)} games {np.mean(scores):.2f}" if scores else ""
    return (
        f"{len(rows):,} games, {int(steps):,} env steps of finished games, {seconds:.0f} s{mean}."
    )
