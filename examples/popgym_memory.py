"""POPGym memory tasks: a recurrent Q-network (GRU, R2D2's replay) where one screen is not enough.

In POPGym's RepeatFirst the agent must name, at every step, the card it saw
at the first step; in RepeatPrevious the card it saw 4 steps ago; in
PositionOnlyCartPole it sees the cart's and the pole's positions but not
their velocities, in VelocityOnlyCartPole the velocities but not the
positions. The model is `qlearning4k.recurrent`: each observation
through a Dense encoder, a GRU that carries what it saw, a Q-value head. It
learns from sequences of its games with their stored GRU states and a
burn-in (`SequenceReplay`), as R2D2 does, and plays carrying its state.

pip install "qlearning4k[popgym]"
python examples/popgym_memory.py                          # RepeatFirstEasy
python examples/popgym_memory.py --task repeat_previous   # or *_only_cartpole
python examples/popgym_memory.py --smoke                  # a few hundred steps
"""

import argparse

import keras

from qlearning4k import Agent, SequenceReplay, recurrent
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
TASKS = {  # task: POPGym's module and class, env steps, sequence length, burn-in, overlap
    "repeat_first": ("popgym.envs.repeat_first", "RepeatFirstEasy", 50_000, 55, 0, 0),
    "repeat_previous": ("popgym.envs.repeat_previous", "RepeatPreviousEasy", 30_000, 20, 5, 10),
    "position_only_cartpole": (
        "popgym.envs.position_only_cartpole", "PositionOnlyCartPoleEasy", 50_000, 56, 8, 24
    ),
    "velocity_only_cartpole": (
        "popgym.envs.velocity_only_cartpole", "VelocityOnlyCartPoleEasy", 50_000, 56, 8, 24
    ),
}  # fmt: skip
TASK = "repeat_first"
UNITS = 64  # the encoder's and the GRU's width
LEARNING_RATE = 1e-3
LEARNING_STARTS = 1_000
BATCH_SIZE = 32  # sequences a gradient step
MEMORY_SIZE = 100_000
GAMMA = 0.99
EPSILON = (1.0, 0.05)
EPSILON_RATE = 0.3  # epsilon decays over the first 30% of the steps
TRAIN_FREQ = 4
TARGET_UPDATE_INTERVAL = 1_000
EVAL_EPISODES = 100
EVAL_SEED = 10_000
SEED = 0
SMOKE_TIMESTEPS = 300
# -----------------------------------------------------------------------------


def make_env(task: str):
    """POPGym's environment of `task` (a Gymnasium env)."""
    module, name = TASKS[task][:2]
    return getattr(__import__(module, fromlist=[name]), name)()


def make_game(task: str, seed: int | None = None) -> GymGame:
    # A POPGym return is in [-1, 1]; a game is won at its best.
    return GymGame(make_env(task), seed=seed, win=lambda total, terminated, truncated: total > 0.99)


def build_agent(game: GymGame, task: str, seed: int) -> Agent:
    game.reset()
    frame_shape = game.get_frame().shape
    encoder = keras.Sequential(
        [keras.Input(frame_shape), keras.layers.Dense(UNITS, activation="relu")]
    )
    model = recurrent(keras.layers.GRU(UNITS), frame_shape, game.nb_actions, encoder=encoder)
    model.compile(keras.optimizers.Adam(learning_rate=LEARNING_RATE), keras.losses.Huber())
    length, burn_in, overlap = TASKS[task][3:]
    memory = SequenceReplay(
        MEMORY_SIZE, sequence_length=length, burn_in=burn_in, overlap=overlap, seed=seed
    )
    return Agent(model, memory=memory, seed=seed)


def train_settings(task: str, smoke: bool = False) -> dict:
    """`agent.train()`'s settings for `task` (a benchmark trains other agents with them)."""
    return {
        "total_timesteps": SMOKE_TIMESTEPS if smoke else TASKS[task][2],
        "learning_starts": 100 if smoke else LEARNING_STARTS,
        "batch_size": BATCH_SIZE,
        "gamma": GAMMA,
        "epsilon": EPSILON,
        "epsilon_rate": EPSILON_RATE,
        "train_freq": TRAIN_FREQ,
        "target_update_interval": TARGET_UPDATE_INTERVAL,
        "double_dqn": True,
        "verbose": 0 if smoke else 1,
    }


def evaluate(agent: Agent, task: str, smoke: bool = False) -> dict:
    """The greedy agent on EVAL_EPISODES seeded episodes, as the figures are measured."""
    return agent.evaluate(make_game(task), nb_games=5 if smoke else EVAL_EPISODES, seed=EVAL_SEED)


def main(task: str = TASK, smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    game = make_game(task, seed)
    agent = build_agent(game, task, seed)
    agent.train(game, **train_settings(task, smoke))
    results = evaluate(agent, task, smoke)
    print(
        f"Win rate: {results['win_rate']:.0%} of {results['nb_games']} greedy episodes of "
        f"{TASKS[task][1]} score their best, mean return {results['mean_score']:.3f}"
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default=TASK)
    parser.add_argument("--smoke", action="store_true", help="a few hundred env steps")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.task, args.smoke, args.seed)
