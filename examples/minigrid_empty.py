"""MiniGrid: a Keras model of two inputs learns a gridworld from its dict observation.

MiniGrid shows a dict: a 7x7x3 `image` of what the agent sees, the
`direction` it faces (Discrete 4) and a `mission` text. GymGame takes the
dict (the text dropped with FilterObservation): frames come in two parts,
the image in bytes and the direction one-hot, and the model has one named
input for each. The agent must face the right way to move towards the goal,
which the image alone does not say. Of MiniGrid's 7 actions only the
first three (turn left, turn right, forward) do anything in an empty room:
the game allows just those (action masking), so exploration does not
waste four moves in seven.

pip install "qlearning4k[minigrid]"
python examples/minigrid_empty.py           # trains for TOTAL_TIMESTEPS env steps
python examples/minigrid_empty.py --smoke   # a few hundred env steps, to check the set-up
"""

import argparse

import gymnasium
import keras
import minigrid  # noqa: F401 (registers the MiniGrid ids)
from gymnasium.wrappers import FilterObservation

from qlearning4k import Agent
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "MiniGrid-Empty-5x5-v0"
KEYS = ["image", "direction"]  # the parts the model sees (the mission text dropped)
NB_ACTIONS = 7  # MiniGrid's Discrete(7)
MOVES = [0, 1, 2]  # the actions allowed: turn left, turn right, forward
HIDDEN_SIZE = 128
LEARNING_RATE = 5e-4
TOTAL_TIMESTEPS = 20_000
LEARNING_STARTS = 500
BATCH_SIZE = 64
GAMMA = 0.9
EPSILON = (1.0, 0.05)
EPSILON_RATE = 0.5  # epsilon decays over the first half of the env steps
MEMORY_SIZE = 20_000
TRAIN_FREQ = 1
TARGET_UPDATE_INTERVAL = 200  # env steps between copies to the target network
EVAL_EPISODES = 100
EVAL_SEED = 10_000
SEED = 0
SMOKE_TIMESTEPS = 300
# -----------------------------------------------------------------------------


class EmptyRoom(GymGame):
    """MiniGrid with the moves only: the agent's moves and targets skip the rest."""

    def get_possible_actions(self) -> list[int]:
        return MOVES


def make_game(seed: int | None = None) -> GymGame:
    env = FilterObservation(gymnasium.make(ENV_ID), KEYS)
    return EmptyRoom(env, seed=seed, win=lambda total, terminated, truncated: terminated)


def build_agent(seed: int) -> Agent:
    image = keras.Input((1, 7, 7, 3), name="image")  # one frame of each part
    direction = keras.Input((1, 4), name="direction")
    x = keras.layers.Concatenate()(
        [keras.layers.Flatten()(keras.layers.Rescaling(1 / 10)(image)),
         keras.layers.Flatten()(direction)]
    )  # fmt: skip
    x = keras.layers.Dense(HIDDEN_SIZE, activation="relu")(x)
    x = keras.layers.Dense(HIDDEN_SIZE, activation="relu")(x)
    model = keras.Model({"image": image, "direction": direction}, keras.layers.Dense(NB_ACTIONS)(x))
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), keras.losses.Huber())
    return Agent(model, memory_size=MEMORY_SIZE, seed=seed)


def main(smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    agent = build_agent(seed)
    agent.train(
        make_game(seed),
        total_timesteps=SMOKE_TIMESTEPS if smoke else TOTAL_TIMESTEPS,
        learning_starts=100 if smoke else LEARNING_STARTS,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        train_freq=TRAIN_FREQ,
        target_update_interval=TARGET_UPDATE_INTERVAL,
        verbose=0 if smoke else 1,
    )
    results = agent.evaluate(
        make_game(), nb_games=5 if smoke else EVAL_EPISODES, seed=EVAL_SEED, max_steps=None
    )
    print(
        f"Win rate: {results['win_rate']:.0%} of {results['nb_games']} greedy episodes reach "
        f"the goal, mean return {results['mean_score']:.3f}"
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few hundred env steps")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
