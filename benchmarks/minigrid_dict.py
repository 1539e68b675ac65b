"""MiniGrid's dict observations: qlearning4k through `from_sb3` against Stable-Baselines3's DQN.

Both learn from MiniGrid's own dict observation, the 7x7x3 `image` and the
`direction` the agent faces (the `mission` text dropped with
`FilterObservation`), with Stable-Baselines3's `MultiInputPolicy`. Its
`CombinedExtractor` sends a `uint8` image to NatureCNN, whose 8x8 first
kernel cannot take 7x7 pixels, so the image part is given as `float32`
(`_make`): both libraries then flatten it (and one-hot the
direction) before the `net_arch` layers. qlearning4k builds the same
network and settings with `from_sb3(CONFIG, ...)`.

Each run trains one task, library and seed in this process, then plays
100 seeded episodes greedily (the same episodes for both libraries) and
appends one JSON line. The settings: `gamma` 0.9 and a target network
copied every 200 env steps (with 0.99 and 1,000, Stable-Baselines3 solved
none of Empty-5x5, Empty-8x8 and DoorKey-5x5 at seed 0, the first records
of `results/minigrid_dict.jsonl`). Training seconds: `agent.train()` or
`model.learn()`, first calls (compiling) included.

    python benchmarks/minigrid_dict.py run --task MiniGrid-DoorKey-6x6-v0 --library sb3 --seed 0
    python benchmarks/minigrid_dict.py run --task MiniGrid-DoorKey-6x6-v0 --seed 0  # qlearning4k
    python benchmarks/minigrid_dict.py table --markdown
    python benchmarks/minigrid_dict.py --smoke   # a tiny qlearning4k run, printed only

Needs `pip install "qlearning4k[minigrid]" stable-baselines3`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
TASKS = (
    "MiniGrid-Empty-5x5-v0",
    "MiniGrid-Empty-8x8-v0",
    "MiniGrid-DoorKey-5x5-v0",
    "MiniGrid-DoorKey-6x6-v0",
    "MiniGrid-DoorKey-8x8-v0",
)
CONFIG = {  # Stable-Baselines3 DQN arguments, as an RL Zoo entry writes them
    "policy": "MultiInputPolicy",
    "n_timesteps": 250_000,
    "learning_rate": 5e-4,
    "buffer_size": 100_000,
    "learning_starts": 5_000,
    "batch_size": 64,
    "gamma": 0.9,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 200,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.05,
    "policy_kwargs": {"net_arch": [128, 128]},
}
KEYS = ["image", "direction"]
EVAL_EPISODES, EVAL_SEED = 100, 40_000
SMOKE_TASK, SMOKE_EPISODES = "MiniGrid-Empty-5x5-v0", 2
SMOKE_CONFIG = {"n_timesteps": 600, "learning_starts": 100}
# -----------------------------------------------------------------------------


def _make(task: str):
    """MiniGrid's env with the image and direction parts, the image as float32 (its
    values are small ints), for `CombinedExtractor` to flatten rather than convolve."""
    import gymnasium
    import minigrid  # noqa: F401 (registers the MiniGrid ids)
    from gymnasium.wrappers import FilterObservation, TransformObservation

    env = FilterObservation(gymnasium.make(task), KEYS)
    spaces = dict(env.observation_space.spaces)
    spaces["image"] = gymnasium.spaces.Box(0.0, 255.0, spaces["image"].shape, np.float32)
    return TransformObservation(env, _float_image, gymnasium.spaces.Dict(spaces))


def _float_image(observation: dict) -> dict:
    return {**observation, "image": observation["image"].astype(np.float32)}


def _train_qlearning4k(task: str, seed: int, config: dict, episodes: int) -> dict:
    from qlearning4k import from_sb3
    from qlearning4k.games import GymGame

    agent, kwargs = from_sb3(config, GymGame(_make(task)), seed=seed)
    start = time.perf_counter()
    agent.train(GymGame(_make(task), seed=seed), verbose=0, **kwargs)
    seconds = time.perf_counter() - start
    game = GymGame(_make(task))
    scores = agent.evaluate(game, nb_games=episodes, seed=EVAL_SEED, max_steps=None)["scores"]
    return {"train_seconds": seconds, "returns": [float(s) for s in scores]}


def _train_sb3(task: str, seed: int, config: dict, episodes: int) -> dict:
    from stable_baselines3 import DQN

    config = dict(config)
    steps = config.pop("n_timesteps")
    model = DQN(env=_make(task), seed=seed, device="cpu", **config)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start

    def greedy(observations):
        actions, _ = model.predict(observations, deterministic=True)
        return actions

    return {
        "train_seconds": seconds,
        "returns": c.peer_returns(greedy, lambda: _make(task), episodes, EVAL_SEED),
    }


def run_one(task: str, library: str, seed: int, smoke: bool) -> dict:
    config = {**CONFIG, **SMOKE_CONFIG} if smoke else CONFIG
    steps = config["n_timesteps"]
    episodes = SMOKE_EPISODES if smoke else EVAL_EPISODES
    train = _train_qlearning4k if library == "qlearning4k" else _train_sb3
    outcome = train(task, seed, config, episodes)
    returns = outcome.pop("returns")
    return {
        "task": task, "library": library, "seed": seed, "env_steps": steps, "config": config,
        **outcome,
        "mean_return": statistics.fmean(returns), "std_return": statistics.pstdev(returns),
        "solved": float(np.mean(np.asarray(returns) > 0)), "eval_episodes": len(returns),
        "versions": c.library_versions(library), "machine": c.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def _label(record: dict) -> str:
    if record["library"] == "sb3":
        return "sb3"
    return f"qlearning4k ({record['versions']['backend']})"


def _beside(run: dict, records: list[dict]) -> dict:
    """The SB3 run of `run`'s seed that ran beside it: the one that ended nearest in time
    (the two start together, on one core each)."""
    ended = datetime.datetime.fromisoformat(run["date"])
    return min(
        (r for r in records if r["library"] == "sb3" and r["seed"] == run["seed"]),
        key=lambda r: abs(datetime.datetime.fromisoformat(r["date"]) - ended),
    )


def table(records: list[dict]) -> str:
    records = [r for r in records if r.get("config") == CONFIG]  # today's settings only
    lines = [
        "| task | library | runs | greedy return, median (each run) "
        "| episodes solved, median | training s, median | ours / SB3's s beside, median |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in [t for t in TASKS if any(r["task"] == t for r in records)]:
        done = [r for r in records if r["task"] == task]
        for label in sorted({_label(r) for r in done}, key=lambda x: (x == "sb3", x)):
            runs = sorted((r for r in done if _label(r) == label), key=lambda r: r["seed"])
            seconds = statistics.median(r["train_seconds"] for r in runs)
            each = ", ".join(f"{r['mean_return']:.3f}" for r in runs)
            ratios = [r["train_seconds"] / _beside(r, done)["train_seconds"] for r in runs]
            ratio = f"{statistics.median(ratios):.2f}" if label != "sb3" else ""
            lines.append(
                f"| {task} | {label} | {len(runs)} "
                f"| {statistics.median(r['mean_return'] for r in runs):.4f} ({each}) "
                f"| {statistics.median(r['solved'] for r in runs):.0%} "
                f"| {seconds:.0f} | {ratio} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["run", "table"])
    parser.add_argument("--smoke", action="store_true", help="tiny, printed, not recorded")
    parser.add_argument("--task", choices=TASKS, default="MiniGrid-DoorKey-6x6-v0")
    parser.add_argument("--library", choices=["qlearning4k", "sb3"], default="qlearning4k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    c.add_results_argument(parser, "minigrid_dict")
    args = parser.parse_args()
    if args.smoke:
        c.emit(run_one(SMOKE_TASK, "qlearning4k", args.seed, smoke=True))
        return
    if args.command == "table":
        print(table(c.load_records(args.results)))
        return
    record = run_one(args.task, args.library, args.seed, smoke=False)
    c.emit(record)
    c.append(args.results, {**record, "command": "python " + " ".join(sys.argv)})


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
