"""Shared fixtures: small real Keras models for the built-in games."""

import os

# Under pytest-xdist (`-n 2`), each worker process gets one compute thread:
# the tests' models are small, and two workers' thread pools would otherwise
# spin against each other. Subprocesses the tests start inherit it.
if "PYTEST_XDIST_WORKER" in os.environ:
    for _name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import keras
import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked `backend_free` run once, on the default (TensorFlow) backend:
    CI runs the suite on each backend, and they would test nothing new there."""
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason="backend_free: run on the default backend only")
    for item in items:
        if item.get_closest_marker("backend_free"):
            item.add_marker(skip)


def make_model(
    nb_frames=1,
    frame_shape=(10, 10),
    nb_actions=3,
    hidden=32,
    optimizer="adam",
    loss="mse",
    jit_compile="auto",
):
    """A small compiled MLP Q-model: (batch, nb_frames) + frame_shape -> (batch, nb_actions)."""
    model = keras.Sequential(
        [
            keras.Input((nb_frames, *frame_shape)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(nb_actions),
        ]
    )
    model.compile(optimizer, loss, jit_compile=jit_compile)
    return model


class StopAfter(keras.callbacks.Callback):
    """Stops training after game `games`: as if the run were killed right after
    the checkpoint it saved there."""

    def __init__(self, games: int):
        super().__init__()
        self.games = games

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch == self.games - 1


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture
def model_factory():
    return make_model


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs, shared by the tests that need one.

    Its worker processes unpickle what the tests define (trainables, games):
    they inherit the driver's PYTHONPATH, which gets this folder.
    """
    import os
    from pathlib import Path

    ray = pytest.importorskip("ray")
    previous = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, previous]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if previous is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = previous
