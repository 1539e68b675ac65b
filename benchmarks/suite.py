"""The classic-control suite: the RL Baselines3 Zoo's DQN settings in both libraries.

For each task, qlearning4k (through `from_sb3`, from the same config dict)
and Stable-Baselines3's DQN train for the Zoo's env-step budget on the same
machine, and the greedy policy then plays 100 seeded episodes, the same
ones for both libraries: the final policy's mean return. As the Zoo keeps
the best model of its periodic evaluations, both libraries also evaluate
during training (10 seeded episodes at the end of the first episode after
every 5,000 env steps, and once before training) and keep the best weights,
whose mean return on the same 100 episodes is the "best" figure. Training
seconds count `agent.train()` or `model.learn()` less the evaluations, first
calls (compiling) included.

A whole suite takes hours on 2 cores, so it runs in parts. Each `run`
invocation trains one task, library and seed in a fresh process and appends
one JSON line to the results file, with its evaluations during training
(`curve`). `table` builds the Markdown table from whatever lines are there,
`figure` a PNG a task of the curves (records from before 2026-12-06 hold
none).

    python benchmarks/suite.py run --task CartPole-v1 --library qlearning4k --seed 0
    python benchmarks/suite.py run --task Acrobot-v1 --library sb3 --seed 1
    python benchmarks/suite.py run --missing --backends tensorflow,jax   # all that is missing
    python benchmarks/suite.py table --markdown
    python benchmarks/suite.py table --markdown --libraries qlearning4k \
        --tasks Acrobot-v1,C51/Acrobot-v1,Rainbow/Acrobot-v1   # the ablation rows
    python benchmarks/suite.py table --markdown --backends tensorflow --seeds 0,1,2  # some records
    python benchmarks/suite.py figure --results benchmarks/results/suite_curves.jsonl  # figures
    cat benchmarks/results/suite_curves.jsonl benchmarks/results/suite_ablation_curves.jsonl \
        > all.jsonl && python benchmarks/suite.py figure --results all.jsonl  # and the ablation
    python benchmarks/suite.py --smoke   # one tiny run (SMOKE_TASK, qlearning4k), printed only

Seconds measured hours apart drift with the machine's load. To compare
the libraries at one time, run them side by side, one core each (a record
names the cores it had, "1 of 2 cores (pinned)"), into a results file of
their own:

    taskset -c 0 python benchmarks/suite.py run --missing --libraries qlearning4k \
        --backends tensorflow,jax --tasks CartPole-v1,Acrobot-v1,MountainCar-v0,LunarLander-v3 \
        --results benchmarks/results/suite_side_by_side.jsonl &
    taskset -c 1 python benchmarks/suite.py run --missing --libraries sb3 \
        --results benchmarks/results/suite_side_by_side.jsonl

`QR-DQN/Acrobot-v1` is the Zoo's QR-DQN entry (qlearning4k through
`from_sb3(..., algo="qrdqn")`, the peer sb3-contrib's `QRDQN`).

`C51/...` and `Rainbow/...` are the ablation rows of the distributional
head and of all six Rainbow parts, qlearning4k only (Stable-Baselines3 has
neither): the task's DQN entry, with the network and options that
`_with_options` describes; their reference is plain DQN on the same task.

Needs `pip install "gymnasium[box2d]" stable-baselines3` (LunarLander needs box2d),
and `sb3-contrib` for the peer's QR-DQN.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as c

# -- settings -----------------------------------------------------------------
# hyperparams/dqn.yml of the RL Baselines3 Zoo (its LunarLander-v2 entry, run on
# Gymnasium's LunarLander-v3), and the Zoo's reported mean return of each.
TASKS = {
    "CartPole-v1": {
        "zoo_return": 500.0,
        "config": {
            "n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3,
            "batch_size": 64, "buffer_size": 100000, "learning_starts": 1000, "gamma": 0.99,
            "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
            "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    },
    "Acrobot-v1": {
        "zoo_return": -76.6,
        "config": {
            "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4,
            "batch_size": 128, "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99,
            "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
            "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    },
    "MountainCar-v0": {
        "zoo_return": -100.8,
        "config": {
            "n_timesteps": 1.2e5, "policy": "MlpPolicy", "learning_rate": 4e-3,
            "batch_size": 128, "buffer_size": 10000, "learning_starts": 1000, "gamma": 0.98,
            "target_update_interval": 600, "train_freq": 16, "gradient_steps": 8,
            "exploration_fraction": 0.2, "exploration_final_eps": 0.07,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    },
    "LunarLander-v3": {
        "zoo_return": 154.0,
        "config": {
            "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4,
            "batch_size": 128, "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99,
            "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
            "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    },
    # hyperparams/qrdqn.yml of the Zoo: sb3-contrib's QRDQN, the same settings
    # as its DQN entry and 25 quantiles; the Zoo reports -69.1.
    "QR-DQN/Acrobot-v1": {
        "env": "Acrobot-v1",
        "algo": "qrdqn",
        "zoo_return": -69.1,
        "config": {
            "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4,
            "batch_size": 128, "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99,
            "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
            "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
            "policy_kwargs": {"net_arch": [256, 256], "n_quantiles": 25},
        },
    },
}  # fmt: skip
# C51 and Rainbow: the DQN entry's settings, a support of 51 atoms over the
# task's range of discounted returns (Acrobot: -1 a step, at most 100 steps'
# worth at gamma 0.99; LunarLander: crashes near -100, landings above 100).
SUPPORTS = {"Acrobot-v1": (-100.0, 0.0), "LunarLander-v3": (-150.0, 150.0)}
for _env_id, _support in SUPPORTS.items():
    for _option in ("C51", "Rainbow"):
        TASKS[f"{_option}/{_env_id}"] = {
            "env": _env_id, "options": _option.lower(), "support": _support,
            "zoo_return": TASKS[_env_id]["zoo_return"], "config": TASKS[_env_id]["config"],
        }  # fmt: skip
SEEDS = (0, 1, 2)
EVAL_EPISODES = 100
EVAL_SEED = 1_000_000  # episode i of the evaluation is the first of GymGame(seed=EVAL_SEED + i)
EVAL_EVERY = 5_000  # env steps between the evaluations during training
EVAL_DURING = 10  # episodes of each of them, seeds from DURING_SEED
DURING_SEED = 2_000_000
RESULTS = Path(__file__).parent / "results" / "suite.jsonl"
FIGURES = Path(__file__).parent.parent / "docs" / "figures"
LIBRARIES = ("qlearning4k", "sb3")
# --smoke: one run of qlearning4k on a task Gymnasium has without Box2D, a few
# hundred env steps, evaluations of a couple of episodes; printed, not recorded.
SMOKE_TASK, SMOKE_LIBRARY, SMOKE_SEED = "Acrobot-v1", "qlearning4k", 0
SMOKE_BUDGET = 200  # env steps
SMOKE_EVAL_EPISODES, SMOKE_EVAL_EVERY, SMOKE_EVAL_DURING = 2, 100, 2
# -----------------------------------------------------------------------------


def _env(task: str) -> str:
    """The Gymnasium id of a task (a task of another algorithm than DQN names it)."""
    return TASKS[task].get("env", task)


def _train_qlearning4k(task: str, seed: int, budget: int | None) -> dict:
    import tempfile

    from qlearning4k import Agent, EvalCallback, from_sb3
    from qlearning4k.games import GymGame

    env = _env(task)
    agent, kwargs = from_sb3(TASKS[task]["config"], GymGame(env), seed=seed,
                             algo=TASKS[task].get("algo", "dqn"))  # fmt: skip
    if "options" in TASKS[task]:
        agent, kwargs = _with_options(task, agent.model, GymGame(env), seed, kwargs)
    if budget is not None:
        kwargs["total_timesteps"] = budget
    with tempfile.TemporaryDirectory() as folder:
        best = os.path.join(folder, "best")
        during = EvalCallback(
            GymGame(env), every_steps=EVAL_EVERY, nb_games=EVAL_DURING, seed=DURING_SEED,
            max_steps=None, best_path=best,
        )  # fmt: skip
        start = time.perf_counter()
        agent.train(GymGame(env, seed=seed), verbose=0, callbacks=[during], **kwargs)
        seconds = time.perf_counter() - start - during.seconds
        final, best_returns = _evaluate(agent, task), _evaluate(Agent.load(best), task)
    return {
        "env_steps": kwargs["total_timesteps"],
        "train_seconds": seconds,
        "eval_seconds_during": during.seconds,
        "curve": [[r["env_steps"], r["mean_score"]] for r in during.results],
        "returns": final,
        "best_returns": best_returns,
    }


def _with_options(task: str, dqn, game, seed: int, kwargs: dict):
    """The agent and train() arguments of a C51 or Rainbow task.

    Both keep the hidden layers (256x256) of `dqn`, the DQN entry's network
    that `from_sb3` built for the same seed, so they start from the same
    weights as plain DQN's run of that seed (PyTorch's `nn.Linear`
    initialisation). C51 ends them in 51 atoms per action, a `Dense` layer
    initialised as PyTorch's. Rainbow ends them in dueling streams of one
    NoisyDense layer each (51 value atoms, 51 atoms of each action's
    advantage; Fortunato's initialisation) merged atom by atom, with C51,
    Double DQN, 3-step returns, prioritized replay (alpha 0.5, beta 0.4
    rising to 1 over the budget) and no epsilon-greedy exploration. Both:
    Adam with the entry's learning rate, epsilon 0.01 / batch size
    (Dopamine's and QR-DQN's), the gradients clipped to SB3's norm 10 (the
    distributional loss is not averaged over the actions); the entry's
    target updates, train_freq, gradient_steps, budget and buffer.
    """
    import keras
    import numpy as np

    import qlearning4k

    spec, config = TASKS[task], TASKS[task]["config"]
    keras.utils.set_random_seed(seed)  # the NoisyDense layers' weights and noise
    game.reset()
    nb_actions = game.nb_actions
    c51 = qlearning4k.C51(51, *spec["support"])
    # Input, then from_sb3's Flatten and hidden Dense layers, without its output layer.
    body = [keras.Input(dqn.input_shape[1:]), *dqn.layers[:-1]]
    if spec["options"] == "c51":
        # PyTorch's nn.Linear: kernel and bias uniform in +-1/sqrt(fan_in).
        bound = 1.0 / np.sqrt(dqn.layers[-1].kernel.shape[0])
        kernel_seed, bias_seed = np.random.SeedSequence([seed, c51.nb_atoms]).generate_state(2)
        head = keras.layers.Dense(
            nb_actions * c51.nb_atoms,
            kernel_initializer=keras.initializers.RandomUniform(-bound, bound, int(kernel_seed)),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound, int(bias_seed)),
        )
        model = keras.Sequential([*body, head])
    else:
        model = qlearning4k.dueling(
            keras.Sequential(body), nb_actions, nb_atoms=c51.nb_atoms, noisy=True
        )
    optimizer = keras.optimizers.Adam(
        float(config["learning_rate"]), epsilon=0.01 / kwargs["batch_size"], global_clipnorm=10.0
    )
    model.compile(
        optimizer, jit_compile=True if keras.backend.backend() == "tensorflow" else "auto"
    )
    memory = None
    kwargs = dict(kwargs)
    if spec["options"] == "rainbow":
        steps, every, count = (
            kwargs[k] for k in ("total_timesteps", "train_freq", "gradient_steps")
        )
        batches = steps if count == -1 else steps // every * count  # one per gradient step
        memory = qlearning4k.PrioritizedExperienceReplay(
            int(config["buffer_size"]), alpha=0.5, beta=0.4, beta_increment=0.6 / batches,
            seed=seed,
        )  # fmt: skip
        kwargs.update(n_step=3, double_dqn=True, epsilon=(0.0, 0.0))
    agent = qlearning4k.Agent(
        model, memory=memory, memory_size=int(config["buffer_size"]), seed=seed, distribution=c51
    )
    return agent, kwargs


def _evaluate(agent, task: str) -> list[float]:
    """The final evaluation: mean return of the greedy policy on the 100 seeded episodes."""
    from qlearning4k.games import GymGame

    game = GymGame(_env(task))
    games = agent.evaluate(game, nb_games=EVAL_EPISODES, seed=EVAL_SEED, max_steps=None)
    return games["scores"]


def _play_sb3(policy, task: str, nb_episodes: int, seed: int) -> list[float]:
    """The episodes agent.evaluate plays, game i the first of GymGame(seed=seed + i), played
    greedily by a Stable-Baselines3 policy, all side by side."""
    import numpy as np

    from qlearning4k.games import GymGame

    games = [GymGame(_env(task)) for _ in range(nb_episodes)]
    for i, game in enumerate(games):
        game.rng = np.random.default_rng(seed + i)
        game.reset()
    running = list(range(nb_episodes))
    while running:
        observations = np.stack([games[i].get_frame() for i in running])
        actions, _ = policy.predict(observations, deterministic=True)
        for i, action in zip(running, actions, strict=True):
            games[i].play(int(action))
        running = [i for i in running if not games[i].is_over()]
    return [g.total_reward for g in games]


def _train_sb3(task: str, seed: int, budget: int | None) -> dict:
    import gymnasium

    if TASKS[task].get("algo") == "qrdqn":
        from sb3_contrib import QRDQN as Algorithm  # pip install sb3-contrib
    else:
        from stable_baselines3 import DQN as Algorithm

    config = dict(TASKS[task]["config"])
    total = int(config.pop("n_timesteps"))
    total = total if budget is None else budget
    model = Algorithm(env=gymnasium.make(_env(task)), seed=seed, device="cpu", **config)
    during = _sb3_evaluations(task)
    start = time.perf_counter()
    model.learn(total_timesteps=total, callback=during)
    seconds = time.perf_counter() - start - during.seconds
    final = _play_sb3(model, task, EVAL_EPISODES, EVAL_SEED)
    model.policy.load_state_dict(during.best_state)
    return {
        "env_steps": int(model.num_timesteps),
        "train_seconds": seconds,
        "eval_seconds_during": during.seconds,
        "curve": during.curve,
        "returns": final,
        "best_returns": _play_sb3(model, task, EVAL_EPISODES, EVAL_SEED),
    }


def _sb3_evaluations(task: str):
    """Stable-Baselines3's side of EvalCallback(every_steps=EVAL_EVERY): the same moments
    (before training, then at the end of the first episode after every EVAL_EVERY env
    steps), the same episodes, the best policy weights kept, the time measured."""
    import copy

    from stable_baselines3.common.callbacks import BaseCallback

    class Evaluations(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seconds, self.best, self.best_state = 0.0, float("-inf"), None
            self.next = EVAL_EVERY
            self.curve = []  # [env steps, mean return] of each evaluation

        def _evaluate(self):
            start = time.perf_counter()
            returns = _play_sb3(self.model, task, EVAL_DURING, DURING_SEED)
            score = statistics.fmean(returns)
            self.curve.append([int(self.num_timesteps), score])
            if score > self.best:
                self.best = score
                self.best_state = copy.deepcopy(self.model.policy.state_dict())
            self.seconds += time.perf_counter() - start

        def _on_training_start(self):
            self._evaluate()

        def _on_step(self):
            if self.locals["dones"][0] and self.num_timesteps >= self.next:
                while self.next <= self.num_timesteps:
                    self.next += EVAL_EVERY
                self._evaluate()
            return True

    return Evaluations()


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ evaluation settings in place of the full ones, in this process."""
    global EVAL_EPISODES, EVAL_EVERY, EVAL_DURING
    EVAL_EPISODES, EVAL_DURING = SMOKE_EVAL_EPISODES, SMOKE_EVAL_DURING
    EVAL_EVERY = SMOKE_EVAL_EVERY


def run_one(task: str, library: str, seed: int, budget: int | None) -> dict:
    """Trains and evaluates one task, library and seed in this process: its record."""
    train = _train_qlearning4k if library == "qlearning4k" else _train_sb3
    outcome = train(task, seed, budget)
    returns, best = outcome.pop("returns"), outcome.pop("best_returns")
    versions = c.library_versions(library)
    return {
        "task": task,
        "library": library,
        "backend": versions.get("backend", "torch"),
        "seed": seed,
        **outcome,
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "best_mean_return": statistics.fmean(best),
        "best_std_return": statistics.pstdev(best),
        "eval_episodes": len(returns),
        "zoo_return": TASKS[task]["zoo_return"],
        "versions": versions,
        "machine": c.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def figures(records: list[dict], folder: Path) -> None:
    """PNGs of the evaluations during training, the median over seeds with their range,
    from the records that hold them: a task's libraries side by side
    (`suite_TASK.png`), and where the records hold the ablation rows of a task,
    qlearning4k's DQN, C51 and Rainbow on it (`suite_ablation_TASK.png`)."""
    latest = {(r["task"], r["library"], r["backend"], r["seed"]): r for r in records}
    tasks: dict[str, dict[str, list]] = {}
    ablations: dict[str, dict[str, list]] = {}
    for (task, library, backend, _), r in sorted(latest.items()):
        if not r.get("curve"):
            continue  # records from before curves were kept
        variant, _, base = task.rpartition("/")
        if variant in ("C51", "Rainbow") or (library == "qlearning4k" and not variant):
            label = f"qlearning4k {variant or 'DQN'} ({backend})"
            ablations.setdefault(base, {}).setdefault(label, []).append(r["curve"])
        if variant in ("C51", "Rainbow"):
            continue
        label = "Stable-Baselines3" if library == "sb3" else f"qlearning4k ({backend})"
        tasks.setdefault(task, {}).setdefault(label, []).append(r["curve"])
    if not tasks:
        print("No record holds a learning curve: run the tasks again (suite.py run).")
    for task, groups in tasks.items():
        path = folder / f"suite_{task.replace('/', '_')}.png"
        c.curves_figure(groups, path, f"{task}: the RL Zoo's settings")
        print(f"Wrote {path}")
    for task, groups in ablations.items():
        if len(groups) > 1:  # DQN and at least one variant
            path = folder / f"suite_ablation_{task}.png"
            c.curves_figure(groups, path, f"{task}: DQN, C51 and Rainbow (the Zoo's DQN settings)")
            print(f"Wrote {path}")


def _jobs(tasks, libraries, backends, seeds):
    """Seed by seed: a suite stopped early has every task for its first seeds."""
    for seed in seeds:
        for task in tasks:
            for library in libraries:
                if library == "sb3" and "options" in TASKS[task]:
                    continue  # no peer
                for backend in backends if library == "qlearning4k" else ("torch",):
                    yield task, library, backend, seed


def run_missing(args) -> None:
    """Runs every job that the results file lacks, each in its own process."""
    done = {
        (r["task"], r["library"], r["backend"], r["seed"]) for r in c.load_records(args.results)
    }
    for task, library, backend, seed in _jobs(
        args.tasks, args.libraries, args.backends, args.seeds
    ):
        if (task, library, backend, seed) in done:
            continue
        command = [
            sys.executable, __file__, "run", "--task", task, "--library", library,
            "--seed", str(seed), "--results", str(args.results),
        ]  # fmt: skip
        if args.budget is not None:
            command += ["--budget", str(args.budget)]
        env = {**os.environ, "KERAS_BACKEND": "tensorflow" if library == "sb3" else backend}
        print(f"{task} {library} {backend} seed {seed}", flush=True)
        subprocess.run(command, env=env, check=True)


def table(records: list[dict], markdown: bool) -> str:
    """One row per task and library (backend): median return and seconds over seeds.

    SB3's seconds over ours only where all the runs of both rows ran on one
    machine (seconds compare only within one).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["library"], r["backend"]), []).append(r)
    peers = {task: rs for (task, library, _), rs in groups.items() if library == "sb3"}
    lines = []
    if markdown:
        lines += [
            "| task | library | seeds | env steps | final return, median (each seed) | "
            "best return, median (each seed) | Zoo | training s, median | SB3's s / ours |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for (task, library, backend), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        returns = [r["mean_return"] for r in rs]
        best = [r["best_mean_return"] for r in rs]
        seconds = statistics.median(r["train_seconds"] for r in rs)
        name = "Stable-Baselines3" if library == "sb3" else f"qlearning4k ({backend})"
        ratio = ""
        if library != "sb3" and task in peers:
            peer = peers[task]
            if len({r["machine"] for r in rs + peer}) == 1:
                ratio = f"{statistics.median(r['train_seconds'] for r in peer) / seconds:.2f}x"
            else:
                ratio = "other machines"
        cells = [
            task,
            name,
            str(len(rs)),
            f"{rs[0]['env_steps']:,}",
            f"{statistics.median(returns):.1f} ({', '.join(f'{x:.1f}' for x in returns)})",
            f"{statistics.median(best):.1f} ({', '.join(f'{x:.1f}' for x in best)})",
            f"{rs[0]['zoo_return']:g}",
            f"{seconds:.0f}",
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |" if markdown else "  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=("run", "table", "figure"),
                        help="optional with --smoke")  # fmt: skip
    parser.add_argument("--smoke", action="store_true",
                        help=f"one tiny run ({SMOKE_TASK} and {SMOKE_LIBRARY} unless --task and "
                             "--library say), printed, not recorded")  # fmt: skip
    parser.add_argument("--task", choices=tuple(TASKS))
    parser.add_argument("--library", choices=LIBRARIES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--missing", action="store_true", help="run every job not in results")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument(
        "--backends", help="comma-separated (run: tensorflow unless given; table: all unless given)"
    )
    parser.add_argument(
        "--seeds", help="comma-separated (run: 0,1,2 unless given; table: all unless given)"
    )
    parser.add_argument("--budget", type=int, help="env steps instead of the Zoo's (smoke runs)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="where figure draws")
    args = parser.parse_args()
    args.tasks = args.tasks.split(",")
    args.libraries = args.libraries.split(",")
    backends, seeds = args.backends, args.seeds
    args.backends = (backends or "tensorflow").split(",")
    args.seeds = [int(s) for s in seeds.split(",")] if seeds else list(SEEDS)
    for task in args.tasks:
        if task not in TASKS:
            parser.error(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    if args.smoke:
        if args.command in ("table", "figure") or args.missing:
            parser.error("--smoke runs one tiny run: not with table, figure or --missing")
        _use_smoke_settings()
        budget = SMOKE_BUDGET if args.budget is None else args.budget
        seed = SMOKE_SEED if args.seed is None else args.seed
        c.emit(run_one(args.task or SMOKE_TASK, args.library or SMOKE_LIBRARY, seed, budget))
        return
    if args.command is None:
        parser.error("a command is needed: run or table (or --smoke)")

    if args.command in ("table", "figure"):  # the records of the tasks and libraries asked for
        records = [
            r for r in c.load_records(args.results)
            if r["task"] in args.tasks and r["library"] in args.libraries
            and (backends is None or r["backend"] in args.backends or r["library"] == "sb3")
            and (seeds is None or r["seed"] in args.seeds)
        ]  # fmt: skip
        if args.command == "figure":
            figures(records, args.figures)
        else:
            print(table(records, args.markdown))
    elif args.missing:
        run_missing(args)
    else:
        if args.task is None or args.library is None or args.seed is None:
            parser.error("run needs --task, --library and --seed, or --missing")
        record = run_one(args.task, args.library, args.seed, args.budget)
        c.append(args.results, record)
        c.emit(record)


if __name__ == "__main__":
    main()
