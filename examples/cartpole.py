"""CartPole: a Keras MLP masters Gymnasium's CartPole-v1 through GymGame.

Modern DQN in one flag each: a target network with Huber loss, Double DQN
and 3-step returns. Every EVAL_EVERY episodes the greedy policy plays 100
seeded episodes side by side; training stops once their average return
reaches TARGET_RETURN.

pip install "qlearning4k[gym]"
python examples/cartpole.py           # trains until solved (or NB_EPOCH episodes)
python examples/cartpole.py --seed 1  # another seed
python examples/cartpole.py --smoke   # a few episodes, to check the set-up
"""

import argparse
import time

import gymnasium
import keras
import numpy as np

from qlearning4k import Agent
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "CartPole-v1"
WIN = 475  # an episode is won when it scores 475 or more (500 is the maximum)
TARGET_RETURN = 475  # solved: average greedy return over EVAL_EPISODES
HIDDEN_SIZE = 128
LEARNING_RATE = 1e-3
NB_EPOCH = 1000  # training episodes at most
BATCH_SIZE = 64
GAMMA = 0.99
EPSILON = (1.0, 0.02)
EPSILON_RATE = 0.1  # epsilon decays over the first 10% of the episodes
MEMORY_SIZE = 50_000
NB_PARALLEL = 4
TARGET_UPDATE = 500  # gradient steps between copies to the target network
DOUBLE_DQN = True
N_STEP = 3
EVAL_EVERY = 20  # training episodes between greedy evaluations
EVAL_EPISODES = 100
SEED = 0
SMOKE_EPOCHS = 3
# -----------------------------------------------------------------------------


def build_agent(seed: int) -> Agent:
    model = keras.Sequential(
        [
            keras.Input((1, 4)),  # one frame: the 4 numbers CartPole observes
            keras.layers.Flatten(),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(HIDDEN_SIZE, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    # Huber loss with a target network: the usual pair; MSE without one.
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), keras.losses.Huber())
    return Agent(model, memory_size=MEMORY_SIZE, seed=seed)


def greedy_returns(model, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` greedy episodes played side by side, one model call a step."""
    envs = [gymnasium.make(ENV_ID) for _ in range(episodes)]
    observations = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        alive = np.flatnonzero(running)
        q = keras.ops.convert_to_numpy(model(observations[alive][:, None], training=False))
        for i, action in zip(alive, np.argmax(q, axis=1), strict=True):
            observation, reward, terminated, truncated, _ = envs[i].step(int(action))
            observations[i] = observation
            returns[i] += reward
            running[i] = not (terminated or truncated)
    return returns


class SolveCallback(keras.callbacks.Callback):
    """Evaluates the greedy policy every `every` episodes; stops training once solved.

    Evaluation time is measured and left out of the training seconds.
    """

    def __init__(self, every: int, episodes: int, seed: int):
        super().__init__()
        self.every, self.episodes, self.seed = every, episodes, seed
        self.eval_seconds = 0.0
        self.best = -np.inf
        self.solved_at = None  # (episode, training seconds)
        self.curve = []  # (episode, training seconds, average greedy return)
        self.returns = None  # of the last evaluation

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        training_seconds = logs["time"] - self.eval_seconds  # before this evaluation
        start = time.perf_counter()
        self.returns = greedy_returns(self.model, self.episodes, self.seed)
        average = float(self.returns.mean())
        self.eval_seconds += time.perf_counter() - start
        self.curve.append((epoch + 1, training_seconds, average))
        self.best = max(self.best, average)
        print(f"episode {epoch + 1}: greedy return {average:.1f} ({training_seconds:.0f} s)")
        if average >= TARGET_RETURN:
            self.solved_at = (epoch + 1, training_seconds)
            self.model.stop_training = True


def main(smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    agent = build_agent(seed)
    solve = SolveCallback(1 if smoke else EVAL_EVERY, SMOKE_EPOCHS if smoke else EVAL_EPISODES,
                          seed=10_000)  # fmt: skip
    start = time.perf_counter()
    agent.train(
        GymGame(ENV_ID, seed=seed, win=WIN),
        nb_epoch=SMOKE_EPOCHS if smoke else NB_EPOCH,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        nb_parallel=NB_PARALLEL,
        target_update=TARGET_UPDATE,
        double_dqn=DOUBLE_DQN,
        n_step=N_STEP,
        verbose=0,
        callbacks=[solve],
    )
    training = time.perf_counter() - start - solve.eval_seconds
    if solve.solved_at:
        print(f"Solved after {solve.solved_at[0]} episodes, {solve.solved_at[1]:.0f} s of training")
    else:
        print(f"Not solved: best greedy average {solve.best:.1f} ({training:.0f} s of training)")
    returns = solve.returns if solve.curve else np.zeros(1)
    print(f"Win rate: {np.mean(returns >= WIN):.2%} of the last evaluation's episodes")
    return {"seed": seed, "solved_at": solve.solved_at, "best": solve.best,
            "training_seconds": training, "curve": solve.curve}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
