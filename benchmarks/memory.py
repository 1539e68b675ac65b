"""Bytes of replay memory per stored transition: Catch, Snake, and 84x84 pixels.

Fills an `ExperienceReplay` with transitions as the agent makes them (random
moves, stacked frames as the agent stacks them, a game's first frame
repeated) and divides the bytes its buffers hold by their capacity. The
original qlearning4k stored each transition as one float64 row: both
stacked states, action, reward and game over.

`--pixels` measures the Atari scale: random 84x84 `uint8` frames stacked 4
deep in games of 1,000 moves, with frames stored once (the default for
stacked states) and with whole states (the layout before, still used for
states of one frame); as Rainbow stores them, 3-step transitions of 16
game copies through the agent's own n-step bookkeeping, the copies ending
their games at different steps; and frames in parts (`PARTS`: the 84x84
image and a `float32` vector of 8, a dict as a game would show it, packed
as the agent packs it), whose bytes are set beside the image's alone plus
the vector's 32 bytes; and a recurrent agent's `SequenceReplay` of the same
frames with R2D2's sequences (80 learned steps after a burn-in of 40, a
sequence every 40 steps) and an LSTM of 256 units' stored states
(`STATE_SIZE` floats a sequence), whose bytes a step are set beside the
frames-once transitions'. Each case runs in a fresh process, which
reports the resident memory it grew by while filling the memory and the
time of sampling a batch of 32 into the agent's call arrays.

    python benchmarks/memory.py --markdown
    python benchmarks/memory.py --pixels --markdown
    python benchmarks/memory.py --smoke            # small memories (SMOKE_MEMORY_SIZE)
    python benchmarks/memory.py --pixels --layouts "frames once,sequences" --markdown
    python benchmarks/memory.py --pixels --smoke   # small pixel memories (SMOKE_PIXEL_CASES)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common as c
import numpy as np

from qlearning4k import ExperienceReplay, SequenceReplay
from qlearning4k._internals import FrameParts, NStep, SequenceBuffers, StepBatch
from qlearning4k.games import Catch, Snake

# -- settings -----------------------------------------------------------------
MEMORY_SIZE = 10_000
CASES = (("Catch", Catch, 1), ("Snake", Snake, 4))  # (name, game, nb_frames)
N_STEP_CASE = "frames once, 3-step, 16 copies"
PARTS_CASE = "frames once, in parts"
PARTS = {"image": ((84, 84), np.uint8), "vector": ((8,), np.float32)}  # name: (shape, dtype)
SEQUENCE_CASE = "sequences"
STATE_SIZE = 512  # an LSTM of 256 units: its two states
PIXEL_CASES = (
    ("frames once", 1_000_000), (N_STEP_CASE, 1_000_000), ("frames once", 100_000),
    (N_STEP_CASE, 100_000), ("whole states", 100_000), (PARTS_CASE, 100_000),
    (SEQUENCE_CASE, 100_000),
)  # fmt: skip
FRAME, NB_FRAMES, GAME_LENGTH = (84, 84), 4, 1000
BATCH, SAMPLES, REPEATS = 32, 1000, 5
# --smoke: small memories, a few samples timed once.
SMOKE_MEMORY_SIZE = 500
SMOKE_PIXEL_CASES = (
    ("frames once", 2_000), (N_STEP_CASE, 2_000), ("whole states", 2_000), (PARTS_CASE, 2_000),
    (SEQUENCE_CASE, 2_000),
)  # fmt: skip
SMOKE_SAMPLES, SMOKE_REPEATS = 10, 1
# -----------------------------------------------------------------------------


def measure(game_class, nb_frames: int, seed: int = 0, memory_size: int = MEMORY_SIZE) -> dict:
    game = game_class(seed=seed)
    rng = np.random.default_rng(seed)
    memory = ExperienceReplay(memory_size, seed=seed)
    stored = 0
    while stored < memory_size:
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


class _WholeStatesReplay(ExperienceReplay):
    """ExperienceReplay keeping stacked states whole, as it did before frames were stored once."""

    _frame_once = False


def _resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _fill_one_game(memory, pool: np.ndarray, size: int) -> None:
    """`size` 1-step transitions as the agent remembers one game's moves."""
    frames = [pool[0]] * NB_FRAMES
    state = np.stack(frames)
    for t in range(size):
        frames = frames[1:] + [pool[(t * 7 + 1) % len(pool)]]
        next_state = np.stack(frames)
        if t == 0:
            memory.remember(state[None], 0, 0.0, next_state[None], False)
        else:
            memory._remember_one(state, 0, 0.0, next_state, False)
        if t % GAME_LENGTH == GAME_LENGTH - 1:
            frames = [pool[(t * 13) % len(pool)]] * NB_FRAMES
            next_state = np.stack(frames)
        state = next_state


def _fill_n_step(memory, pool: np.ndarray, size: int, copies: int = 16, n: int = 3) -> None:
    """`size` n-step transitions of `copies` games through the agent's n-step
    bookkeeping; copy k's first game is k * GAME_LENGTH // copies moves shorter.
    Each frame is a pool frame with a serial number in its first 8 bytes: the
    memory looks n-step frames up by content, and no frame repeats."""
    nstep = NStep(n, 0.99, copies, (NB_FRAMES,) + FRAME, np.uint8)
    playing = np.arange(copies)
    serial = 0

    def new_frames(count: int) -> np.ndarray:
        nonlocal serial
        numbers = serial + np.arange(count, dtype=np.uint64)
        serial += count
        frames = pool[numbers % len(pool)]
        frames[:, 0, :8] = numbers[:, None].view(np.uint8).reshape(count, 8)
        return frames

    states = np.repeat(new_frames(copies)[:, None], NB_FRAMES, axis=1)
    moves = GAME_LENGTH - playing * GAME_LENGTH // copies  # moves left in each game
    zeros, ones = np.zeros(copies, np.int32), np.ones(copies, np.float32)
    while len(memory) < size:
        next_states = np.concatenate([states[:, 1:], new_frames(copies)[:, None]], axis=1)
        moves -= 1
        over = moves == 0
        nstep.add(memory, playing, (states, zeros, ones, next_states, over, None), over)
        states = next_states
        if over.any():
            states[over] = new_frames(int(over.sum()))[:, None]
            moves[over] = GAME_LENGTH


def _fill_sequences(memory, pool: np.ndarray, size: int) -> None:
    """`size` steps of one game copy as a recurrent agent's run remembers them."""
    memory._start(pool[:1], 1, STATE_SIZE)
    copies, states = np.array([0]), np.zeros((1, STATE_SIZE), np.float32)
    actions, rewards = np.zeros(1, np.int32), np.zeros(1, np.float32)
    for t in range(size):
        over = np.array([t % GAME_LENGTH == GAME_LENGTH - 1])
        frame, after = pool[(t * 7) % len(pool)][None], pool[(t * 7 + 1) % len(pool)][None]
        memory._remember_steps(copies, frame, states, actions, rewards, over, over, after)


def _sequence_batch(memory):
    """A batch of BATCH sequences of `memory`'s length, as the recurrent learner holds it."""
    length, learned = memory.sequence_length, memory.sequence_length - memory.burn_in
    buffers = SequenceBuffers(1, BATCH, 1, length, learned, FRAME, np.uint8, STATE_SIZE, 4, False)
    return buffers.batches[0]


def pixels_worker(
    layout: str, size: int, seed: int = 0, samples: int = SAMPLES, repeats: int = REPEATS
) -> dict:
    """Fills a memory of `size` 84x84x4 transitions in this process; its figures."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (4096,) + FRAME, dtype=np.uint8)  # frames to draw from
    if layout == PARTS_CASE:  # each pool frame a dict of the image and a vector, packed
        parts = FrameParts(tuple(PARTS), *zip(*PARTS.values(), strict=True))
        vectors = rng.normal(size=(len(pool), *PARTS["vector"][0])).astype(np.float32)
        pool = parts.pack({"image": pool, "vector": vectors}, "the pool", (len(pool),))
    if layout == SEQUENCE_CASE:
        memory, fill_memory = SequenceReplay(size, seed=seed), _fill_sequences
    else:
        replay = _WholeStatesReplay if layout == "whole states" else ExperienceReplay
        memory, fill_memory = replay(size, seed), _fill_one_game
        if layout == N_STEP_CASE:
            fill_memory = _fill_n_step
    before = _resident_bytes()
    start = time.perf_counter()
    fill_memory(memory, pool, size)
    fill = time.perf_counter() - start
    grown = _resident_bytes() - before
    if layout == SEQUENCE_CASE:
        into = _sequence_batch(memory)
    else:
        states = np.zeros((BATCH, NB_FRAMES) + pool.shape[1:], np.uint8)
        floats = np.zeros((BATCH, 4), np.float32)
        into = StepBatch(states, np.zeros_like(states), *floats.T, next_mask=None)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(samples):
            memory._sample_into(into, 0.99)
        times.append((time.perf_counter() - start) / samples)
    return {
        "benchmark": "memory_pixels", "layout": layout,
        "transitions": size if layout == SEQUENCE_CASE else len(memory),  # sequences: steps
        "bytes_per_transition": memory.nbytes / size,
        "resident_growth_bytes": grown, "resident_bytes": _resident_bytes(),
        "fill_seconds": fill, "sample_seconds": times, "frame_bytes": pool[0].nbytes,
    }  # fmt: skip


def pixels(markdown: bool, smoke: bool = False, layouts=None) -> None:
    rows = []
    for layout, size in SMOKE_PIXEL_CASES if smoke else PIXEL_CASES:
        if layouts is not None and layout not in layouts:
            continue
        command = [sys.executable, __file__, "--worker", layout, "--size", str(size)]
        if smoke:
            command.append("--smoke")
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        record = json.loads(out.strip().splitlines()[-1])
        c.emit(record)
        rows.append(record)
    if markdown:
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print("| layout | transitions | bytes per transition | resident memory grown by | "
              "sampling 32, us (median of 5) |\n|---|---|---|---|---|")  # fmt: skip
        for r in rows:
            sample = c.median_spread(r["sample_seconds"])
            print(f"| {r['layout']} | {r['transitions']:,} | {r['bytes_per_transition']:,.0f} | "
                  f"{r['resident_growth_bytes'] / 2**30:.2f} GiB | {sample[0] * 1e6:.0f} "
                  f"({sample[1] * 1e6:.0f}-{sample[2] * 1e6:.0f}) |")  # fmt: skip
        alone = {r["transitions"]: r for r in rows if r["layout"] == "frames once"}
        for r in rows:
            if r["layout"] == PARTS_CASE and r["transitions"] in alone:
                vector = np.dtype(PARTS["vector"][1]).itemsize * np.prod(PARTS["vector"][0])
                parts_once = alone[r["transitions"]]["bytes_per_transition"] + vector
                print(f"\nIn parts, {r['transitions']:,} transitions: "
                      f"{r['bytes_per_transition']:,.0f} bytes a transition, "
                      f"{r['bytes_per_transition'] / parts_once:.3f}x the image's alone "
                      f"plus the vector's {vector} bytes ({parts_once:,.0f})")  # fmt: skip
            if r["layout"] == SEQUENCE_CASE and r["transitions"] in alone:
                once = alone[r["transitions"]]["bytes_per_transition"]
                print(f"\nSequences, {r['transitions']:,} steps: "
                      f"{r['bytes_per_transition']:,.0f} bytes a step, "
                      f"{r['bytes_per_transition'] / once:.3f}x the frames-once "
                      f"transitions' ({once:,.0f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--pixels", action="store_true", help="84x84 frames at 1M transitions")
    parser.add_argument("--layouts", help="--pixels' layouts to run, comma-separated")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="small memories (the SMOKE_ settings)")
    args = parser.parse_args()
    if args.worker:
        timing = (SMOKE_SAMPLES, SMOKE_REPEATS) if args.smoke else (SAMPLES, REPEATS)
        c.emit(pixels_worker(args.worker, args.size, 0, *timing))
        return
    if args.pixels:
        pixels(args.markdown, args.smoke, args.layouts and args.layouts.split(","))
        return
    memory_size = SMOKE_MEMORY_SIZE if args.smoke else MEMORY_SIZE
    rows = []
    for name, game_class, nb_frames in CASES:
        record = {"benchmark": "memory", "game": name, "nb_frames": nb_frames,
                  **measure(game_class, nb_frames, memory_size=memory_size)}  # fmt: skip
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
