"""The shipped presets, trained by the command line: the figures their files quote.

`run` trains one preset and seed by `qlearning4k train --preset NAME --seed S`
in a fresh process (the command as a user types it, into a temporary run
folder) and appends one JSON line: the final evaluation's results as the
run folder records them (`evaluations/final.json`), the env steps and
training seconds of `history.csv`, and the command's wall seconds.

`identical` checks that the command line trains what a script trains: the
same preset's run written as a script (Keras seeded, the game made, the
agent built by `from_sb3`, `agent.train`), each in a fresh process, and
every weight of the two trained models compared bit for bit.

    python benchmarks/presets.py run --preset acrobot --seed 0
    python benchmarks/presets.py run --missing --presets catch,cartpole,acrobot --seeds 0,1,2
    python benchmarks/presets.py identical --preset acrobot
    python benchmarks/presets.py table --markdown
    python benchmarks/presets.py --smoke      # Catch for a few games, printed only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _common as c

PRESETS = ("catch", "cartpole", "acrobot", "mountaincar", "lunarlander")
SEEDS = (0, 1, 2)
SMOKE_OVERRIDES = ("train.nb_epoch=3", "evaluate.nb_games=3")
RESULTS = os.path.join(c.RESULTS, "presets.jsonl")


def _command(preset: str, seed: int, folder: str, overrides=()) -> list[str]:
    sets = [arg for o in overrides for arg in ("--set", o)]
    return [sys.executable, "-m", "qlearning4k", "train", "--preset", preset, "--seed", str(seed),
            "--run", folder, "--verbose", "0", *sets]  # fmt: skip


def run_one(preset: str, seed: int, overrides=(), fresh: bool = True) -> dict:
    """Trains `preset` by the command line in a fresh process (or in this one, not
    `fresh`: the smoke run, which spares a start of Python and Keras): its record."""
    import keras

    from qlearning4k.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "run")
        start = time.perf_counter()
        command = _command(preset, seed, folder, overrides)
        if fresh:
            subprocess.run(command, check=True)
        elif main(command[3:]) != 0:
            raise RuntimeError(f"qlearning4k {' '.join(command[3:])} failed")
        wall = time.perf_counter() - start
        with open(os.path.join(folder, "evaluations", "final.json")) as f:
            final = json.load(f)
        with open(os.path.join(folder, "history.csv")) as f:
            rows = [line.split(",") for line in f.read().splitlines()]
    header, rows = rows[0], rows[1:]
    steps = sum(float(row[header.index("steps")]) for row in rows)
    return {
        "preset": preset, "seed": seed, "backend": keras.backend.backend(),
        "mean_score": final["mean_score"], "std_score": final["std_score"],
        "win_rate": final["win_rate"], "nb_games": final["nb_games"],
        "games": len(rows), "env_steps": int(steps),
        "training_seconds": float(rows[-1][header.index("time")]), "wall_seconds": wall,
    }  # fmt: skip


def script_weights(preset: str, seed: int, path: str, overrides=()) -> None:
    """The preset's run written as a script (the docs' equivalent): its weights to `path`."""
    import keras
    import numpy as np

    from qlearning4k import from_sb3
    from qlearning4k._internals import override, read_preset
    from qlearning4k.games import GymGame

    config = override(read_preset(preset)[0], overrides)
    keras.utils.set_random_seed(seed)
    game = GymGame(config["game"], seed=seed)
    agent, train_kwargs = from_sb3(config["sb3"], game, seed=seed)
    agent.train(game, verbose=0, **train_kwargs)
    np.savez(path, *agent.model.get_weights())


def identical(preset: str, seed: int, overrides=()) -> dict:
    """Trains the preset by the command line and by a script, each in a fresh process;
    compares their weights."""
    import keras
    import numpy as np

    from qlearning4k import Agent

    with tempfile.TemporaryDirectory() as tmp:
        folder, path = os.path.join(tmp, "run"), os.path.join(tmp, "script.npz")
        start = time.perf_counter()
        subprocess.run(_command(preset, seed, folder, overrides), check=True)
        cli_seconds = time.perf_counter() - start
        sets = [arg for o in overrides for arg in ("--set", o)]
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "script", "--preset", preset, "--seed",
                        str(seed), "--output", path, *sets], check=True)  # fmt: skip
        script_seconds = time.perf_counter() - start
        cli = Agent.load(os.path.join(folder, "agent")).model.get_weights()
        with np.load(path) as saved:
            script = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    equal = len(cli) == len(script) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(cli, script, strict=True)
    )
    return {"preset": preset, "seed": seed, "backend": keras.backend.backend(),
            "overrides": list(overrides), "arrays": len(cli), "bit_identical": bool(equal),
            "cli_seconds": cli_seconds, "script_seconds": script_seconds}  # fmt: skip


def table(records: list[dict]) -> str:
    rows = ["| preset | backend | seeds | final score, median (each seed) | env steps "
            "| training s, median |", "|---|---|---|---|---|---|"]  # fmt: skip
    groups = {}
    for r in records:
        if "mean_score" in r:
            groups.setdefault((r["preset"], r["backend"]), {})[r["seed"]] = r
    for (preset, backend), by_seed in sorted(groups.items()):
        runs = [by_seed[s] for s in sorted(by_seed)]
        each = ", ".join(f"{r['mean_score']:.2f}" for r in runs)
        rows.append(
            f"| {preset} | {backend} | {len(runs)} | "
            f"{statistics.median(r['mean_score'] for r in runs):.2f} ({each}) | "
            f"{statistics.median(r['env_steps'] for r in runs):,.0f} | "
            f"{statistics.median(r['training_seconds'] for r in runs):.0f} |"
        )
    for r in records:
        if "bit_identical" in r:
            rows.append(f"\n{r['preset']} on {r['backend']}, seed {r['seed']}: the command line's "
                        f"{r['arrays']} weight arrays {'equal' if r['bit_identical'] else 'DIFFER'}"
                        " bit for bit to the script's")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("run", "identical", "table", "script"))
    parser.add_argument("--preset", default="acrobot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--missing", action="store_true", help="run every missing preset/seed")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--output", help="script: the weights' .npz")
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="Catch for a few games, printed only")
    args = parser.parse_args()
    if args.smoke:
        c.emit(run_one("catch", 0, SMOKE_OVERRIDES, fresh=False))
        return
    if args.action == "script":
        script_weights(args.preset, args.seed, args.output, args.overrides)
    elif args.action == "run":
        import keras

        backend = keras.backend.backend()
        done = {(r["preset"], r["seed"], r["backend"]) for r in c.load_records(args.results)
                if "mean_score" in r}  # fmt: skip
        todo = [(args.preset, args.seed)]
        if args.missing:
            todo = [(p, int(s)) for p in args.presets.split(",") for s in args.seeds.split(",")
                    if (p, int(s), backend) not in done]  # fmt: skip
        for preset, seed in todo:
            record = run_one(preset, seed, args.overrides)
            c.record(args.results, [record], {"overrides": args.overrides})
            c.emit(record)
    elif args.action == "identical":
        record = identical(args.preset, args.seed, args.overrides)
        c.record(args.results, [record], {"overrides": args.overrides})
        c.emit(record)
    elif args.action == "table":
        records = c.load_records(args.results)
        if args.markdown:
            print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print(table(records))


if __name__ == "__main__":
    main()
