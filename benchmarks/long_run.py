"""Resident memory over a long run: 200,000 env steps of Catch, memory_size=10,000.

Prints the resident set size (RSS) after a warm-up and at the end; training
holds it flat once the replay memory is full (the issue asks for under 50 MB
of growth after warm-up).

    python benchmarks/long_run.py            # about 2 minutes on TensorFlow
    KERAS_BACKEND=jax python benchmarks/long_run.py
    python benchmarks/long_run.py --smoke    # a few hundred env steps (the SMOKE_ budgets)
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import _common as c

# -- settings -----------------------------------------------------------------
TOTAL_STEPS = 200_000
MEMORY_SIZE = 10_000
WARMUP_GAMES = 2_000  # 18,000 env steps: the memory is full, everything compiled
CHUNK_GAMES = 2_000  # RSS is read between chunks
SMOKE_STEPS, SMOKE_MEMORY_SIZE, SMOKE_WARMUP_GAMES, SMOKE_CHUNK_GAMES = 360, 100, 20, 10
# -----------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TOTAL_STEPS)
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (the SMOKE_ settings)")
    args = parser.parse_args()
    memory_size, warmup_games, chunk_games = MEMORY_SIZE, WARMUP_GAMES, CHUNK_GAMES
    if args.smoke:
        args.steps, memory_size = SMOKE_STEPS, SMOKE_MEMORY_SIZE
        warmup_games, chunk_games = SMOKE_WARMUP_GAMES, SMOKE_CHUNK_GAMES

    import keras

    from qlearning4k import Agent
    from qlearning4k.games import Catch

    keras.utils.set_random_seed(0)
    agent = Agent(c.catch_model(), memory_size=memory_size, seed=0)
    game = Catch(c.GRID_SIZE, seed=0)
    start = time.perf_counter()
    history = agent.train(game, nb_epoch=warmup_games, batch_size=32, epsilon=0.1, verbose=0)
    steps = sum(history.history["steps"])
    after_warmup = rss_mb()
    samples = [after_warmup]
    while steps < args.steps:
        history = agent.train(game, nb_epoch=chunk_games, batch_size=32, epsilon=0.1, verbose=0)
        steps += sum(history.history["steps"])
        samples.append(rss_mb())
    c.emit(
        {
            "benchmark": "long_run",
            "backend": keras.backend.backend(),
            "env_steps": steps,
            "seconds": time.perf_counter() - start,
            "rss_after_warmup_mb": after_warmup,
            "rss_end_mb": samples[-1],
            "rss_max_mb": max(samples),
            "growth_mb": max(samples) - after_warmup,
        }
    )


if __name__ == "__main__":
    main()
