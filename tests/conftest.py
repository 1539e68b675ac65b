"""Shared fixtures: small real Keras models for the built-in games."""

import keras
import pytest


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


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture
def model_factory():
    return make_model
