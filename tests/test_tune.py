"""Ray Tune trials (`qlearning4k.tune.train_trial`) on a real local Ray cluster."""

import json
import os
import signal
from pathlib import Path

import keras
import numpy as np
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining  # noqa: E402

from qlearning4k import Agent  # noqa: E402
from qlearning4k.games import Catch  # noqa: E402
from qlearning4k.tune import train_trial  # noqa: E402

# One xdist worker runs the tests that share the session's Ray cluster.
pytestmark = pytest.mark.xdist_group("ray")

# Ray's own machinery is under test here, not a backend: on the default backend,
# but for the ASHA sweep, which runs on every backend (trials start on the
# driver's backend).
default_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="Ray Tune: run on the default backend only"
)


def _agent(config):
    keras.utils.set_random_seed(config["seed"])
    model = keras.Sequential(
        [
            keras.Input((1, 5, 5)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.Adam(config["lr"]), "mse")
    return Agent(model, memory_size=500, seed=config["seed"])


def _trainable(config):
    agent = _agent(config)
    kill = config.get("kill_after")
    callbacks = [_Record(config["record"], config["lr"])] if "record" in config else []
    marker = Path(config.get("marker", ""))
    if kill and not marker.exists():
        callbacks.append(_KillAfter(kill, marker))
    train_trial(
        agent, Catch(5, seed=config["seed"]), eval_game=Catch(5), every_games=10,
        nb_eval_games=20, nb_epoch=config["games"], batch_size=16, epsilon=0.1,
        verbose=0, callbacks=callbacks,
    )  # fmt: skip


class _KillAfter(keras.callbacks.Callback):
    """SIGKILLs the trial's process after game `games`, on its first attempt."""

    def __init__(self, games, marker):
        super().__init__()
        self.games, self.marker = games, marker

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.games:
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


class _Record(keras.callbacks.Callback):
    """Appends the trial's optimizer state at the start of training to a file."""

    def __init__(self, path, lr):
        super().__init__()
        self.path, self.lr = path, lr

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        line = json.dumps({
            "trial": tune.get_context().get_trial_id(), "config_lr": self.lr,
            "lr": float(np.asarray(optimizer.learning_rate)),
            "iterations": int(np.asarray(optimizer.iterations)),
        })  # fmt: skip
        with open(self.path, "a") as f:
            f.write(line + "\n")


def _tuner(tmp_path, param_space, scheduler=None, **run):
    return tune.Tuner(
        _trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="eval_score",
            mode="max",
            scheduler=scheduler,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "results"), verbose=0, **run),
    )


def test_asha_stops_bad_trials_early(tmp_path, ray_cluster):
    # Two trials learn; two cannot (a learning rate of 0 keeps their first policy).
    space = {"lr": tune.grid_search([3e-3, 0.0, 3e-3, 0.0]), "seed": 0, "games": 60}
    scheduler = ASHAScheduler(time_attr="games", max_t=60, grace_period=20, reduction_factor=2)
    results = _tuner(tmp_path, space, scheduler).fit()
    assert not results.errors
    games = {i: results[i].metrics["games"] for i in range(len(results))}
    assert sorted(games.values())[0] < 60, games  # stopped early
    best = results.get_best_result()
    assert best.config["lr"] > 0 and best.metrics["games"] == 60
    frame = best.metrics_dataframe
    assert list(frame["games"]) == [10, 20, 30, 40, 50, 60]
    agent = Agent.load(os.path.join(best.checkpoint.path, "agent"))
    assert len(agent.memory) > 0  # the whole run: memory too


@default_only
def test_a_killed_trial_resumes_from_its_checkpoint_to_the_same_end(tmp_path, ray_cluster):
    record = tmp_path / "record.jsonl"
    space = {
        "lr": 3e-3, "seed": 1, "games": 40, "marker": str(tmp_path / "killed"),
        "kill_after": tune.grid_search([None, 25]), "record": str(record),
    }  # fmt: skip
    results = _tuner(tmp_path, space, failure_config=tune.FailureConfig(max_failures=1)).fit()
    assert not results.errors
    assert (tmp_path / "killed").exists()
    plain, killed = sorted(results, key=lambda r: r.config["kill_after"] is not None)
    # The killed trial started twice: afresh, then from its checkpoint at game 20.
    starts = [json.loads(line) for line in record.read_text().splitlines()]
    steps = sorted(s["iterations"] for s in starts if s["trial"] == killed.metrics["trial_id"])
    assert len(steps) == 2 and steps[0] == 0 < steps[1], starts
    # After the restart it reported 30 and 40, never 20 again. (What Ray keeps of
    # the reports before the kill depends on when it last copied the trial's
    # result file to storage: all, some or none of them.)
    games = list(killed.metrics_dataframe["games"])
    assert games[-2:] == [30, 40] and games == sorted(set(games)), games
    for name in ("eval_score", "env_steps", "score"):
        assert killed.metrics[name] == plain.metrics[name], name
    weights = [
        Agent.load(os.path.join(r.checkpoint.path, "agent")).model.get_weights()
        for r in (plain, killed)
    ]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@default_only
def test_pbt_starts_trials_from_better_ones_with_their_own_learning_rate(tmp_path, ray_cluster):
    record = tmp_path / "record.jsonl"
    # A trial that learns and one that cannot (a learning rate of 0): at the
    # perturbation, where both wait (synch), the second takes the first's checkpoint.
    space = {"lr": tune.grid_search([3e-3, 0.0]), "seed": 2, "games": 60, "record": str(record)}
    scheduler = PopulationBasedTraining(
        time_attr="games", perturbation_interval=30, quantile_fraction=0.5, synch=True,
        hyperparam_mutations={"lr": [1e-3, 2e-3]}, resample_probability=1.0,
    )  # fmt: skip
    results = _tuner(tmp_path, space, scheduler).fit()
    assert not results.errors
    starts = [json.loads(line) for line in record.read_text().splitlines()]
    restored = [start for start in starts if start["iterations"] > 0]
    for start in restored:  # from its own checkpoint, or from a better trial's
        assert start["lr"] == pytest.approx(start["config_lr"]), start
    # Some trial started from another's checkpoint, with a mutated learning rate.
    assert any(start["config_lr"] in (1e-3, 2e-3) for start in restored), starts
    for result in results:
        assert result.metrics["games"] == 60


@default_only
def test_train_trial_outside_a_trial_says_so():
    with pytest.raises(RuntimeError, match="inside a Ray Tune trial"):
        train_trial(_agent({"seed": 0, "lr": 1e-3}), Catch(5), eval_game=Catch(5), every_games=5)


@default_only
@pytest.mark.parametrize("name", ["checkpoint", "checkpoint_path", "resume", "keep_checkpoints"])
def test_train_trial_sets_its_own_checkpoints(name):
    with pytest.raises(ValueError, match=f"sets checkpoint.*Received: {name}="):
        train_trial(
            _agent({"seed": 0, "lr": 1e-3}), Catch(5), eval_game=Catch(5), every_games=5,
            **{name: 1},
        )  # fmt: skip
