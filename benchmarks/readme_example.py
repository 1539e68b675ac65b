"""The README example: seconds of `agent.train(game)` with its defaults, then the win rate.

Builds the README's model (SGD, learning rate 0.2) and agent, times
`agent.train(Catch(10, seed=seed))` (1000 games, one gradient step after
each game step, the original algorithm; tracing and compiling included),
then plays 1000 fresh greedy games. One JSON line per seed; each backend in
its own process.

    python benchmarks/readme_example.py --markdown
    python benchmarks/readme_example.py --backends tensorflow --seeds 5
    python benchmarks/readme_example.py --smoke   # TensorFlow, one seed, SMOKE_GAMES games
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c

# -- settings -----------------------------------------------------------------
SEEDS = 3
SMOKE_GAMES, SMOKE_FINAL_GAMES = 5, 20  # --smoke: training games, then fresh greedy games
# -----------------------------------------------------------------------------


def ours(seed: int, games: int | None = None, final_games: int = c.FINAL_GAMES) -> dict:
    """Trains `games` games (None: `train()`'s default), then plays `final_games`."""
    import keras

    from qlearning4k import Agent
    from qlearning4k.games import Catch

    keras.utils.set_random_seed(seed)
    model = c.catch_model(optimizer="sgd", learning_rate=0.2)
    agent = Agent(model, seed=seed)
    start = time.perf_counter()
    agent.train(Catch(c.GRID_SIZE, seed=seed), nb_epoch=games, verbose=0)
    seconds = time.perf_counter() - start
    final = agent.evaluate(Catch(c.GRID_SIZE), nb_games=final_games, seed=c.FINAL_SEED)
    final = final["win_rate"]
    return {"seconds": seconds, "final_win_rate": final,
            "compile_seconds": c.compile_seconds(agent)}  # fmt: skip


def worker(seeds: int, smoke: bool = False) -> None:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    budget = (SMOKE_GAMES, SMOKE_FINAL_GAMES) if smoke else (None, c.FINAL_GAMES)
    for seed in range(seeds):
        c.emit({"benchmark": "readme_example", "library": "qlearning4k", "backend": backend,
                "seed": seed, **ours(seed, *budget)})  # fmt: skip


def table(records) -> str:
    lines = [
        "| backend | training s, median (min-max) | of which compile s | "
        "win rate on 1000 fresh games, min |",
        "|---|---|---|---|",
    ]
    groups = {}
    for r in records:
        groups.setdefault(r["backend"], []).append(r)
    for backend, rows in groups.items():
        med, lo, hi = c.median_spread(r["seconds"] for r in rows)
        compile_s = c.median_spread(r["compile_seconds"] for r in rows)[0]
        worst = min(r["final_win_rate"] for r in rows)
        lines.append(
            f"| {backend} | {med:.2f} ({lo:.2f}-{hi:.2f}) | {compile_s:.2f} | {worst:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true", help="TensorFlow, one seed, tiny budgets")
    c.add_results_argument(parser, "readme_example")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.backends, args.seeds = "tensorflow", 1
    if args.worker:
        worker(args.seeds, args.smoke)
        return
    extra = ["--seeds", str(args.seeds)]
    if args.smoke:
        extra.append("--smoke")
    records = c.run_workers(__file__, args.backends.split(","), False, extra)
    c.finish(
        args,
        records,
        {
            "optimizer": "SGD(learning_rate=0.2)",
            "nb_epoch": 1000,
            "batch_size": 50,
            "final_games": c.FINAL_GAMES,
            "final_seed": c.FINAL_SEED,
        },
        table,
    )


if __name__ == "__main__":
    main()
