"""CartPole: a Keras MLP learns Gymnasium's CartPole-v1 through GymGame.

pip install "qlearning4k[gym]"
python examples/cartpole.py           # 600 episodes, then 100 greedy ones
python examples/cartpole.py --smoke   # a few episodes, to check the set-up
"""

import argparse
import time

import keras
import numpy as np

from qlearning4k import Agent
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "CartPole-v1"
WIN = 475  # an episode is won when it scores 475 or more (500 is the maximum)
HIDDEN_SIZE = 64
LEARNING_RATE = 1e-3
NB_EPOCH = 600  # training episodes
BATCH_SIZE = 64
GAMMA = 0.95
EPSILON = (1.0, 0.05)
EPSILON_RATE = 0.5
MEMORY_SIZE = 50_000
NB_PARALLEL = 4
PLAY_EPISODES = 100
SEED = 0
SMOKE_EPOCHS = 3
# -----------------------------------------------------------------------------


def build_agent() -> Agent:
    model = keras.Sequential(
        [
            keras.Input((1, 4)),  # one frame: the 4 numbers CartPole observes
            keras.layers.Flatten(),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    # Plain Q-learning has no target network: with Huber's bounded gradients
    # Adam keeps pushing Q up and diverges here, while MSE learns.
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), "mse")
    return Agent(model, memory_size=MEMORY_SIZE, seed=SEED)


def main(smoke: bool = False) -> float:
    keras.utils.set_random_seed(SEED)
    agent = build_agent()
    start = time.perf_counter()
    agent.train(
        GymGame(ENV_ID, seed=SEED, win=WIN),
        nb_epoch=SMOKE_EPOCHS if smoke else NB_EPOCH,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        nb_parallel=NB_PARALLEL,
    )
    print(f"Trained in {time.perf_counter() - start:.1f} s")
    game = GymGame(ENV_ID, seed=SEED + 1, win=WIN)
    returns = []
    for _ in range(SMOKE_EPOCHS if smoke else PLAY_EPISODES):
        agent.play(game, nb_epoch=1, visualize=False, verbose=0, max_steps=None)
        returns.append(game.total_reward)
    print(f"Win rate: {np.mean(np.array(returns) >= WIN):.2%}")
    print(f"Average return of {len(returns)} greedy episodes: {np.mean(returns):.1f}")
    return float(np.mean(returns))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    main(parser.parse_args().smoke)
