"""Training throughput against the number of game copies: env steps per second.

Catch with 1, 16, 64 and 256 copies, in three forms: `VectorCatch` (a vector
game, all copies in one NumPy step), `SyncVectorEnv` of the Gymnasium id
`qlearning4k/Catch-v0` (one Python env a copy, `SAME_STEP` autoreset), and
Stable-Baselines3 DQN on the same number of copies (its `DummyVecEnv` of the
same Gymnasium env); on TensorFlow also `VectorCatch` with the model compiled
with `jit_compile=True` (XLA). Stable-Baselines3's settings on both sides: one step of
every copy, then one gradient step on a batch of 32 (`train_freq=1`,
`gradient_steps=1`), the README's model (two hidden layers of 100), a replay
memory of 50,000, epsilon fixed at 0.1. The first WARMUP_STEPS steps of all
copies are not timed (they include tracing and compiling).

    python benchmarks/copies.py --peer --markdown
    python benchmarks/copies.py --smoke   # TensorFlow, SMOKE_COPIES copies, one repeat, no peer
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
COPIES = (1, 16, 64, 256)
WARMUP_STEPS = 50  # steps of all copies, not timed
TIMED_STEPS = 300  # steps of all copies, timed (at least MIN_ENV_STEPS env steps)
MIN_ENV_STEPS = 3_000
REPEATS = 3  # seeds; the median is reported
BATCH_SIZE = 32
EPSILON = 0.1
MEMORY_SIZE = 50_000
# Ours: VectorCatch, and SyncVectorEnv of GameEnv; on TensorFlow also VectorCatch
# with the model compiled with jit_compile=True (XLA, which Keras leaves off on CPUs).
FORMS = ("vector", "sync")
# --smoke: every form of ours on a few copies, a few steps of them.
SMOKE_COPIES, SMOKE_WARMUP_STEPS, SMOKE_TIMED_STEPS, SMOKE_MIN_ENV_STEPS = (4,), 5, 10, 0
# -----------------------------------------------------------------------------


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global COPIES, WARMUP_STEPS, TIMED_STEPS, MIN_ENV_STEPS
    COPIES, WARMUP_STEPS = SMOKE_COPIES, SMOKE_WARMUP_STEPS
    TIMED_STEPS, MIN_ENV_STEPS = SMOKE_TIMED_STEPS, SMOKE_MIN_ENV_STEPS


def _budget(copies: int) -> tuple[int, int]:
    """Env steps of the warm-up and of the timed run, all copies together."""
    timed = max(TIMED_STEPS * copies, MIN_ENV_STEPS)
    return WARMUP_STEPS * copies, timed - timed % copies


def _sync_envs(copies: int, seed: int):
    import gymnasium
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    import qlearning4k  # noqa: F401  (registers qlearning4k/Catch-v0)

    return SyncVectorEnv(
        [lambda: gymnasium.make("qlearning4k/Catch-v0")] * copies,
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


def ours(form: str, copies: int, seed: int) -> float:
    import keras

    from qlearning4k import Agent
    from qlearning4k.games import GymVectorGame, VectorCatch

    keras.utils.set_random_seed(seed)
    jit = True if form == "vector-xla" else "auto"
    model = c.catch_model(optimizer="sgd", learning_rate=0.2, jit_compile=jit)
    agent = Agent(model, memory_size=MEMORY_SIZE, seed=seed)
    envs = None
    if form in ("vector", "vector-xla"):
        game = VectorCatch(copies, c.GRID_SIZE, seed=seed)
    else:
        envs = _sync_envs(copies, seed)
        game = GymVectorGame(envs, seed=seed)
    options = {"batch_size": BATCH_SIZE, "epsilon": EPSILON, "verbose": 0}
    warmup, timed = _budget(copies)
    agent.train(game, total_timesteps=warmup, **options)
    start = time.perf_counter()
    agent.train(game, total_timesteps=timed, **options)
    seconds = time.perf_counter() - start
    if envs is not None:
        envs.close()
    return timed / seconds


def peer(copies: int, seed: int) -> float:
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(c.cores())  # 2, or 1 when taskset pins the run
    envs = DummyVecEnv([lambda k=k: c.sb3_catch_env(seed + k) for k in range(copies)])
    model = DQN(
        "MlpPolicy",
        envs,
        learning_rate=1e-3,
        buffer_size=MEMORY_SIZE,
        learning_starts=0,
        batch_size=BATCH_SIZE,
        gamma=0.9,
        train_freq=1,
        gradient_steps=1,
        exploration_initial_eps=EPSILON,
        exploration_final_eps=EPSILON,
        policy_kwargs={"net_arch": [100, 100]},
        seed=seed,
        verbose=0,
        device="cpu",
    )
    warmup, timed = _budget(copies)
    marks = {}

    class Clock(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == warmup:
                marks["start"] = time.perf_counter()
            return True

    model.learn(warmup + timed, callback=Clock())
    return timed / (time.perf_counter() - marks["start"])


def worker(library: str, repeats: int, copies_list) -> None:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    for copies in copies_list:
        for seed in range(repeats):
            if library != "qlearning4k":
                c.emit({"benchmark": "copies", "library": library, "backend": "torch",
                        "form": "DummyVecEnv", "copies": copies, "seed": seed,
                        "steps_per_second": peer(copies, seed)})  # fmt: skip
                continue
            forms = FORMS + (("vector-xla",) if backend == "tensorflow" else ())
            for form in forms:  # alternated, in one process
                c.emit({"benchmark": "copies", "library": library, "backend": backend,
                        "form": form, "copies": copies, "seed": seed,
                        "steps_per_second": ours(form, copies, seed)})  # fmt: skip


_FORM_NAMES = {
    "vector": "`VectorCatch`",
    "vector-xla": "`VectorCatch`, XLA",
    "sync": "`SyncVectorEnv`",
    "DummyVecEnv": "`DummyVecEnv`",
}


def table(records) -> str:
    peer = {}
    for r in records:
        if r["library"] == "stable-baselines3":
            peer.setdefault(r["copies"], []).append(r["steps_per_second"])
    peer = {k: c.median_spread(v)[0] for k, v in peer.items()}
    groups = {}
    for r in records:
        key = (r["library"], r["backend"], r["form"], r["copies"])
        groups.setdefault(key, []).append(r["steps_per_second"])
    lines = [
        "| library | backend | copies as | copies | env steps/s, median (min-max) | ours / SB3 |",
        "|---|---|---|---|---|---|",
    ]
    for (library, backend, form, copies), speeds in sorted(
        groups.items(), key=lambda item: (item[0][3], item[0][0] != "qlearning4k", item[0][1:3])
    ):
        med, lo, hi = c.median_spread(speeds)
        ratio = f"{med / peer[copies]:.1f}x" if library == "qlearning4k" and copies in peer else ""
        lines.append(
            f"| {library} | {backend} | {_FORM_NAMES[form]} | {copies} | "
            f"{med:,.0f} ({lo:,.0f}-{hi:,.0f}) | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated")
    parser.add_argument("--copies", default=",".join(map(str, COPIES)), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--peer", action="store_true", help="also run Stable-Baselines3 DQN")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="TensorFlow, a few copies, one repeat, tiny budgets, "
                             "no peer")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.backends, args.repeats, args.peer = "tensorflow", 1, False
        args.copies = ",".join(map(str, SMOKE_COPIES))
    copies = [int(x) for x in args.copies.split(",")]
    if args.worker:
        worker(args.worker, args.repeats, copies)
        return
    extra = ["--repeats", str(args.repeats), "--copies", args.copies]
    if args.smoke:
        extra.append("--smoke")
    records = c.run_workers(__file__, args.backends.split(","), args.peer, extra)
    if args.markdown:
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print(table(records))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
