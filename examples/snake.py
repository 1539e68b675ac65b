"""Snake: a small Keras convnet learns to steer a snake to the fruit.

python examples/snake.py           # a few thousand games of training, then 10 greedy games
python examples/snake.py --smoke   # a few games, to check the set-up
"""

import argparse
import time

import keras

from qlearning4k import Agent
from qlearning4k.games import Snake

# -- settings -----------------------------------------------------------------
GRID_SIZE = 10
NB_FRAMES = 4  # the model sees the last 4 frames, so it can tell the direction
NB_EPOCH = 3000
BATCH_SIZE = 64
GAMMA = 0.8
EPSILON = (1.0, 0.05)
EPSILON_RATE = 0.5  # epsilon decays over the first half of the games
NB_PARALLEL = 8  # games played side by side
MEMORY_SIZE = 50_000
LEARNING_RATE = 1e-3
PLAY_GAMES = 10
GIF_PATH = "snake.gif"
SEED = 0
SMOKE_EPOCHS = 3
# -----------------------------------------------------------------------------


def build_model() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((NB_FRAMES, GRID_SIZE, GRID_SIZE)),
            keras.layers.Rescaling(1 / 4),  # cell codes 0..4 to 0..1
            keras.layers.Permute((2, 3, 1)),  # frames become channels
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(5),
        ]
    )
    model.compile(keras.optimizers.RMSprop(learning_rate=LEARNING_RATE), "mse")
    return model


def build_agent() -> Agent:
    return Agent(build_model(), memory_size=MEMORY_SIZE, seed=SEED)


def train(agent: Agent, smoke: bool = False):
    """Trains `agent` on Snake; returns the `History`."""
    start = time.perf_counter()
    history = agent.train(
        Snake(GRID_SIZE, seed=SEED),
        nb_epoch=SMOKE_EPOCHS if smoke else NB_EPOCH,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        nb_parallel=NB_PARALLEL,
    )
    print(f"Trained in {time.perf_counter() - start:.1f} s")
    return history


def main(smoke: bool = False) -> float:
    keras.utils.set_random_seed(SEED)
    agent = build_agent()
    train(agent, smoke)
    games = SMOKE_EPOCHS if smoke else PLAY_GAMES
    win_rate = agent.play(Snake(GRID_SIZE, seed=SEED + 1), nb_epoch=games, path=GIF_PATH)
    print(f"Saved {GIF_PATH}")
    return win_rate


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    main(parser.parse_args().smoke)
