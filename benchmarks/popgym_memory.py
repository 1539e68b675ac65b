"""POPGym memory tasks: the example's recurrent agent, a feedforward one, R2D2's ablation.

`table` trains, for each task and seed, the recurrent agent of
examples/popgym_memory.py (its settings, its budget) and a feedforward
agent with NB_FRAMES stacked frames (an MLP of two layers of 64) with the
same `train()` settings and budget,
each in its own process, and evaluates both greedily as the example does;
one JSON line a run. `ablation` trains the recurrent agent of each task of
ABLATIONS with short sequences in two ways, R2D2's stored state with a
burn-in against the zero state without one, the same budget. `show`
prints the tables of the recorded runs (median of the seeds, and each).

    python benchmarks/popgym_memory.py table --seeds 0,1,2
    python benchmarks/popgym_memory.py ablation --seeds 0,1,2 --tasks velocity_only_cartpole
    python benchmarks/popgym_memory.py show
    python benchmarks/popgym_memory.py --smoke   # one task, tiny budgets, printed only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import _common as c

# -- settings -----------------------------------------------------------------
NB_FRAMES = 4  # the feedforward agent's stacked frames
HIDDEN = 64
SEEDS = (0, 1, 2)
# task: env steps, then each arm's sequence length, burn-in, overlap and stored state
ABLATIONS = {
    "repeat_first": (100_000, {"stored state, burn-in": (30, 5, 10, True),
                               "zero state, no burn-in": (30, 0, 10, False)}),
    "velocity_only_cartpole": (50_000, {"stored state, burn-in": (10, 4, 4, True),
                                        "zero state, no burn-in": (10, 0, 4, False)}),
}  # fmt: skip
ARMS = ("stored state, burn-in", "zero state, no burn-in")
RESULTS = os.path.join(c.RESULTS, "popgym.jsonl")
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                       "popgym_memory.py")  # fmt: skip
# -----------------------------------------------------------------------------


def _example():
    """examples/popgym_memory.py as a module: its tasks, agent and settings."""
    spec = importlib.util.spec_from_file_location("popgym_memory", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _feedforward(example, game, seed: int):
    import keras

    from qlearning4k import Agent

    game.reset()
    frame_shape = game.get_frame().shape
    model = keras.Sequential([
        keras.Input((NB_FRAMES, *frame_shape)), keras.layers.Flatten(),
        keras.layers.Dense(HIDDEN, activation="relu"),
        keras.layers.Dense(HIDDEN, activation="relu"), keras.layers.Dense(game.nb_actions),
    ])  # fmt: skip
    model.compile(keras.optimizers.Adam(example.LEARNING_RATE), keras.losses.Huber())
    return Agent(model, memory_size=example.MEMORY_SIZE, seed=seed)


def run_one(task: str, agent_kind: str, seed: int, smoke: bool = False) -> dict:
    """Trains and evaluates one agent (`recurrent`, `feedforward` or an ablation arm)."""
    import keras

    from qlearning4k import SequenceReplay

    example = _example()
    keras.utils.set_random_seed(seed)
    game = example.make_game(task, seed)
    if agent_kind == "feedforward":
        agent = _feedforward(example, game, seed)
    else:
        agent = example.build_agent(game, task, seed)
        if agent_kind in ARMS:
            length, burn_in, overlap, stored = ABLATIONS[task][1][agent_kind]
            agent.memory = SequenceReplay(
                example.MEMORY_SIZE, sequence_length=length, burn_in=burn_in, overlap=overlap,
                stored_state=stored, seed=seed,
            )  # fmt: skip
    settings = {**example.train_settings(task, smoke), "verbose": 0}
    if agent_kind in ARMS and not smoke:
        settings["total_timesteps"] = ABLATIONS[task][0]
    memory = agent.memory
    sequences = None
    if agent_kind != "feedforward":
        sequences = [memory.sequence_length, memory.burn_in, memory.overlap, memory.stored_state]
    start = time.perf_counter()
    agent.train(game, **settings)
    seconds = time.perf_counter() - start
    results = example.evaluate(agent, task, smoke)
    return {
        "benchmark": "popgym_memory", "task": example.TASKS[task][1], "agent": agent_kind,
        "seed": seed, "env_steps": settings["total_timesteps"], "sequences": sequences,
        "mean_return": results["mean_score"], "win_rate": results["win_rate"],
        "train_seconds": seconds, "backend": keras.backend.backend(), "machine": c.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def _runs(jobs, smoke: bool) -> None:
    """Each (task, agent, seed) in a fresh process, two at a time (returns, not timings)."""
    if smoke:
        for job in jobs:
            print(json.dumps(run_one(*job, smoke=True)), flush=True)
        return
    running = []
    for job in [*jobs, None, None]:
        while len(running) == 2 or (job is None and running):
            running.pop(0).wait()
        if job is not None:
            command = [sys.executable, __file__, "worker", *map(str, job)]
            running.append(subprocess.Popen(command))


def table(records: list[dict], agents) -> str:
    rows = ["| task | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    for task in dict.fromkeys(r["task"] for r in records):
        cells = []
        for agent in agents:
            scores = [
                r["mean_return"] for r in records if r["task"] == task and r["agent"] == agent
            ]
            if not scores:
                cells.append("")
                continue
            each = ", ".join(f"{s:.2f}" for s in scores)
            cells.append(f"{statistics.median(scores):.2f} ({each})")
        steps = next(r["env_steps"] for r in records if r["task"] == task)
        rows.append(f"| {task} ({steps:,} env steps) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("table", "ablation", "show", "worker"))
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--tasks", default=None, help="the example's tasks, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="one task, tiny budgets")
    args = parser.parse_args()
    if args.mode == "worker":
        task, agent, seed = args.args
        c.append(RESULTS, run_one(task, agent, int(seed)))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.smoke:
        _runs([("repeat_previous", "recurrent", 0), ("repeat_previous", "feedforward", 0)], True)
        return
    if args.mode == "table":
        tasks = args.tasks.split(",") if args.tasks else list(_example().TASKS)
        _runs([(t, a, s) for t in tasks for s in seeds for a in ("recurrent", "feedforward")],
              False)  # fmt: skip
    elif args.mode == "ablation":
        tasks = args.tasks.split(",") if args.tasks else list(ABLATIONS)
        _runs([(t, arm, s) for t in tasks for s in seeds for arm in ARMS], False)
    records = c.load_records(RESULTS)
    print(table([r for r in records if r["agent"] in ("recurrent", "feedforward")],
                ("recurrent", "feedforward")))  # fmt: skip
    print()
    print(table([r for r in records if r["agent"] in ARMS], ARMS))


if __name__ == "__main__":
    main()
