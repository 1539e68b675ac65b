"""`qlearning4k sweep CONFIG`: a Ray Tune sweep over the settings a config's `sweep`
section varies, each trial a `qlearning4k.tune.train_trial`.

```yaml
sweep:
  parameters:                  # dotted config keys: a list is a grid of values,
    sb3.learning_rate: [1.0e-3, 6.3e-4]          # {loguniform: [low, high]},
    train.target_update_interval: {choice: [10, 100]}   # {uniform: ...}, {choice: ...}
  num_samples: 1               # samples of the random ones (each grid point)
  every_games: 20              # evaluate, report and checkpoint every this many games
  nb_eval_games: 10
  asha: true                   # stop poor trials early (ASHAScheduler on env steps)
  max_failures: 2              # restarts of a trial whose process died
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import keras

from qlearning4k._checks import _check_keys
from qlearning4k._config import build_agent, check_config, make_game, override
from qlearning4k.tune import _tune, train_trial

_SWEEP = ("parameters", "num_samples", "every_games", "nb_eval_games", "asha", "max_failures",
          "name")  # fmt: skip
_DEFAULTS = {"num_samples": 1, "every_games": 20, "nb_eval_games": 10, "asha": False,
             "max_failures": 0, "name": "sweep"}  # fmt: skip
_SPACES = ("uniform", "loguniform", "choice")


def _settings(raw: Mapping) -> dict:
    section = raw.get("sweep")
    if not isinstance(section, Mapping) or not section.get("parameters"):
        raise ValueError(
            "qlearning4k sweep needs a sweep section with parameters (dotted config keys and "
            f"the values to try). Received: sweep={section!r}"
        )
    settings = {**_DEFAULTS, **_check_keys("sweep.", section, _SWEEP)}
    if not isinstance(settings["parameters"], Mapping):
        raise ValueError(
            f"sweep.parameters must be a mapping. Received: {settings['parameters']!r}"
        )
    return settings


def _space(parameters: Mapping, tune) -> dict:
    """Tune's `param_space` of `sweep.parameters`."""
    space = {}
    for key, values in parameters.items():
        if isinstance(values, list) and values:
            space[key] = tune.grid_search(values)
        elif isinstance(values, Mapping) and len(values) == 1 and next(iter(values)) in _SPACES:
            ((kind, arguments),) = values.items()
            space[key] = getattr(tune, kind)(arguments) if kind == "choice" else (
                getattr(tune, kind)(*arguments)
            )  # fmt: skip
        else:
            raise ValueError(
                f"sweep.parameters.{key} must be a list of values (a grid) or one of "
                f"{{uniform: [low, high]}}, {{loguniform: [low, high]}}, {{choice: [...]}}. "
                f"Received: {values!r}"
            )
    return space


def _trial(params: dict, raw: dict) -> None:
    """One trial: the config with the trial's values, trained by `train_trial`."""
    settings = _settings(raw)
    config = check_config(override(raw, params))
    keras.utils.set_random_seed(config.seed)
    game = make_game(config, seed=config.seed)
    agent, train_kwargs = build_agent(config, game)
    train_kwargs.setdefault("verbose", 0)
    train_trial(
        agent, game, eval_game=make_game(config), every_games=settings["every_games"],
        nb_eval_games=settings["nb_eval_games"], eval_seed=config.evaluate["seed"],
        eval_max_steps=config.evaluate.get("max_steps", 1000), **train_kwargs,
    )  # fmt: skip


def sweep(raw: dict, storage: str, cpus: int | None = None):
    """Runs the sweep of the config `raw`; prints each trial and the best. Returns Tune's
    `ResultGrid`."""
    tune = _tune()
    import ray

    settings = _settings(raw)
    for key, values in settings["parameters"].items():  # before any trial: a known key
        if isinstance(values, list):
            for value in values:
                check_config(override(raw, {key: value}))
    space = _space(settings["parameters"], tune)
    scheduler = None
    if settings["asha"]:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="env_steps")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=False)
    try:
        tuner = tune.Tuner(
            tune.with_parameters(_trial, raw=raw),
            param_space=space,
            tune_config=tune.TuneConfig(metric="eval_score", mode="max",
                                        num_samples=int(settings["num_samples"]),
                                        scheduler=scheduler, reuse_actors=True),
            run_config=tune.RunConfig(
                name=str(settings["name"]), storage_path=storage, verbose=1,
                failure_config=tune.FailureConfig(max_failures=int(settings["max_failures"])),
            ),
        )  # fmt: skip
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    keys = list(settings["parameters"])
    for result in results:
        if result.error is not None:
            print(f"trial failed: {result.error}")
            continue
        values = ", ".join(f"{k}={result.config[k]!r}" for k in keys)
        print(f"{values}: eval_score {result.metrics['eval_score']:.2f} after "
              f"{int(result.metrics['env_steps']):,} env steps")  # fmt: skip
    best = results.get_best_result()
    where = os.path.join(best.checkpoint.path, "agent") if best.checkpoint else "none"
    values = ", ".join(f"{k}={best.config[k]!r}" for k in keys)
    print(f"Best: {values}: eval_score {best.metrics['eval_score']:.2f}; its agent: {where}")
    return results
