"""Snake: a small Keras convnet learns to steer a snake to the fruit.

A dueling convnet with a target network, Double DQN, 3-step returns and
prioritized replay, trained for at most TRAIN_SECONDS; every EVAL_EVERY games
the greedy policy plays EVAL_GAMES seeded games and the average number of
fruits it eats is printed (the learning curve).

python examples/snake.py           # about 15 minutes of training, then 100 greedy games
python examples/snake.py --seed 1  # another seed
python examples/snake.py --smoke   # a few games, to check the set-up
"""

import argparse
import time

import keras
import numpy as np

import qlearning4k
from qlearning4k import Agent, PrioritizedExperienceReplay
from qlearning4k.games import Snake

# -- settings -----------------------------------------------------------------
GRID_SIZE = 10
NB_FRAMES = 4  # the model sees the last 4 frames, so it can tell the direction
NB_EPOCH = 200_000  # games at most; TRAIN_SECONDS usually ends training first
TRAIN_SECONDS = 890  # the callback stops at the end of a game, within seconds
BATCH_SIZE = 64
GAMMA = 0.97
EPSILON = (1.0, 0.02)
EPSILON_GAMES = 4000  # epsilon decays over the first 4000 games
NB_PARALLEL = 8  # games played side by side
MEMORY_SIZE = 100_000
LEARNING_RATE = 5e-4
TARGET_UPDATE = 1000  # gradient steps between copies to the target network
DOUBLE_DQN = True
N_STEP = 3
MAX_STEPS = 1000  # a game that loops without eating stops here
EVAL_EVERY = 2000  # games between greedy evaluations
EVAL_GAMES = 100
EVAL_SEED = 10_000  # the curve's games use seeds EVAL_SEED, EVAL_SEED + 1, ...
FINAL_SEED = 20_000  # the fresh games after training
PLAY_GAMES = 10
GIF_PATH = "snake.gif"
SEED = 0
SMOKE_EPOCHS = 3
# -----------------------------------------------------------------------------


def build_model() -> keras.Model:
    body = keras.Sequential(
        [
            keras.Input((NB_FRAMES, GRID_SIZE, GRID_SIZE)),
            keras.layers.Rescaling(1 / 4),  # cell codes 0..4 to 0..1
            keras.layers.Permute((2, 3, 1)),  # frames become channels
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
        ]
    )
    model = qlearning4k.dueling(body, nb_actions=5)
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), keras.losses.Huber())
    return model


def build_agent(seed: int = SEED) -> Agent:
    memory = PrioritizedExperienceReplay(MEMORY_SIZE, seed=seed)
    return Agent(build_model(), memory=memory, seed=seed)


def fruits_per_game(agent: Agent, nb_games: int, seed: int) -> np.ndarray:
    """Fruits eaten in `nb_games` seeded greedy games, played side by side by `agent.evaluate`."""
    fruits = []
    agent.evaluate(
        Snake(GRID_SIZE),
        nb_games=nb_games,
        seed=seed,
        max_steps=MAX_STEPS,
        on_game_end=lambda game: fruits.append(len(game.snake) - game.snake_length),
    )
    return np.array(fruits)


class Curve(keras.callbacks.Callback):
    """Stops after `seconds` of training; evaluates every `every` games (not counted)."""

    def __init__(self, agent: Agent, seconds: float, every: int, nb_games: int):
        super().__init__()
        self.agent = agent
        self.seconds, self.every, self.nb_games = seconds, every, nb_games
        self.eval_seconds = 0.0
        self.training_seconds = 0.0
        self.points = []  # (games, training seconds, average fruits)

    def on_epoch_end(self, epoch, logs=None):
        self.training_seconds = logs["time"] - self.eval_seconds
        if self.training_seconds > self.seconds:
            self.model.stop_training = True
        if (epoch + 1) % self.every:
            return
        start = time.perf_counter()
        fruits = fruits_per_game(self.agent, self.nb_games, seed=EVAL_SEED)
        self.eval_seconds += time.perf_counter() - start
        self.points.append((epoch + 1, self.training_seconds, float(fruits.mean())))
        print(f"game {epoch + 1}: {fruits.mean():.2f} fruits per greedy game "
              f"({self.training_seconds:.0f} s of training)", flush=True)  # fmt: skip


def train(agent: Agent, smoke: bool = False, seed: int = SEED):
    """Trains `agent` on Snake; returns the `Curve` callback with its points."""
    nb_epoch = SMOKE_EPOCHS if smoke else NB_EPOCH
    curve = Curve(agent, TRAIN_SECONDS, 1 if smoke else EVAL_EVERY, 2 if smoke else EVAL_GAMES)
    agent.train(
        Snake(GRID_SIZE, seed=seed),
        nb_epoch=nb_epoch,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=min(1.0, EPSILON_GAMES / nb_epoch),
        nb_parallel=NB_PARALLEL,
        target_update=TARGET_UPDATE,
        double_dqn=DOUBLE_DQN,
        n_step=N_STEP,
        max_steps=MAX_STEPS,
        verbose=0,
        callbacks=[curve],
    )
    print(f"Trained for {curve.training_seconds:.0f} s")
    return curve


def main(smoke: bool = False, seed: int = SEED) -> float:
    keras.utils.set_random_seed(seed)
    agent = build_agent(seed)
    train(agent, smoke, seed)
    fruits = fruits_per_game(agent, 2 if smoke else EVAL_GAMES, seed=FINAL_SEED)
    print(f"Fruits per game over {len(fruits)} fresh greedy games: {fruits.mean():.2f}")
    games = SMOKE_EPOCHS if smoke else PLAY_GAMES
    win_rate = agent.play(Snake(GRID_SIZE, seed=seed + 1), nb_epoch=games, path=GIF_PATH)
    print(f"Saved {GIF_PATH}")
    return win_rate


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
