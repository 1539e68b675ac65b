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

VARIANT switches on the rest of Rainbow on the same network and settings:
"c51" ends the network in 51 atoms an action (distributional C51),
"rainbow" adds dueling NoisyDense streams, Double DQN, 3-step returns and
prioritized replay, and explores by its noise alone (epsilon 0). Both train
with Adam, as Dopamine's MinAtar settings do.

pip install "qlearning4k[minatar]"
python examples/minatar_breakout.py           # 500,000 env steps (about 11 minutes on one CPU core)
python examples/minatar_breakout.py --seed 1  # another seed
python examples/minatar_breakout.py --variant rainbow  # all six parts of Rainbow (about 27 minutes)
python examples/minatar_breakout.py --smoke   # a few hundred env steps, to check the set-up
"""

import argparse

import gymnasium
import keras
import minatar.gym

from qlearning4k import C51, Agent, EvalCallback, PrioritizedExperienceReplay, dueling
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "MinAtar/Breakout-v1"
TOTAL_TIMESTEPS = 500_000
LEARNING_STARTS = 5_000  # random moves first, as the paper's replay start
BATCH_SIZE = 32
GAMMA = 0.99
LEARNING_RATE = 2.5e-4  # RMSProp, rho 0.95, epsilon 0.01, centred, no clipping: the paper's
# C51 and Rainbow: Adam at the same learning rate with epsilon 0.01 / batch
# size, as Dopamine's MinAtar settings: returns of 17.7 and 22.4 at 500,000
# env steps, where with the paper's RMSProp they levelled off near 8 and DQN
# reaches 12 (docs/performance.md, medians of 3 seeds).
ADAM_EPSILON = 0.01 / BATCH_SIZE
EPSILON = (1.0, 0.1)
EPSILON_RATE = 0.2  # over the first 100,000 of the 500,000 env steps
MEMORY_SIZE = 100_000
TARGET_UPDATE_INTERVAL = 1_000  # env steps
XLA = True  # TensorFlow compiles the step with XLA: a fifth faster (docs/performance.md: MinAtar)
VARIANT = "dqn"  # "dqn" (the paper's), "c51" or "rainbow"
# C51's support: Breakout gives 0 or 1 a step, and a brick at most about
# every 12 steps (the ball goes down to the paddle and back) is a discounted
# return of about 9 (1 / (1 - 0.99 ** 12)); 20 leaves room.
SUPPORT = (0.0, 20.0)
NB_ATOMS = 51
PRIORITY = (0.5, 0.4)  # Rainbow's prioritized replay: alpha, beta (rising to 1 over the budget)
N_STEP = 3  # Rainbow's multi-step returns
EVAL_EVERY = 50_000  # env steps between greedy evaluations
EVAL_EPISODES = 100
EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...
EVAL_MAX_STEPS = 10_000  # an evaluation episode that lasts longer stops
SEED = 0
SMOKE_TIMESTEPS = 300
SMOKE_EPISODES = 2
# -----------------------------------------------------------------------------


VARIANTS = ("dqn", "c51", "rainbow")


def build_agent(nb_actions: int, frame_shape: tuple, seed: int, variant: str = "dqn") -> Agent:
    if variant not in VARIANTS:
        raise ValueError(f"Expected variant in {VARIANTS}. Received: variant={variant!r}")
    body = [
        keras.Input((1, *frame_shape)),  # one frame, channels last
        keras.layers.Reshape(frame_shape),  # (10, 10, channels) for the convolution
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
    ]
    # Keras leaves XLA off on CPUs; JAX compiles with it anyway ("auto").
    jit = XLA if keras.backend.backend() == "tensorflow" else "auto"
    if variant == "dqn":
        model = keras.Sequential([*body, keras.layers.Dense(nb_actions)])
        # PyTorch's RMSProp adds its epsilon (0.01) to the root of the mean
        # square, Keras' adds it under the root: epsilon 0.01 ** 2 gives the
        # same floor (the two differ by at most a factor sqrt(2), where the
        # root is near epsilon). Keras' Huber loss averages over the row of
        # nb_actions Q-values (the targets of the actions not taken equal
        # their predictions), so gradients are 1 / nb_actions of the paper's
        # PyTorch ones: the epsilon shrinks with them.
        optimizer = keras.optimizers.RMSprop(
            LEARNING_RATE, rho=0.95, epsilon=(0.01 / nb_actions) ** 2, centered=True
        )
        model.compile(optimizer, keras.losses.Huber(), jit_compile=jit)
        return Agent(model, memory_size=MEMORY_SIZE, seed=seed)
    # C51 brings its own loss (cross-entropy per sample, not averaged over
    # the actions, so Adam's epsilon is Dopamine's as it is): no compiled loss.
    distribution = C51(NB_ATOMS, *SUPPORT)
    memory = None
    if variant == "c51":
        model = keras.Sequential([*body, keras.layers.Dense(nb_actions * NB_ATOMS)])
    else:
        model = dueling(keras.Sequential(body), nb_actions, nb_atoms=NB_ATOMS, noisy=True)
        batches = max(TOTAL_TIMESTEPS - LEARNING_STARTS, 1)  # one a step
        alpha, beta = PRIORITY
        memory = PrioritizedExperienceReplay(
            MEMORY_SIZE, alpha=alpha, beta=beta, beta_increment=(1 - beta) / batches, seed=seed
        )
    model.compile(keras.optimizers.Adam(LEARNING_RATE, epsilon=ADAM_EPSILON), jit_compile=jit)
    return Agent(
        model, memory=memory, memory_size=MEMORY_SIZE, seed=seed, distribution=distribution
    )


def main(smoke: bool = False, seed: int = SEED, variant: str = VARIANT) -> dict:
    minatar.gym.register_envs()
    keras.utils.set_random_seed(seed)  # the weights, and the NoisyDense layers' noise
    game = GymGame(gymnasium.make(ENV_ID), seed=seed, win=1.0)  # won: at least one brick
    agent = build_agent(game.nb_actions, game.get_frame().shape, seed, variant)
    rainbow = {"n_step": N_STEP, "double_dqn": True} if variant == "rainbow" else {}
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
        epsilon=(0.0, 0.0) if variant == "rainbow" else EPSILON,  # noisy nets explore
        epsilon_rate=EPSILON_RATE,
        target_update_interval=TARGET_UPDATE_INTERVAL,
        verbose=0,
        callbacks=[evaluation],
        **rainbow,
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
    parser.add_argument("--variant", choices=VARIANTS, default=VARIANT)
    args = parser.parse_args()
    main(args.smoke, args.seed, args.variant)
