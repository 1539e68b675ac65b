"""BipedalWalker: continuous control cut into bins, learned by a branching Q-network (BDQ).

BipedalWalker-v3 moves 4 joints, each with a torque in [-1, 1].
DiscretizedActions cuts each torque into 25 evenly spaced values, so an
action has 4 parts of 25 choices: 390,625 joint actions, which no flat
Q-network covers. qlearning4k.branching puts a state value and one
advantage head per joint on a shared body (Tavakoli et al., 2018): 100
outputs. The settings are those of Tianshou's BDQ example
(examples/box2d/bipedal_bdq.py); benchmarks/bipedal_bdq.py compares the two
libraries with them.

pip install "qlearning4k[box2d]"
python examples/bipedal_walker_bdq.py           # trains for TOTAL_TIMESTEPS env steps
python examples/bipedal_walker_bdq.py --smoke   # a few hundred env steps, to check the set-up
"""

import argparse

import gymnasium
import keras

import qlearning4k
from qlearning4k import Agent
from qlearning4k.games import DiscretizedActions, GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "BipedalWalker-v3"
BINS = 25  # values per joint
NB_ENVS = 20  # environments stepped side by side
COMMON = (512, 256)  # the shared body
BRANCH_UNITS = 128  # hidden units of the value stream and of each joint's head
LEARNING_RATE = 1e-4
TOTAL_TIMESTEPS = 500_000
LEARNING_STARTS = 10_240
BATCH_SIZE = 512
GAMMA = 0.99
EPSILON = (0.73, 0.06)
EPSILON_RATE = 0.5  # epsilon decays over the first half of the env steps
MEMORY_SIZE = 100_000
TARGET_UPDATE = 1000  # gradient steps between copies to the target network
WIN = 300  # BipedalWalker's reward threshold
EVAL_EPISODES = 100
EVAL_SEED = 10_000
SEED = 0
SMOKE_TIMESTEPS, SMOKE_ENVS, SMOKE_BATCH = 400, 2, 32
# -----------------------------------------------------------------------------


def make_env() -> gymnasium.Env:
    return DiscretizedActions(gymnasium.make(ENV_ID), bins=BINS)


def build_agent(seed: int) -> Agent:
    game = GymGame(make_env())
    body = keras.Sequential(
        [keras.Input((1, *game.get_frame().shape)), keras.layers.Flatten()]
        + [keras.layers.Dense(units, activation="relu") for units in COMMON]
    )
    model = qlearning4k.branching(body, game.nb_actions, units=BRANCH_UNITS)
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), "mse")
    return Agent(model, memory_size=MEMORY_SIZE, seed=seed)


def train(agent: Agent, smoke: bool = False, verbose: int = 1) -> None:
    """Trains `agent` on NB_ENVS environments side by side (a Gymnasium vector env)."""
    nb_envs = SMOKE_ENVS if smoke else NB_ENVS
    envs = gymnasium.vector.SyncVectorEnv([make_env for _ in range(nb_envs)])
    agent.train(
        envs,
        total_timesteps=SMOKE_TIMESTEPS if smoke else TOTAL_TIMESTEPS,
        learning_starts=100 if smoke else LEARNING_STARTS,
        batch_size=SMOKE_BATCH if smoke else BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        target_update=TARGET_UPDATE,
        double_dqn=True,
        verbose=0 if smoke else verbose,
    )
    envs.close()


def main(smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    agent = build_agent(seed)
    train(agent, smoke)
    results = agent.evaluate(
        GymGame(make_env(), win=WIN), nb_games=2 if smoke else EVAL_EPISODES, seed=EVAL_SEED,
        max_steps=100 if smoke else None,
    )  # fmt: skip
    print(
        f"Win rate: {results['win_rate']:.0%} of {results['nb_games']} greedy episodes reach "
        f"{WIN}, mean return {results['mean_score']:.1f}"
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few hundred env steps")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
