"""CartPole: a Keras MLP masters Gymnasium's CartPole-v1 through GymGame.

Modern DQN in one flag each: a target network with Huber loss, Double DQN
and 3-step returns. Every EVAL_EVERY episodes an EvalCallback lets the
greedy policy play 100 seeded episodes side by side; training stops once
their average return reaches TARGET_RETURN.

pip install "qlearning4k[gym]"
python examples/cartpole.py           # trains until solved (or NB_EPOCH episodes)
python examples/cartpole.py --seed 1  # another seed
python examples/cartpole.py --smoke   # a few episodes, to check the set-up
"""

import argparse

import keras

from qlearning4k import Agent, EvalCallback
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
EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...
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


def main(smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    agent = build_agent(seed)
    # Every EVAL_EVERY episodes, 100 seeded greedy episodes; stops once solved.
    # Its time is left out of the training time (the `time` log).
    evaluation = EvalCallback(
        GymGame(ENV_ID, win=WIN),
        every_games=1 if smoke else EVAL_EVERY,
        nb_games=SMOKE_EPOCHS if smoke else EVAL_EPISODES,
        seed=EVAL_SEED,
        max_steps=None,  # CartPole-v1 stops an episode at 500 steps itself
        threshold=TARGET_RETURN,
        verbose=1,
    )
    history = agent.train(
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
        callbacks=[evaluation],
    )
    training = history.history["time"][-1]
    last = evaluation.results[-1]
    if last["mean_score"] >= TARGET_RETURN:
        seconds = last["training_seconds"]
        print(f"Solved after {last['games']} episodes, {seconds:.0f} s of training")
    else:
        print(f"Not solved: best greedy average {evaluation.best_score:.1f} "
              f"({training:.0f} s of training)")  # fmt: skip
    print(f"Win rate: {last['win_rate']:.2%} of the last evaluation's episodes")
    curve = [(r["games"], r["training_seconds"], r["mean_score"]) for r in evaluation.results]
    return {"seed": seed, "best": evaluation.best_score, "training_seconds": training,
            "curve": curve}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
