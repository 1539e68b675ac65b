"""POPGym memory tasks: the example's recurrent agent, a feedforward one, R2D2's ablation.

`table` trains, for each task and seed, the recurrent agent of
examples/popgym_memory.py (its settings, its budget) and a feedforward
agent with NB_FRAMES stacked frames (an MLP of two layers of 64) with the
same `train()` settings and budget,
each in its own process, and evaluates both greedily as the example does;
one JSON line a run. `ablation` trains, for each case of ABLATIONS (a
task, a budget, a replay memory size), the task's recurrent agent with
short sequences in two ways, R2D2's stored state with a burn-in against the
zero state without one. `show` prints the tables of the recorded runs
(median of the seeds, and each).

    python benchmarks/popgym_memory.py table --seeds 0,1,2
    python benchmarks/popgym_memory.py ablation --seeds 0,1,2 --cases repeat_first
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
# case: the example's task, env steps, replay memory size (steps), then each
# arm's sequence length, burn-in, overlap and stored state
_REPEAT_FIRST_ARMS = {
    "stored state, burn-in": (30, 5, 10, True),
    "zero state, no burn-in": (30, 0, 10, False),
}
_VELOCITY_ONLY_ARMS = {
    "stored state, burn-in": (10, 4, 4, True),
    "zero state, no burn-in": (10, 0, 4, False),
}
ABLATIONS = {  # the memory holds the last tenth of the run (R2D2's regime), or all of it
    "repeat_first": ("repeat_first", 100_000, 10_000, _REPEAT_FIRST_ARMS),
    "repeat_first_whole_run": ("repeat_first", 100_000, 100_000, _REPEAT_FIRST_ARMS),
    "velocity_only_cartpole": ("velocity_only_cartpole", 50_000, 5_000, _VELOCITY_ONLY_ARMS),
    "velocity_only_cartpole_whole_run": (
        "velocity_only_cartpole",
        50_000,
        100_000,
        _VELOCITY_ONLY_ARMS,
    ),
}
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


def run_one(name: str, agent_kind: str, seed: int, smoke: bool = False) -> dict:
    """Trains and evaluates one agent: `recurrent` or `feedforward` on the
    example's task `name`, or an ablation arm on the ABLATIONS case `name`."""
    import keras

    from qlearning4k import SequenceReplay

    example = _example()
    task = ABLATIONS[name][0] if agent_kind in ARMS else name
    keras.utils.set_random_seed(seed)
    game = example.make_game(task, seed)
    if agent_kind == "feedforward":
        agent = _feedforward(example, game, seed)
    else:
        agent = example.build_agent(game, task, seed)
        if agent_kind in ARMS:
            _, env_steps, memory_size, arms = ABLATIONS[name]
            length, burn_in, overlap, stored = arms[agent_kind]
            agent.memory = SequenceReplay(
                memory_size, sequence_length=length, burn_in=burn_in, overlap=overlap,
                stored_state=stored, seed=seed,
            )  # fmt: skip
    settings = {**example.train_settings(task, smoke), "verbose": 0}
    if agent_kind in ARMS and not smoke:
        settings["total_timesteps"] = env_steps
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
        "memory_size": memory.memory_size,
        "mean_return": results["mean_score"], "win_rate": results["win_rate"],
        "train_seconds": seconds, "backend": keras.backend.backend(), "machine": c.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def _runs(jobs, smoke: bool) -> None:
    """Each (task or case, agent, seed) in a fresh process, two at a time (returns, not timings)."""
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
    """One row a task, budget and memory size; each agent's median return (each seed's)."""
    rows = ["| task | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    keys = dict.fromkeys((r["task"], r["env_steps"], r["memory_size"]) for r in records)
    for task, steps, memory_size in keys:
        cells = []
        for agent in agents:
            scores = [
                r["mean_return"] for r in records
                if (r["task"], r["env_steps"], r["memory_size"]) == (task, steps, memory_size)
                and r["agent"] == agent
            ]  # fmt: skip
            each = ", ".join(f"{s:.2f}" for s in scores)
            cells.append(f"{statistics.median(scores):.2f} ({each})" if scores else "")
        label = f"{task} ({steps:,} env steps, memory {memory_size:,})"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("table", "ablation", "show", "worker"))
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--tasks", default=None, help="the example's tasks, comma-separated")
    parser.add_argument("--cases", default=None, help="ABLATIONS' cases, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="one task, tiny budgets")
    args = parser.parse_args()
    if args.mode == "worker":
        name, agent, seed = args.args
        c.append(RESULTS, run_one(name, agent, int(seed)))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.smoke:
        jobs = [("repeat_previous", "recurrent", 0), ("repeat_previous", "feedforward", 0),
                ("repeat_first", ARMS[0], 0)]  # fmt: skip
        _runs(jobs, True)
        return
    if args.mode == "table":
        tasks = args.tasks.split(",") if args.tasks else list(_example().TASKS)
        _runs([(t, a, s) for t in tasks for s in seeds for a in ("recurrent", "feedforward")],
              False)  # fmt: skip
    elif args.mode == "ablation":
        cases = args.cases.split(",") if args.cases else list(ABLATIONS)
        _runs([(case, arm, s) for case in cases for s in seeds for arm in ARMS], False)
    records = c.load_records(RESULTS)
    print(table([r for r in records if r["agent"] in ("recurrent", "feedforward")],
                ("recurrent", "feedforward")))  # fmt: skip
    print()
    print(table([r for r in records if r["agent"] in ARMS], ARMS))


if __name__ == "__main__":
    main()
