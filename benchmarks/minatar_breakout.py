r"""MinAtar Breakout: qlearning4k against Stable-Baselines3 DQN, same network and settings.

qlearning4k runs `examples/minatar_breakout.py` itself (the MinAtar paper's network and
DQN settings: 500,000 env steps, RMSProp, a memory of 100,000, a target copied
every 1,000 env steps, epsilon from 1 to 0.1 over 100,000 env steps, 5,000
random moves first, no gradient clipping). Stable-Baselines3's DQN gets the
same: the same convolution and dense layers (a features extractor of its
own), centred RMSProp (alpha 0.95, eps 0.01), Huber loss, `max_grad_norm`
off. Both evaluate their greedy policy on the same 100 seeded episodes
before training and every 50,000 env steps (at the end of the episode that
passes them; the learning curve, with the training seconds so far), and
once more at the end (the final return). Training seconds leave the
evaluations out, first calls (compiling) in.

A run takes about 11 minutes for qlearning4k and 25 minutes to well over an
hour for SB3 (by machine), so the comparison runs in parts. Each
`run` trains one library and seed in a fresh process and appends one JSON
line to the results file; `table` builds the tables, training seconds by
machine (they compare only within one). qlearning4k on TensorFlow compiles
its step with XLA as the example's XLA setting says (on); `--no-xla` runs it
without, in rows of its own. With
`--variant c51` or `--variant rainbow`, qlearning4k trains the example's
VARIANT (the ablation rows of C51 and of all six parts of Rainbow on the same
network and settings, with Adam): their own rows too.

Seconds measured hours apart drift with the machine's load. To compare
them at one time, run the two libraries side by side, one core each (a
record names the cores it had, "1 of 2 cores (pinned)"), into a results
file of their own:

    taskset -c 0 python benchmarks/minatar_breakout.py run --library qlearning4k \
        --seed 0 --results benchmarks/results/minatar_side_by_side.jsonl &
    taskset -c 1 python benchmarks/minatar_breakout.py run --library sb3 \
        --seed 0 --results benchmarks/results/minatar_side_by_side.jsonl

    python benchmarks/minatar_breakout.py run --library qlearning4k --seed 0
    python benchmarks/minatar_breakout.py run --library sb3 --seed 0
    python benchmarks/minatar_breakout.py run --missing   # every library and seed not done
    python benchmarks/minatar_breakout.py run --missing --libraries qlearning4k --no-xla
    python benchmarks/minatar_breakout.py run --missing --libraries qlearning4k \
        --variants c51,rainbow
    python benchmarks/minatar_breakout.py table --markdown
    python benchmarks/minatar_breakout.py --smoke   # one tiny run (the example's --smoke), printed

Needs `pip install "qlearning4k[minatar]" stable-baselines3`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as c

# -- settings -----------------------------------------------------------------
EXAMPLE = Path(__file__).parent.parent / "examples" / "minatar_breakout.py"
SEEDS = (0, 1, 2)
LIBRARIES = ("qlearning4k", "sb3")
VARIANTS = ("dqn", "c51", "rainbow")  # the example's VARIANT, qlearning4k only
RESULTS = Path(__file__).parent / "results" / "minatar.jsonl"
FIGURE = Path(__file__).parent.parent / "docs" / "figures" / "minatar_breakout.png"
# --smoke: one run of qlearning4k at the example's smoke budget (its SMOKE_TIMESTEPS
# env steps, SMOKE_EPISODES evaluation episodes), printed and not recorded.
SMOKE_LIBRARY, SMOKE_SEED = "qlearning4k", 0
# -----------------------------------------------------------------------------


def _example():
    """examples/minatar_breakout.py as a module: its settings and its `main`."""
    spec = importlib.util.spec_from_file_location("minatar_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_qlearning4k(
    seed: int, budget: int | None, xla: bool, variant: str, smoke: bool = False
) -> dict:
    import keras

    example = _example()
    example.XLA = xla = xla and keras.backend.backend() == "tensorflow"
    if budget is not None:
        example.TOTAL_TIMESTEPS = budget
        example.EVAL_EVERY = max(budget // 4, 1)
    outcome = example.main(smoke=smoke, seed=seed, variant=variant)
    return {
        "xla": xla,
        "variant": variant,
        "env_steps": example.SMOKE_TIMESTEPS if smoke else example.TOTAL_TIMESTEPS,
        "train_seconds": outcome["training_seconds"],
        "mean_return": outcome["final"],
        "best_return": outcome["best"],
        "curve": [(steps, score) for steps, _, score in outcome["curve"]],
        "curve_seconds": [seconds for _, seconds, _ in outcome["curve"]],
    }


def _features_extractor():
    """The MinAtar paper's network for Stable-Baselines3: conv 3x3x16, dense 128."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class MinAtarNet(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 128):
            super().__init__(observation_space, features_dim)
            rows, cols, channels = observation_space.shape
            self.conv = torch.nn.Conv2d(channels, 16, 3)
            self.dense = torch.nn.Linear(16 * (rows - 2) * (cols - 2), features_dim)

        def forward(self, observations):
            x = observations.permute(0, 3, 1, 2)  # channels last to first
            x = torch.relu(self.conv(x)).flatten(1)
            return torch.relu(self.dense(x))

    return MinAtarNet


def _play_sb3(model, example, nb_episodes: int, seed: int) -> list[float]:
    """The episodes `agent.evaluate(..., seed=seed)` plays, greedily by SB3, side by side."""
    import gymnasium
    import numpy as np

    from qlearning4k.games import GymGame

    games = [GymGame(gymnasium.make(example.ENV_ID)) for _ in range(nb_episodes)]
    for i, game in enumerate(games):
        game.rng = np.random.default_rng(seed + i)
        game.reset()
    running, steps = list(range(nb_episodes)), 0
    while running and steps < example.EVAL_MAX_STEPS:
        observations = np.stack([games[i].get_frame() for i in running]).astype(bool)
        actions, _ = model.predict(observations, deterministic=True)
        for i, action in zip(running, actions, strict=True):
            games[i].play(int(action))
        running = [i for i in running if not games[i].is_over()]
        steps += 1
    return [g.total_reward for g in games]


def _train_sb3(seed: int, budget: int | None) -> dict:
    import gymnasium
    import minatar.gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    example = _example()
    total = example.TOTAL_TIMESTEPS if budget is None else budget
    every = example.EVAL_EVERY if budget is None else max(budget // 4, 1)
    minatar.gym.register_envs()
    torch.set_num_threads(c.cores())  # 2, or 1 when taskset pins the run
    model = DQN(
        "MlpPolicy",
        gymnasium.make(example.ENV_ID),
        learning_rate=example.LEARNING_RATE,
        buffer_size=example.MEMORY_SIZE,
        learning_starts=example.LEARNING_STARTS,
        batch_size=example.BATCH_SIZE,
        gamma=example.GAMMA,
        train_freq=1,
        gradient_steps=1,
        target_update_interval=example.TARGET_UPDATE_INTERVAL,
        exploration_fraction=example.EPSILON_RATE,
        exploration_initial_eps=example.EPSILON[0],
        exploration_final_eps=example.EPSILON[1],
        max_grad_norm=1e10,  # the paper does not clip
        policy_kwargs={
            "features_extractor_class": _features_extractor(),
            "net_arch": [],
            "optimizer_class": torch.optim.RMSprop,
            "optimizer_kwargs": {"alpha": 0.95, "eps": 0.01, "centered": True},
        },
        seed=seed,
        verbose=0,
        device="cpu",
    )

    class Evaluations(BaseCallback):  # EvalCallback(every_steps=...)'s moments and episodes
        def __init__(self):
            super().__init__()
            self.seconds, self.curve, self.next = 0.0, [], every
            self.start, self.training_seconds = 0.0, []

        def evaluate(self):
            start = time.perf_counter()
            self.training_seconds.append(start - self.start - self.seconds)
            returns = _play_sb3(self.model, example, example.EVAL_EPISODES, example.EVAL_SEED)
            self.curve.append((int(self.num_timesteps), statistics.fmean(returns)))
            self.seconds += time.perf_counter() - start

        def _on_training_start(self):
            self.start = time.perf_counter()
            self.evaluate()

        def _on_step(self):
            if self.locals["dones"][0] and self.num_timesteps >= self.next:
                while self.next <= self.num_timesteps:
                    self.next += every
                self.evaluate()
            return True

    during = Evaluations()
    start = time.perf_counter()
    model.learn(total_timesteps=total, callback=during)
    seconds = time.perf_counter() - start - during.seconds
    final = _play_sb3(model, example, example.EVAL_EPISODES, example.EVAL_SEED)
    return {
        "xla": False,
        "variant": "dqn",
        "env_steps": int(model.num_timesteps),
        "train_seconds": seconds,
        "mean_return": statistics.fmean(final),
        "best_return": max(score for _, score in during.curve),
        "curve": during.curve,
        "curve_seconds": during.training_seconds,
    }


def run_one(
    library: str,
    seed: int,
    budget: int | None,
    xla: bool = False,
    variant: str = "dqn",
    smoke: bool = False,
) -> dict:
    """Trains and evaluates one library and seed in this process: its record.

    `xla`: qlearning4k on TensorFlow compiles its step with XLA (the example's XLA).
    `variant`: the example's VARIANT for qlearning4k ("dqn", "c51" or "rainbow").
    `smoke`: qlearning4k runs the example's `--smoke` budget (`budget` is ignored).
    """
    if library == "qlearning4k":
        outcome = _train_qlearning4k(seed, budget, xla, variant, smoke)
    else:
        if variant != "dqn" or smoke:
            raise ValueError(
                "Stable-Baselines3 runs DQN only, at full budget or --budget. "
                f"Received: variant={variant!r}, smoke={smoke}"
            )
        outcome = _train_sb3(seed, budget)
    versions = c.library_versions(library)
    return {
        "task": "MinAtar/Breakout-v1",
        "library": library,
        "backend": versions.get("backend", "torch"),
        "xla": outcome.pop("xla"),
        "variant": outcome.pop("variant"),
        "seed": seed,
        **outcome,
        "versions": versions,
        "machine": c.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _variant(record: dict) -> tuple:
    """What a record's seeds compare with: library, backend, XLA, the example's
    VARIANT (older records: XLA off, "dqn")."""
    return (
        record["library"],
        record["backend"],
        record.get("xla", False),
        record.get("variant", "dqn"),
    )


def run_missing(args) -> None:
    """Runs every library and seed that the results file lacks, each in its own process."""
    done = {(*_variant(r), r["seed"]) for r in c.load_records(args.results)}
    jobs = [
        (library, backend, variant, seed)
        for seed in args.seeds
        for library in args.libraries
        for backend in (args.backends if library == "qlearning4k" else ("torch",))
        for variant in (args.variants if library == "qlearning4k" else ("dqn",))
    ]
    for library, backend, variant, seed in jobs:
        xla = args.xla and library == "qlearning4k" and backend == "tensorflow"
        if (library, backend, xla, variant, seed) in done:
            continue
        command = [sys.executable, __file__, "run", "--library", library, "--seed", str(seed),
                   "--variant", variant, "--results", str(args.results)]  # fmt: skip
        command.append("--xla" if xla else "--no-xla")
        if args.budget is not None:
            command += ["--budget", str(args.budget)]
        env = {**os.environ, "KERAS_BACKEND": "tensorflow" if library == "sb3" else backend}
        print(f"{library} {backend} {variant} seed {seed}", flush=True)
        subprocess.run(command, env=env, check=True)


def figure(records: list[dict], path: Path) -> None:
    """Each library's (and backend's) learning curves: the median greedy return
    over its seeds against env steps, the range shaded, into the PNG `path`."""
    latest = {(*_variant(r), r["seed"]): r for r in records if r.get("curve")}
    groups: dict[str, list] = {}
    for (library, backend, xla, variant, _), r in sorted(latest.items()):
        label = "Stable-Baselines3" if library == "sb3" else f"qlearning4k ({backend}"
        if library != "sb3":
            label += (", XLA" if xla else "") + ("" if variant == "dqn" else f", {variant}") + ")"
        groups.setdefault(label, []).append(r["curve"])
    c.curves_figure(groups, path, "MinAtar Breakout: evaluations during training")
    print(f"Wrote {path}")


def table(records: list[dict]) -> str:
    """The Markdown tables: one row per library (backend) with the median final return
    over every seed (a seed run again: its latest run), then training seconds per
    machine (every run), where the libraries compare."""
    latest = {(*_variant(r), r["seed"]): r for r in records}
    groups: dict[tuple, list[dict]] = {}
    for r in latest.values():
        groups.setdefault(_variant(r), []).append(r)
    lines = [
        "| library | seeds | env steps | final return, median (each seed) | best evaluation, "
        "median | training s, median (each seed) |",
        "|---|---|---|---|---|---|",
    ]
    for variant, rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        final = [r["mean_return"] for r in rs]
        seconds = [r["train_seconds"] for r in rs]
        cells = [
            _name(*variant),
            str(len(rs)),
            f"{rs[0]['env_steps']:,}",
            f"{statistics.median(final):.2f} ({', '.join(f'{x:.2f}' for x in final)})",
            f"{statistics.median(r['best_return'] for r in rs):.2f}",
            f"{statistics.median(seconds):.0f} ({', '.join(f'{x:.0f}' for x in seconds)})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    curves = [f"- {_name(*_variant(r))}, seed {r['seed']}: " + ", ".join(
        f"{steps:,}: {score:.2f}" for steps, score in r["curve"]) for r in records]  # fmt: skip
    return (
        "\n".join(lines)
        + "\n\nTraining seconds on each machine (seconds compare only within one):\n\n"
        + _seconds_by_machine(records)
        + "\n\nGreedy return against env steps:\n\n"
        + "\n".join(curves)
    )


def _name(library: str, backend: str, xla: bool, variant: str = "dqn") -> str:
    if library == "sb3":
        return "Stable-Baselines3"
    options = [backend] + ["XLA"] * xla + [{"c51": "C51", "rainbow": "Rainbow"}.get(variant, "")]
    return f"qlearning4k ({', '.join(o for o in options if o)})"


def _seconds_by_machine(records: list[dict]) -> str:
    """Median training seconds of each library on each machine, and SB3's over ours
    where both ran on the same machine."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["machine"], *_variant(r)), []).append(r)
    lines = [
        "| machine | library | seeds | training s, median (each seed) | SB3's s / ours |",
        "|---|---|---|---|---|",
    ]
    for (machine, *variant), rs in sorted(groups.items()):
        library = variant[0]
        seconds = [r["train_seconds"] for r in sorted(rs, key=lambda r: r["seed"])]
        peer = groups.get((machine, "sb3", "torch", False, "dqn"))
        ratio = ""
        if library != "sb3" and peer:
            peer_seconds = statistics.median(r["train_seconds"] for r in peer)
            ratio = f"{peer_seconds / statistics.median(seconds):.2f}x"
        seeds = ", ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        cells = [
            machine,
            _name(*variant),
            seeds,
            f"{statistics.median(seconds):.0f} ({', '.join(f'{x:.0f}' for x in seconds)})",
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=("run", "table", "figure"),
                        help="optional with --smoke")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help="one tiny run of qlearning4k (the example's --smoke), "
                             "not recorded")  # fmt: skip
    parser.add_argument("--library", choices=LIBRARIES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--missing", action="store_true", help="run every job not in results")
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--backends", default="tensorflow")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--budget", type=int, help="env steps instead of 500,000 (smoke runs)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        help="qlearning4k on TensorFlow with XLA (default: the example's XLA setting)",
    )
    parser.add_argument("--variant", choices=VARIANTS, default="dqn",
                        help="the example's VARIANT (qlearning4k)")  # fmt: skip
    parser.add_argument("--variants", default="dqn", help="with --missing: comma-separated")
    parser.add_argument("--markdown", action="store_true", help="(the table is Markdown)")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="where figure draws")
    args = parser.parse_args()
    args.libraries = args.libraries.split(",")
    args.backends = args.backends.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.variants = args.variants.split(",")
    if unknown := sorted(set(args.variants) - set(VARIANTS)):
        parser.error(f"--variants takes {', '.join(VARIANTS)}. Received: {', '.join(unknown)}")
    if args.smoke:
        if (
            args.command in ("table", "figure")
            or args.missing
            or args.library not in (None, SMOKE_LIBRARY)
        ):
            parser.error(f"--smoke runs one run of {SMOKE_LIBRARY}: not with table, --missing "
                         "or another --library")  # fmt: skip
        args.command = "run"
    elif args.command is None:
        parser.error("a command is needed: run or table (or --smoke)")
    if args.command == "run" and args.xla is None:
        args.xla = _example().XLA
    if args.command == "table":
        print(table(c.load_records(args.results)))
    elif args.command == "figure":
        figure(c.load_records(args.results), args.figure)
    elif args.missing:
        run_missing(args)
    elif args.smoke:
        seed = SMOKE_SEED if args.seed is None else args.seed
        c.emit(run_one(SMOKE_LIBRARY, seed, None, args.xla, args.variant, smoke=True))
    else:
        if args.library is None or args.seed is None:
            parser.error("run needs --library and --seed, or --missing")
        record = run_one(args.library, args.seed, args.budget, args.xla, args.variant)
        c.append(args.results, record)
        c.emit(record)


if __name__ == "__main__":
    main()
