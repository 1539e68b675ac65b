"""Throughput in the original qlearning4k's semantics: env steps per second.

One game at a time, one gradient step on a batch of 32 after every env step,
the README's model, epsilon fixed at 0.1 (as late in training). The first
WARMUP_GAMES are not timed (they include tracing and compiling). Each backend
runs with the defaults and with `single_core=True`, alternated in one process.
The peer is Stable-Baselines3 DQN with train_freq=1 and gradient_steps=1.

    python benchmarks/throughput.py --peer --markdown
    python benchmarks/throughput.py --smoke   # TensorFlow, one repeat, SMOKE_ games, no peer
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c

# -- settings -----------------------------------------------------------------
WARMUP_GAMES = 20
TIMED_GAMES = 400  # 9 env steps each
REPEATS = 3  # timed runs; the median is reported
BATCH_SIZE = 32
EPSILON = 0.1
SMOKE_WARMUP_GAMES, SMOKE_TIMED_GAMES = 2, 5  # --smoke
# -----------------------------------------------------------------------------


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global WARMUP_GAMES, TIMED_GAMES
    WARMUP_GAMES, TIMED_GAMES = SMOKE_WARMUP_GAMES, SMOKE_TIMED_GAMES


def ours(seed: int, single_core: bool = False) -> float:
    import keras

    from qlearning4k import Agent
    from qlearning4k.games import Catch

    keras.utils.set_random_seed(seed)
    agent = Agent(c.catch_model(optimizer="sgd", learning_rate=0.2), seed=seed)
    game = Catch(c.GRID_SIZE, seed=seed)
    options = {"batch_size": BATCH_SIZE, "epsilon": EPSILON, "single_core": single_core}
    agent.train(game, nb_epoch=WARMUP_GAMES, verbose=0, **options)
    start = time.perf_counter()
    history = agent.train(game, nb_epoch=TIMED_GAMES, verbose=0, **options)
    return sum(history.history["steps"]) / (time.perf_counter() - start)


def peer(seed: int) -> float:
    from stable_baselines3.common.callbacks import BaseCallback

    steps = TIMED_GAMES * (c.GRID_SIZE - 1)
    model = c.sb3_dqn(seed, train_freq=1, total_timesteps=0, batch_size=BATCH_SIZE)
    model.exploration_initial_eps = model.exploration_final_eps = EPSILON
    model.learning_starts = 0
    marks = {}

    class Clock(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == WARMUP_GAMES * (c.GRID_SIZE - 1):
                marks["start"] = time.perf_counter()
            return True

    model.learn(WARMUP_GAMES * (c.GRID_SIZE - 1) + steps, callback=Clock())
    return steps / (time.perf_counter() - marks["start"])


def worker(library: str, repeats: int) -> None:
    if library != "qlearning4k":
        for seed in range(repeats):
            c.emit({"benchmark": "throughput", "library": library, "backend": "torch",
                    "seed": seed, "steps_per_second": peer(seed)})  # fmt: skip
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    for seed in range(repeats):
        for single_core in (False, True):  # alternated, in one process
            c.emit({"benchmark": "throughput", "library": library, "backend": backend,
                    "single_core": single_core, "seed": seed,
                    "steps_per_second": ours(seed, single_core)})  # fmt: skip


def table(records) -> str:
    peer_rows = [r["steps_per_second"] for r in records if r["library"] == "stable-baselines3"]
    peer_speed = c.median_spread(peer_rows)[0] if peer_rows else None
    lines = [
        "| library | backend | option | env steps/s, median (min-max) "
        "| ours / SB3 (train_freq=1) |",
        "|---|---|---|---|---|",
    ]
    groups = {}
    for r in records:
        key = (r["library"], r["backend"], r.get("single_core", False))
        groups.setdefault(key, []).append(r["steps_per_second"])
    for (library, backend, single_core), speeds in groups.items():
        med, lo, hi = c.median_spread(speeds)
        ratio = f"{med / peer_speed:.2f}x" if peer_speed else ""
        option = "`single_core=True`" if single_core else ""
        lines.append(
            f"| {library} | {backend} | {option} | {med:.0f} ({lo:.0f}-{hi:.0f}) | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--peer", action="store_true", help="also run Stable-Baselines3 DQN")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="TensorFlow, one repeat, tiny budgets, no peer")  # fmt: skip
    c.add_results_argument(parser, "throughput")
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
    c.finish(
        args,
        records,
        {
            "warmup_games": WARMUP_GAMES,
            "timed_games": TIMED_GAMES,
            "batch_size": BATCH_SIZE,
            "epsilon": EPSILON,
            "optimizer": "SGD(learning_rate=0.2)",
            "repeats": args.repeats,
        },
        table,
    )


if __name__ == "__main__":
    main()
