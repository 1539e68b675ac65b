"""Bytes of replay memory per stored transition, for Catch and Snake.

Fills an `ExperienceReplay` with transitions of real games (random moves,
stacked frames as the agent stacks them) and divides the bytes its buffers
hold by their capacity. The original qlearning4k stored each transition as
one float64 row: both stacked states, action, reward and game over.

    python benchmarks/memory.py --markdown
"""

from __future__ import annotations

import argparse
import time

import _common as c
import numpy as np

from qlearning4k import ExperienceReplay
from qlearning4k.games import Catch, Snake

# -- settings -----------------------------------------------------------------
MEMORY_SIZE = 10_000
CASES = (("Catch", Catch, 1), ("Snake", Snake, 4))  # (name, game, nb_frames)
# -----------------------------------------------------------------------------


def measure(game_class, nb_frames: int, seed: int = 0) -> dict:
    game = game_class(seed=seed)
    rng = np.random.default_rng(seed)
    memory = ExperienceReplay(MEMORY_SIZE, seed=seed)
    stored = 0
    while stored < MEMORY_SIZE:
        game.reset()
        state = np.repeat(game.get_frame()[None, None], nb_frames, axis=1)
        while not game.is_over():
            action = int(rng.integers(game.nb_actions))
            game.play(action)
            next_state = np.concatenate([state[:, 1:], game.get_frame()[None, None]], axis=1)
            memory.remember(state, action, game.get_score(), next_state, game.is_over())
            state = next_state
            stored += 1
    per_transition = memory.nbytes / memory.capacity
    original = (2 * state[0].size + 3) * 8  # one float64 row per transition
    return {"bytes_per_transition": per_transition, "original_bytes": original}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = []
    for name, game_class, nb_frames in CASES:
        record = {"benchmark": "memory", "game": name, "nb_frames": nb_frames,
                  **measure(game_class, nb_frames)}  # fmt: skip
        c.emit(record)
        rows.append(record)
    if args.markdown:
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print("| game | nb_frames | bytes per transition | original qlearning4k |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['game']} | {r['nb_frames']} | {r['bytes_per_transition']:.0f} | "
                  f"{r['original_bytes']} |")  # fmt: skip


if __name__ == "__main__":
    main()
