"""End to end: an agent really learns Catch, on every Keras backend."""

import keras

from qlearning4k import Agent
from qlearning4k.games import Catch


def test_agent_learns_catch():
    model = keras.Sequential(
        [
            keras.Input((1, 10, 10)),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    agent = Agent(model, seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=250, batch_size=32, verbose=0)
    assert history.history["win_rate"][-1] > 0.5  # it was learning along the way
    win_rate = agent.play(Catch(seed=12345), nb_epoch=200, visualize=False, verbose=0)
    assert win_rate >= 0.9
