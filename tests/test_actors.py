"""Game copies on Ray actors (`train(actors=RayActors(...))`) on a real local Ray cluster."""

import os
import signal

import keras
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from qlearning4k import Agent, NoisyDense, PrioritizedExperienceReplay  # noqa: E402
from qlearning4k.actors import RayActors  # noqa: E402
from qlearning4k.games import Catch, VectorCatch  # noqa: E402

# One xdist worker runs the tests that share the session's Ray cluster.
pytestmark = pytest.mark.xdist_group("ray")

# Ray's machinery is under test here, not a backend: on the default backend, but
# for one run of two actors that learn Catch, which runs on every backend (the
# actors' processes start on the learner's backend).
default_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="Ray actors: run on the default backend only"
)


# Trained agents must win this share of the 100 seeded Catch(5) games of
# `evaluate(seed=0)`: they reached 1.0 in each of 4 runs here (2 plain, 2 with
# every option), and no trivial policy comes within 0.1 of it (see the test below).
WIN_BAR = 0.95


@pytest.mark.backend_free
def test_the_win_bar_is_above_every_trivial_policy():
    """On Catch(5) a basket that never moves wins 0.74 of these games, random
    moves 0.79: the bar keeps a margin of at least 0.1 over any of them."""
    rng = np.random.default_rng(0)
    policies = {"left": lambda: 0, "stay": lambda: 1, "right": lambda: 2,
                "random": lambda: int(rng.integers(3))}  # fmt: skip
    for name, policy in policies.items():
        wins = 0
        for i in range(100):
            game = Catch(5, seed=i)  # evaluate(seed=0) plays these
            while not game.is_over():
                game.play(policy())
            wins += game.is_won()
        assert wins / 100 <= WIN_BAR - 0.1, name


def _agent(memory=None, seed=0, noisy=False):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((1, 5, 5)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            NoisyDense(3) if noisy else keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    return Agent(model, memory=memory, memory_size=5000, seed=seed)


class _KilledOnce(Catch):
    """Catch whose actor process is SIGKILLed at its `at`-th step, once in the whole run."""

    def __init__(self, marker, at, **kwargs):
        super().__init__(5, **kwargs)
        self.marker, self.at, self.count = marker, at, 0

    def play(self, action):
        self.count += 1
        if self.count == self.at:
            # Both actors reach their `at`-th step at about the same time:
            # creating the marker exclusively lets exactly one of them die.
            try:
                marker = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(marker, str(os.getpid()).encode())
                os.close(marker)
                os.kill(os.getpid(), signal.SIGKILL)
        super().play(action)


@pytest.mark.parametrize(
    "options",
    [
        {"nb_epoch": 800},
        pytest.param({"total_timesteps": 2000, "learning_starts": 100, "memory": "prioritized",
                      "n_step": 3, "target_update": 50, "double_dqn": True, "noisy": True},
                     marks=default_only),
    ],
    ids=["plain", "modern, noisy, env steps"],
)  # fmt: skip
def test_two_actors_learn_catch(ray_cluster, options):
    options = dict(options)
    memory = PrioritizedExperienceReplay(5000, seed=1) if options.pop("memory", None) else None
    # A noisy network explores by itself: the actors act in training mode, epsilon 0.
    noisy = options.pop("noisy", False)
    agent = _agent(memory, noisy=noisy)
    history = agent.train(
        Catch(5), batch_size=32, epsilon=0.0 if noisy else 0.1, verbose=0,
        actors=RayActors(nb_actors=2, nb_copies=2, steps_per_batch=20), **options,
    )  # fmt: skip
    if "nb_epoch" in options:
        assert len(history.history["win"]) == 800
    else:
        assert history.env_steps == 2000  # batches of 40 env steps
    assert history.gradient_steps > 0 and np.isfinite(history.history["loss"]).any()
    assert history.actor_failures == 0
    # Actors make runs differ from one to the next: a margin below the 100% it usually reaches.
    assert agent.evaluate(Catch(5), nb_games=100, seed=0)["win_rate"] >= WIN_BAR
    # Every env step received is a transition, but for the n-step ones not complete yet.
    pending = (options.get("n_step", 1) - 1) * 2 * 2
    assert history.env_steps - pending <= len(agent.memory) <= min(5000, history.env_steps)


@default_only
def test_an_actor_killed_mid_run_is_restarted_and_training_goes_on(ray_cluster, tmp_path):
    marker = tmp_path / "killed"
    agent = _agent()
    # Killed in its first batch. Ray takes seconds to start it again (a new
    # process imports Keras and builds the model), and the failure reaches
    # the learner only then: with 600 games the other actor sometimes
    # finished the run first, and nothing was reported.
    with pytest.warns(UserWarning, match="Actor [01] stopped answering"):
        history = agent.train(
            _KilledOnce(str(marker), at=20), nb_epoch=1500, batch_size=32, epsilon=0.1,
            verbose=0, actors=RayActors(nb_actors=2, nb_copies=2, steps_per_batch=20),
        )  # fmt: skip
    assert marker.exists()
    assert history.actor_failures == 1
    assert len(history.history["win"]) == 1500
    assert agent.evaluate(Catch(5), nb_games=100, seed=0)["win_rate"] >= WIN_BAR


@default_only
@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"actors": "two"}, TypeError, "RayActors"),
        ({"nb_parallel": 2}, ValueError, "nb_parallel"),
        ({"checkpoint": 5}, ValueError, "checkpoint"),
        ({"resume": True}, ValueError, "resume"),
        ({"game": VectorCatch(2, 5)}, ValueError, "VectorCatch"),
    ],
    ids=["not-actors", "nb_parallel", "checkpoint", "resume", "vector"],
)
def test_train_with_actors_rejects(arguments, error, match):
    arguments = {"game": Catch(5), "actors": RayActors(), **arguments}
    with pytest.raises(error, match=match):
        _agent().train(nb_epoch=2, verbose=0, **arguments)


@default_only
@pytest.mark.parametrize(
    "settings, error, match",
    [
        ({"nb_actors": 0}, ValueError, "nb_actors"),
        ({"nb_copies": -1}, ValueError, "nb_copies"),
        ({"steps_per_batch": 1.5}, TypeError, "steps_per_batch"),
        ({"sync_every": 0}, ValueError, "sync_every"),
        ({"max_restarts": -1}, ValueError, "max_restarts"),
        ({"num_cpus": -1}, ValueError, "num_cpus"),
    ],
)
def test_ray_actors_checks_its_settings(settings, error, match):
    with pytest.raises(error, match=match):
        RayActors(**settings)
