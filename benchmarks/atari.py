"""Atari Breakout with the Nature DQN convnet: env steps per second of training.

Not training to convergence (days on these CPUs): the speed of the training
loop on real pixels. `ALE/Breakout-v5` through Gymnasium's
`AtariPreprocessing` (84x84 grey frames, 4 emulator frames a step, up to 30
no-ops), 4 frames stacked (qlearning4k: `nb_frames=4`, each frame stored
once; Stable-Baselines3: `VecFrameStack` and its `CnnPolicy`, the same
network), one gradient step on a batch of 32 every 4 env steps
(`train_freq=4`), Adam 1e-4, Huber loss, a memory of 100,000. WARMUP_STEPS
env steps (random moves, then the first learning steps and their compiling)
are not timed; TIMED_STEPS are. Also the emulator alone, for scale.

    python benchmarks/atari.py --peer --markdown
    python benchmarks/atari.py --smoke   # TensorFlow, one seed, the SMOKE_ budgets, no peer
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c

# -- settings -----------------------------------------------------------------
ENV_ID = "ALE/Breakout-v5"
WARMUP_STEPS = 1_200  # the first 1,000 random (learning_starts), then learning
LEARNING_STARTS = 1_000
TIMED_STEPS = 2_000
REPEATS = 3  # seeds; the median is reported
BATCH_SIZE = 32
TRAIN_FREQ = 4
MEMORY_SIZE = 100_000
# --smoke: a few learning steps (the first batch as soon as there is one).
SMOKE_WARMUP_STEPS, SMOKE_LEARNING_STARTS, SMOKE_TIMED_STEPS = 40, BATCH_SIZE, 40
SMOKE_MEMORY_SIZE = 1_000
# -----------------------------------------------------------------------------


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global WARMUP_STEPS, LEARNING_STARTS, TIMED_STEPS, MEMORY_SIZE
    WARMUP_STEPS, LEARNING_STARTS = SMOKE_WARMUP_STEPS, SMOKE_LEARNING_STARTS
    TIMED_STEPS, MEMORY_SIZE = SMOKE_TIMED_STEPS, SMOKE_MEMORY_SIZE


def _env():
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(ENV_ID, frameskip=1)
    return gymnasium.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, noop_max=30)


def _nature_dqn(nb_actions: int):
    import keras

    model = keras.Sequential(
        [
            keras.Input((4, 84, 84)),
            keras.layers.Permute((2, 3, 1)),  # frames become channels
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(32, 8, strides=4, activation="relu"),
            keras.layers.Conv2D(64, 4, strides=2, activation="relu"),
            keras.layers.Conv2D(64, 3, strides=1, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(nb_actions),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-4), keras.losses.Huber())
    return model


def emulator(seed: int) -> float:
    env = _env()
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return TIMED_STEPS / (time.perf_counter() - start)


def ours(seed: int) -> float:
    import keras

    from qlearning4k import Agent
    from qlearning4k.games import GymGame

    keras.utils.set_random_seed(seed)
    game = GymGame(_env(), seed=seed)
    agent = Agent(_nature_dqn(game.nb_actions), memory_size=MEMORY_SIZE, seed=seed)
    options = {"batch_size": BATCH_SIZE, "train_freq": TRAIN_FREQ, "gamma": 0.99,
               "epsilon": 0.1, "verbose": 0}  # fmt: skip
    agent.train(game, total_timesteps=WARMUP_STEPS, learning_starts=LEARNING_STARTS, **options)
    start = time.perf_counter()
    agent.train(game, total_timesteps=TIMED_STEPS, **options)
    return TIMED_STEPS / (time.perf_counter() - start)


def peer(seed: int) -> float:
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    torch.set_num_threads(c.cores())  # 2, or 1 when taskset pins the run
    import gymnasium

    # A channel axis, as SB3's own AtariWrapper gives: VecFrameStack stacks on it.
    envs = DummyVecEnv([lambda: gymnasium.wrappers.ReshapeObservation(_env(), (84, 84, 1))])
    envs = VecFrameStack(envs, n_stack=4)
    model = DQN(
        "CnnPolicy",
        envs,
        learning_rate=1e-4,
        buffer_size=MEMORY_SIZE,
        learning_starts=LEARNING_STARTS,
        batch_size=BATCH_SIZE,
        gamma=0.99,
        train_freq=TRAIN_FREQ,
        gradient_steps=1,
        exploration_initial_eps=0.1,
        exploration_final_eps=0.1,
        optimize_memory_usage=False,
        seed=seed,
        verbose=0,
        device="cpu",
    )
    marks = {}

    class Clock(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == WARMUP_STEPS:
                marks["start"] = time.perf_counter()
            return True

    model.learn(WARMUP_STEPS + TIMED_STEPS, callback=Clock())
    return TIMED_STEPS / (time.perf_counter() - marks["start"])


def worker(library: str, repeats: int) -> None:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    for seed in range(repeats):
        if library == "qlearning4k":
            c.emit({"benchmark": "atari", "library": library, "backend": backend, "seed": seed,
                    "steps_per_second": ours(seed)})  # fmt: skip
        else:
            c.emit({"benchmark": "atari", "library": library, "backend": "torch", "seed": seed,
                    "steps_per_second": peer(seed)})  # fmt: skip
            c.emit({"benchmark": "atari", "library": "emulator alone", "backend": "",
                    "seed": seed, "steps_per_second": emulator(seed)})  # fmt: skip


def table(records) -> str:
    groups = {}
    for r in records:
        groups.setdefault((r["library"], r["backend"]), []).append(r["steps_per_second"])
    peer_rows = groups.get(("stable-baselines3", "torch"))
    peer_speed = c.median_spread(peer_rows)[0] if peer_rows else None
    lines = [
        "| library | backend | env steps/s, median (min-max) | ours / SB3 |",
        "|---|---|---|---|",
    ]
    for (library, backend), speeds in groups.items():
        med, lo, hi = c.median_spread(speeds)
        ratio = f"{med / peer_speed:.2f}x" if peer_speed and library == "qlearning4k" else ""
        lines.append(f"| {library} | {backend} | {med:,.0f} ({lo:,.0f}-{hi:,.0f}) | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--peer", action="store_true", help="also run Stable-Baselines3 DQN")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="TensorFlow, one seed, tiny budgets, no peer")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.backends, args.repeats, args.peer = "tensorflow", 1, False
    if args.worker:
        worker(args.worker, args.repeats)
        return
    extra = ["--repeats", str(args.repeats)]
    if args.smoke:
        extra.append("--smoke")
    records = c.run_workers(__file__, args.backends.split(","), args.peer, extra)
    if args.markdown:
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print(table(records))


if __name__ == "__main__":
    main()
