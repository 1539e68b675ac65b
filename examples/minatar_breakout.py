"""MinAtar Breakout: the MinAtar paper's network learns Breakout from its 10x10 frames.

MinAtar (Young and Tian, 2019) is the field's small Atari: 10x10 frames of
a few channels, one per kind of object. Its Gymnasium ids come from
`minatar.gym.register_envs()`; `GymGame` keeps the channels-last frames
`(10, 10, 4)` (bool, stored as one byte each), so the model's input is
`(nb_frames, 10, 10, 4)`. The network and the settings are the paper's DQN:
one 3x3 convolution of 16 filters, a dense layer of 128, RMSProp, a target
network copied every 1,000 env steps, epsilon from 1 to 0.1 over the first
100,000 env steps. Every EVAL_EVERY env steps an EvalCallback plays 100
seeded greedy episodes: the learning curve.

pip install "qlearning4k[minatar]"
python examples/minatar_breakout.py           # 500,000 env steps (about 20 minutes on 2 CPU cores)
python examples/minatar_breakout.py --seed 1  # another seed
python examples/minatar_breakout.py --smoke   # a few hundred env steps, to check the set-up
"""

import argparse

import gymnasium
import keras
import minatar.gym

from qlearning4k import Agent, EvalCallback
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "MinAtar/Breakout-v1"
TOTAL_TIMESTEPS = 500_000
LEARNING_STARTS = 5_000  # random moves first, as the paper's replay start
BATCH_SIZE = 32
GAMMA = 0.99
LEARNING_RATE = 2.5e-4  # RMSProp, rho 0.95, epsilon 0.01, centred, no clipping: the paper's
EPSILON = (1.0, 0.1)
EPSILON_RATE = 0.2  # over the first 100,000 of the 500,000 env steps
MEMORY_SIZE = 100_000
TARGET_UPDATE_INTERVAL = 1_000  # env steps
XLA = False  # True: TensorFlow compiles the step with XLA (docs/performance.md: MinAtar)
EVAL_EVERY = 50_000  # env steps between greedy evaluations
EVAL_EPISODES = 100
EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...
EVAL_MAX_STEPS = 10_000  # an evaluation episode that lasts longer stops
SEED = 0
SMOKE_TIMESTEPS = 300
SMOKE_EPISODES = 2
# -----------------------------------------------------------------------------


def build_agent(nb_actions: int, frame_shape: tuple, seed: int) -> Agent:
    model = keras.Sequential(
        [
            keras.Input((1, *frame_shape)),  # one frame, channels last
            keras.layers.Reshape(frame_shape),  # (10, 10, channels) for the convolution
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(nb_actions),
        ]
    )
    # Keras' Huber loss averages over the row of nb_actions Q-values (the
    # targets of the actions not taken equal their predictions), so gradients
    # are 1 / nb_actions of the paper's PyTorch ones. PyTorch's RMSProp adds
    # its epsilon (0.01) to the root of the mean square, Keras' adds it under
    # the root: epsilon (0.01 / nb_actions) ** 2 gives the same floor to
    # these smaller gradients (the two differ by at most a factor sqrt(2),
    # where the root is near epsilon).
    optimizer = keras.optimizers.RMSprop(
        LEARNING_RATE, rho=0.95, epsilon=(0.01 / nb_actions) ** 2, centered=True
    )
    # Keras leaves XLA off on CPUs; JAX compiles with it anyway ("auto").
    jit = XLA if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(optimizer, keras.losses.Huber(), jit_compile=jit)
    return Agent(model, memory_size=MEMORY_SIZE, seed=seed)


def main(smoke: bool = False, seed: int = SEED) -> dict:
    minatar.gym.register_envs()
    keras.utils.set_random_seed(seed)
    game = GymGame(gymnasium.make(ENV_ID), seed=seed, win=1.0)  # won: at least one brick
    agent = build_agent(game.nb_actions, game.get_frame().shape, seed)
    evaluation = EvalCallback(
        GymGame(gymnasium.make(ENV_ID), win=1.0),
        every_steps=SMOKE_TIMESTEPS // 2 if smoke else EVAL_EVERY,
        nb_games=SMOKE_EPISODES if smoke else EVAL_EPISODES,
        seed=EVAL_SEED,
        max_steps=EVAL_MAX_STEPS,
        verbose=1,
    )
    history = agent.train(
        game,
        total_timesteps=SMOKE_TIMESTEPS if smoke else TOTAL_TIMESTEPS,
        learning_starts=SMOKE_TIMESTEPS // 3 if smoke else LEARNING_STARTS,
        batch_size=BATCH_SIZE,
        gamma=GAMMA,
        epsilon=EPSILON,
        epsilon_rate=EPSILON_RATE,
        target_update_interval=TARGET_UPDATE_INTERVAL,
        verbose=0,
        callbacks=[evaluation],
    )
    final = agent.evaluate(
        GymGame(gymnasium.make(ENV_ID), win=1.0),
        nb_games=SMOKE_EPISODES if smoke else EVAL_EPISODES,
        seed=EVAL_SEED,
        max_steps=EVAL_MAX_STEPS,
    )
    training, played = history.history["time"][-1], int(sum(history.history["steps"]))
    print(f"Greedy return {final['mean_score']:.1f} (std {final['std_score']:.1f}) after "
          f"{played:,} env steps, {training:.0f} s of training")  # fmt: skip
    print(f"Win rate: {final['win_rate']:.2%} of {final['nb_games']} episodes")
    curve = [(r["env_steps"], r["training_seconds"], r["mean_score"]) for r in evaluation.results]
    return {"seed": seed, "final": final["mean_score"], "best": evaluation.best_score,
            "training_seconds": training, "curve": curve}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
