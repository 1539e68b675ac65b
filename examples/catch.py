"""Catch: a Keras MLP learns to catch a falling fruit (the README example).

python examples/catch.py           # 1000 games of training, then 100 greedy games
python examples/catch.py --smoke   # a few games, to check the set-up
"""

import argparse
import time

import keras

from qlearning4k import Agent
from qlearning4k.games import Catch

# -- settings -----------------------------------------------------------------
GRID_SIZE = 10
NB_FRAMES = 1
HIDDEN_SIZE = 100
LEARNING_RATE = 0.2  # plain SGD, as in the original example
NB_EPOCH = 1000  # games of training
BATCH_SIZE = 50
GAMMA = 0.9
EPSILON = (1.0, 0.1)  # decays linearly over the first half of training
MEMORY_SIZE = 1000
PLAY_GAMES = 100
GIF_PATH = "catch.gif"
SEED = 0
SMOKE_EPOCHS = 3  # --smoke: games of training and of play
# -----------------------------------------------------------------------------


def build_agent() -> Agent:
    model = keras.Sequential(
        [
            keras.Input((NB_FRAMES, GRID_SIZE, GRID_SIZE)),
            keras.layers.Flatten(),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.SGD(learning_rate=LEARNING_RATE), "mse")
    return Agent(model, memory_size=MEMORY_SIZE, seed=SEED)


def train(agent: Agent, smoke: bool = False):
    """Trains `agent` on Catch; returns the `History`."""
    start = time.perf_counter()
    history = agent.train(
        Catch(GRID_SIZE, seed=SEED),
        nb_epoch=SMOKE_EPOCHS if smoke else NB_EPOCH,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
    )
    print(f"Trained in {time.perf_counter() - start:.1f} s")
    return history


def main(smoke: bool = False) -> float:
    keras.utils.set_random_seed(SEED)
    agent = build_agent()
    train(agent, smoke)
    games = SMOKE_EPOCHS if smoke else PLAY_GAMES
    win_rate = agent.play(Catch(GRID_SIZE, seed=SEED + 1), nb_epoch=games, path=GIF_PATH)
    print(f"Saved {GIF_PATH}")
    return win_rate


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    main(parser.parse_args().smoke)
