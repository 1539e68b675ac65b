"""Shared pieces of the benchmarks: models, seeded evaluation, the peer, output.

Not part of the package: scripts in this folder import it as a sibling module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

GRID_SIZE = 10
EVAL_GAMES = 200  # greedy games of each evaluation during training
FINAL_GAMES = 1000  # fresh greedy games after solving
THRESHOLD = 0.95
EVAL_SEED = 10_000  # evaluation games use seeds EVAL_SEED, EVAL_SEED + 1, ...
FINAL_SEED = 20_000
BACKENDS = ("tensorflow", "jax", "torch")


def cores() -> int:
    """The cores this process may run on: all of them, or those `taskset` pinned it to."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine() -> str:
    """One line about the machine the figures come from."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    count = f"{os.cpu_count()} cores"
    if cores() < os.cpu_count():
        count = f"{cores()} of {count} (pinned)"
    return f"{count}, {model}, Python {sys.version.split()[0]}"


def emit(record: dict) -> None:
    """Prints one JSON line."""
    print(json.dumps(record), flush=True)


def versions() -> dict:
    """The settings that tell records of different machines and libraries apart."""
    import keras

    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def append(path, record: dict) -> None:
    """Appends `record` as one JSON line to `path` (made with its folder if need be)."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def record(path, records: list[dict], settings: dict) -> None:
    """Appends `records` to the results file `path`, each with the run's
    `settings`, the machine, the date and the command that made it."""
    command = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    extra = {"settings": settings, "machine": machine(), "command": command,
             "date": time.strftime("%Y-%m-%d", time.gmtime())}  # fmt: skip
    for one in records:
        append(path, {**one, **extra})


def add_results_argument(parser, name: str) -> None:
    """`--results`: the file the records go to, `benchmarks/results/<name>.jsonl`."""
    parser.add_argument(
        "--results",
        default=os.path.join(RESULTS, f"{name}.jsonl"),
        help="the JSON lines file the records are appended to (not with --smoke)",
    )


def finish(args, records: list[dict], settings: dict, table) -> None:
    """A worker-based script's end: its records appended with `settings` (not with
    --smoke), then with --markdown the machine, the date and `table(records)`."""
    if not args.smoke:
        record(args.results, records, settings)
    if args.markdown:
        print(f"\nMachine: {machine()}; {time.strftime('%Y-%m-%d')}\n")
        print(table(records))


def load_records(path) -> list[dict]:
    """The JSON lines of a results file (none if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def library_versions(library: str) -> dict:
    """The versions that tell a record's library apart: Keras and its backend, or
    Stable-Baselines3 and PyTorch for the peer (`library == "sb3"`)."""
    if library == "sb3":
        import stable_baselines3
        import torch

        return {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__}
    import keras

    return {"keras": keras.__version__, "backend": keras.backend.backend()}


def median_spread(values) -> tuple[float, float, float]:
    values = list(values)
    return statistics.median(values), min(values), max(values)


def catch_model(hidden=100, learning_rate=1e-3, optimizer="adam", loss="mse", jit_compile="auto"):
    """The README's Catch MLP, compiled with the given optimizer."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((1, GRID_SIZE, GRID_SIZE)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    model.compile(optimizers[optimizer](learning_rate=learning_rate), loss, jit_compile=jit_compile)
    return model


def evaluate(greedy, nb_games: int, seed: int) -> float:
    """The peer's win rate: `greedy(states) -> actions` on seeded Catch games in lockstep.

    The games are the ones `Agent.evaluate(Catch(), nb_games, seed)` plays
    for qlearning4k: game `i` is the first of `Catch(seed=seed + i)`. Every
    Catch game lasts `GRID_SIZE - 1` steps, so all games step together and
    one batched call of `greedy` per step chooses every action.
    """
    from qlearning4k.games import Catch

    games = [Catch(GRID_SIZE, seed=seed + i) for i in range(nb_games)]
    for _ in range(GRID_SIZE - 1):
        states = np.stack([g.get_frame() for g in games])[:, None]  # (n, 1, grid, grid)
        for game, action in zip(games, greedy(states), strict=True):
            game.play(int(action))
    return float(np.mean([g.is_won() for g in games]))


class Stopwatch:
    """Wall time of a run, less the time spent in `paused()` blocks."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused_for = 0.0

    def pause(self):
        return _Pause(self)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused_for


class _Pause:
    def __init__(self, watch):
        self.watch = watch

    def __enter__(self):
        self.began = time.perf_counter()

    def __exit__(self, *exc):
        self.watch.paused_for += time.perf_counter() - self.began


WARM_CACHE = "jax+cache"  # a backend name: JAX with a warm persistent compilation cache


def run_workers(script: str, backends, with_peer: bool, extra_args) -> list[dict]:
    """Runs `script --worker LIBRARY` once per Keras backend (and once for the peer).

    Each run is its own process, so each Keras backend starts clean. The
    backend `jax+cache` is JAX with its persistent compilation cache in a
    fresh folder, filled by one unreported run first: what a second run of
    the same script costs (the cache saves XLA's compiling, not tracing).
    """
    jobs = [("qlearning4k", backend) for backend in backends]
    if with_peer:
        jobs.append(("stable-baselines3", "tensorflow"))  # the peer runs on torch itself
    records = []
    for library, backend in jobs:
        env = {**os.environ, "KERAS_BACKEND": backend}
        if backend == WARM_CACHE:
            with tempfile.TemporaryDirectory(prefix="qlearning4k-jax-cache-") as cache:
                env.update(
                    KERAS_BACKEND="jax",
                    JAX_COMPILATION_CACHE_DIR=cache,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # our steps compile in < 1 s
                )
                _run_worker(script, library, env, extra_args)  # fills the cache
                new = _run_worker(script, library, env, extra_args)
            for record in new:
                record["backend"] = "jax, warm compilation cache"
        elif backend in BACKENDS:
            new = _run_worker(script, library, env, extra_args)
        else:
            raise SystemExit(
                f"Unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}, {WARM_CACHE}"
            )
        for record in new:
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def seconds_per_call(call, warmup: int, calls: int, repeats: int) -> float:
    """Median over `repeats` runs of `calls` calls of `call()`, after `warmup` untimed."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        seconds.append((time.perf_counter() - start) / calls)
    return statistics.median(seconds)


def run_rows(script: str, rows: list[str], backends: dict[str, str], extra_args=()) -> list[dict]:
    """Runs `script --worker ROW [extra_args]` for each row, each in its own process on
    the Keras backend `backends[row]`; prints and returns the records. An unknown row exits."""
    records = []
    for row in rows:
        if row not in backends:
            raise SystemExit(f"Unknown row {row!r}: expected one of {', '.join(backends)}")
        env = {**os.environ, "KERAS_BACKEND": backends[row]}
        (record,) = _run_worker(script, row, env, extra_args)
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def _run_worker(script: str, library: str, env: dict, extra_args) -> list[dict]:
    """The records `script --worker LIBRARY [extra_args]` prints, in a process of its own,
    or in this one for a smoke run on the backend this process uses (a smoke run checks
    that the script runs, and starting Python and Keras again costs more than it)."""
    if "--smoke" in extra_args and set(env) - set(os.environ) <= {"KERAS_BACKEND"}:
        keras = sys.modules.get("keras")
        here = keras.backend.backend() if keras else os.environ.get("KERAS_BACKEND", "tensorflow")
        if env.get("KERAS_BACKEND", "tensorflow") == here:
            return _run_worker_here(script, library, extra_args)
    out = subprocess.run(
        [sys.executable, script, "--worker", library, *extra_args],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"{script} failed for {library} on {env['KERAS_BACKEND']}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _run_worker_here(script: str, library: str, extra_args) -> list[dict]:
    argv, sys.argv = sys.argv, [script, "--worker", library, *extra_args]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise SystemExit(f"{script} failed for {library}: {stop.code}") from stop
    finally:
        sys.argv = argv
    return [json.loads(line) for line in printed.getvalue().splitlines() if line.startswith("{")]


def compile_seconds(agent) -> float:
    """Seconds of the first calls of the agent's training steps (tracing and compiling).

    The learner of the default config serves `evaluate()`, `play()` and
    `act()` only, outside the timed training: it is left out. Reads private
    attributes: benchmarks are the library's own tools.
    """
    from qlearning4k._internals import StepConfig

    default = StepConfig()
    return sum(
        learner.compile_seconds for config, learner in agent._learners.items() if config != default
    )


# -- a compiled training step, timed (heads.py, jax_step.py) -----------------------

STEP_WARMUP, STEP_CALLS = 20, 200  # calls not timed (tracing, compiling), then calls timed
# Each network: its frame, actions, batch and gradient steps a call.
STEP_NETWORKS = {
    "acrobot": {"frame": (6,), "nb_actions": 3, "batch": 128, "gradient_steps": 4},
    "minatar": {"frame": (10, 10, 4), "nb_actions": 3, "batch": 32, "gradient_steps": 1},
}
# The RL Baselines3 Zoo's Acrobot-v1 DQN entry, as much of it as the step needs.
ZOO_ACROBOT = {
    "n_timesteps": 1e5, "learning_rate": 6.3e-4, "batch_size": 128,
    "target_update_interval": 250, "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip


def zoo_acrobot_agent(config: dict | None = None, algo: str = "dqn"):
    """The agent `from_sb3` builds, seed 0, for Acrobot-v1 from `config` (else ZOO_ACROBOT):
    two hidden layers of 256, Adam, on TensorFlow compiled with XLA."""
    from qlearning4k import from_sb3
    from qlearning4k.games import GymGame

    return from_sb3(ZOO_ACROBOT if config is None else config, GymGame("Acrobot-v1"), seed=0,
                    algo=algo)[0]  # fmt: skip


def fill_step_buffers(buffers, network: str):
    """Fills the call buffers of `network`'s step (STEP_NETWORKS) with random transitions
    (Acrobot's: reward -1 a step, one game over in a hundred)."""
    spec = STEP_NETWORKS[network]
    rng = np.random.default_rng(0)
    buffers.frames[:] = rng.uniform(-1, 1, buffers.frames.shape)
    for batch in buffers.batches:
        batch.actions[:] = rng.integers(spec["nb_actions"], size=len(batch.actions))
        batch.rewards[:] = -1.0
        batch.discounts[:] = np.where(rng.random(len(batch.discounts)) < 0.01, 0.0, 0.99)
    return buffers


def step_timer(agent, network: str, warmup: int = STEP_WARMUP, calls: int = STEP_CALLS):
    """`(timed, flops)` for the agent's compiled training step on `network`'s batches
    (STEP_NETWORKS), a target network in it: `timed()` returns the seconds per gradient
    step of `calls` calls (the first `warmup` calls are made here, untimed); `flops` is
    the step's floating-point operations as XLA's cost analysis counts them on JAX, None
    elsewhere. The batches are filled once (`fill_step_buffers`). Reads private
    attributes: benchmarks are the library's own tools."""
    from qlearning4k._internals import StepConfig

    spec = STEP_NETWORKS[network]
    batch, steps = spec["batch"], spec["gradient_steps"]
    config = StepConfig(batch_size=batch, max_steps=steps, target_copied=True)
    learner = agent._learner(config)
    buffers = fill_step_buffers(learner.call_buffers(1, (1, *spec["frame"]), np.float32), network)
    learner.begin()
    flops = None
    if hasattr(learner, "_jit_step"):  # JAX: XLA counts the compiled step's operations
        lowered = learner._jit_step.lower(learner._state, buffers.frames, buffers.floats)
        cost = lowered.compile().cost_analysis()
        flops = (cost[0] if isinstance(cost, list) else cost).get("flops")
    for _ in range(warmup):
        learner.step(buffers, steps)

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            learner.step(buffers, steps)
        return (time.perf_counter() - start) / (calls * steps)

    return timed, flops


# -- the peer: Stable-Baselines3 DQN through a Gymnasium adapter ----------------


def sb3_catch_env(seed: int):
    """Catch through the library's own `GameEnv`, flat float32 for SB3's MlpPolicy."""
    from gymnasium.wrappers import DtypeObservation, FlattenObservation

    from qlearning4k.games import Catch

    return DtypeObservation(FlattenObservation(Catch(GRID_SIZE, seed=seed).to_gym()), np.float32)


def sb3_dqn(seed: int, train_freq: int, total_timesteps: int, batch_size: int = 32):
    """The peer's DQN with the settings of the issue that set the targets."""
    import torch
    from stable_baselines3 import DQN

    torch.set_num_threads(cores())  # 2, or 1 when taskset pins the run
    return DQN(
        "MlpPolicy",
        sb3_catch_env(seed),
        learning_rate=1e-3,
        buffer_size=50_000,
        learning_starts=500,
        batch_size=batch_size,
        gamma=0.9,
        train_freq=train_freq,
        gradient_steps=1,
        target_update_interval=250,
        exploration_fraction=0.2,
        policy_kwargs={"net_arch": [100, 100]},
        seed=seed,
        verbose=0,
        device="cpu",
    )


def sb3_greedy(model):
    def greedy(states):
        actions, _ = model.predict(
            states.reshape(len(states), -1).astype(np.float32), deterministic=True
        )
        return actions

    return greedy


def episode_seeds(nb_episodes: int, seed: int) -> list[int]:
    """The reset seed of each of `nb_episodes` evaluation episodes: episode i's is what
    `GymGame(env, seed=seed + i)` draws for its first reset, so that a peer's policy
    plays the episodes `Agent.evaluate(game, nb_games, seed=seed)` plays."""
    return [int(np.random.default_rng(seed + i).integers(2**31)) for i in range(nb_episodes)]


def peer_returns(
    greedy, make_env, nb_episodes: int, seed: int, max_steps=None, indexed: bool = False
) -> list[float]:
    """Returns of a peer's policy on the `episode_seeds` episodes, all side by side:
    `greedy(observations)` chooses every running episode's action from the raw
    observations stacked (dicts of them key by key), at most `max_steps` each;
    `indexed`: `greedy(observations, running)` is told which episodes they are
    (a recurrent policy's states)."""
    envs = [make_env() for _ in range(nb_episodes)]
    seeds = episode_seeds(nb_episodes, seed)
    observations = [env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)]
    returns, running, step = [0.0] * nb_episodes, list(range(nb_episodes)), 0
    while running and (max_steps is None or step < max_steps):
        batch = [observations[i] for i in running]
        if isinstance(batch[0], dict):
            batch = {key: np.stack([o[key] for o in batch]) for key in batch[0]}
        else:
            batch = np.stack(batch)
        still = []
        actions = greedy(batch, np.array(running)) if indexed else greedy(batch)
        for i, action in zip(running, actions, strict=True):
            observations[i], reward, terminated, truncated, _ = envs[i].step(action)
            returns[i] += float(reward)
            if not (terminated or truncated):
                still.append(i)
        running, step = still, step + 1
    return returns


def curves_figure(groups: dict, path, title: str, xlabel: str = "env steps") -> None:
    """Draws each group's learning curves, the median over its seeds with their
    range shaded, into the PNG `path`.

    `groups` maps a label to curves, each a list of `[x, value]` points
    (evaluations land at game ends, a little apart from seed to seed): a
    group's curves are interpolated linearly at 50 points up to the end they
    all reach.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for label, curves in groups.items():
        end = min(curve[-1][0] for curve in curves)
        shared = np.linspace(0, end, 50)
        values = np.array([np.interp(shared, *np.array(curve, dtype=float).T) for curve in curves])
        seeds = f"{len(curves)} seed{'s' if len(curves) > 1 else ''}"
        axes.plot(shared, np.median(values, axis=0), label=f"{label} ({seeds})")
        axes.fill_between(shared, values.min(axis=0), values.max(axis=0), alpha=0.2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("greedy return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
