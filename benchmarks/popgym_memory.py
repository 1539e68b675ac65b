"""POPGym memory tasks: the recurrent agent, a feedforward one, Tianshou's, R2D2's ablation.

`table` trains, for each task and seed, the recurrent agent of
examples/popgym_memory.py (its settings, its budget) and a feedforward
agent with NB_FRAMES stacked frames (an MLP of two layers of 64) with the
same `train()` settings and budget, each in its own process, and evaluates
both greedily as the example does; one JSON line a run. `peer` trains
Tianshou's recurrent DQN (its LSTM `Recurrent` net of the example's width,
learning from stacks of the example's sequence length from a zero state, as
DRQN does) with the same settings and budget, and plays the same
evaluation episodes carrying its state. `ablation` trains, for each case
of ABLATIONS (a task, a budget, a replay memory size), the task's recurrent
agent with short sequences in two ways, R2D2's stored state with a burn-in
against the zero state without one. `show` prints the tables of the
recorded runs (median of the seeds, and each).

    python benchmarks/popgym_memory.py table --seeds 0,1,2
    python benchmarks/popgym_memory.py peer --seeds 0,1,2   # Tianshou's venv, see below
    python benchmarks/popgym_memory.py ablation --seeds 0,1,2 --cases repeat_first
    python benchmarks/popgym_memory.py show
    python benchmarks/popgym_memory.py --smoke   # one task, tiny budgets, printed only

`peer` needs `pip install tianshou==2.0.1 "qlearning4k[popgym]"` in a
virtual environment of its own (Tianshou pins older pandas and filelock).
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
import numpy as np

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


def _train_tianshou(example, task: str, seed: int, smoke: bool):
    """Tianshou's recurrent DQN (its LSTM `Recurrent` net, DRQN's replay of
    stacked steps from a zero state) with the example's `train()` settings;
    returns its greedy policy's returns on the example's evaluation episodes."""
    import gymnasium
    import torch
    from tianshou.algorithm import DQN
    from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.trainer import OffPolicyTrainerParams
    from tianshou.utils.net.common import Recurrent

    settings = example.train_settings(task, smoke)
    stack = example.TASKS[task][3]  # the steps of the example's sequences

    def make_env():
        env = example.make_env(task)
        size = env.observation_space.n if hasattr(env.observation_space, "n") else None
        if size is None:
            return env
        return gymnasium.wrappers.TransformObservation(  # one-hot, as GymGame shows it
            env, lambda o: np.eye(size, dtype=np.float32)[o],
            gymnasium.spaces.Box(0.0, 1.0, (size,), np.float32),
        )  # fmt: skip

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # two runs share the two cores; more threads contend
    env = make_env()
    net = Recurrent(layer_num=1, state_shape=env.observation_space.shape,
                    action_shape=env.action_space.n, hidden_layer_size=example.UNITS)  # fmt: skip
    policy = DiscreteQLearningPolicy(
        model=net, action_space=env.action_space, eps_training=1.0, eps_inference=0.0
    )
    algorithm = DQN(
        policy=policy, optim=AdamOptimizerFactory(lr=example.LEARNING_RATE),
        gamma=settings["gamma"], is_double=True, huber_loss_delta=1.0,
        target_update_freq=settings["target_update_interval"] // settings["train_freq"],
    )  # fmt: skip
    envs = DummyVectorEnv([make_env])
    envs.seed(seed)
    budget, warmup = settings["total_timesteps"], settings["learning_starts"]
    buffer = VectorReplayBuffer(example.MEMORY_SIZE, 1, stack_num=stack)
    # Tianshou 2.0.1's trainer checks the whole buffer for NaNs after every
    # collection, deep-copying the recurrent states stored in it: a run's cost
    # grows with the square of its steps (13,132 of 50,000 steps in 35 minutes).
    buffer.hasnull = lambda: False
    training = Collector[CollectStats](algorithm, envs, buffer, exploration_noise=True)
    training.reset()
    training.collect(n_step=warmup)
    (start, end), decay = settings["epsilon"], settings["epsilon_rate"] * budget

    def training_fn(epoch: int, env_step: int) -> None:
        policy.set_eps_training(start + (end - start) * min(1.0, env_step / decay))

    epochs = 1 if smoke else 10
    algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=training, test_collector=None, max_epochs=epochs,
            epoch_num_steps=(budget - warmup) // epochs,
            collection_step_num_env_steps=settings["train_freq"],
            batch_size=settings["batch_size"], update_step_num_gradient_steps_per_sample=(
                1 / settings["train_freq"]), training_fn=training_fn, show_progress=False,
        )
    )  # fmt: skip
    net.eval()
    episodes = 5 if smoke else example.EVAL_EPISODES
    states = {"hidden": torch.zeros(episodes, 1, example.UNITS),
              "cell": torch.zeros(episodes, 1, example.UNITS)}  # fmt: skip

    def greedy(observations, running):
        with torch.no_grad():
            state = {key: value[running] for key, value in states.items()}
            values, state = net(observations, state)
        for key in states:
            states[key][running] = state[key]
        return values.argmax(dim=-1).numpy()

    return c.peer_returns(greedy, make_env, episodes, example.EVAL_SEED, indexed=True)


def _record(example, task: str, agent: str, seed: int, env_steps: int, returns, seconds: float,
            sequences, memory_size: int, backend: str) -> dict:  # fmt: skip
    """One JSON line: a run's mean return over the evaluation episodes, and its settings."""
    return {
        "benchmark": "popgym_memory", "task": example.TASKS[task][1], "agent": agent,
        "seed": seed, "env_steps": env_steps, "sequences": sequences,
        "memory_size": memory_size, "mean_return": float(np.mean(returns)),
        "win_rate": float(np.mean(np.asarray(returns) > 0.99)),  # the example's win
        "train_seconds": seconds, "backend": backend, "machine": c.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def run_one(name: str, agent_kind: str, seed: int, smoke: bool = False) -> dict:
    """Trains and evaluates one agent: `recurrent`, `feedforward` or `tianshou` on
    the example's task `name`, or an ablation arm on the ABLATIONS case `name`."""
    example = _example()
    task = ABLATIONS[name][0] if agent_kind in ARMS else name
    settings = {**example.train_settings(task, smoke), "verbose": 0}
    if agent_kind == "tianshou":
        import tianshou

        start = time.perf_counter()
        returns = _train_tianshou(example, task, seed, smoke)
        seconds = time.perf_counter() - start  # its evaluation included
        return _record(example, task, agent_kind, seed, settings["total_timesteps"], returns,
                       seconds, [example.TASKS[task][3], 0, None, False], example.MEMORY_SIZE,
                       f"torch (tianshou {tianshou.__version__})")  # fmt: skip
    import keras

    from qlearning4k import SequenceReplay

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
            if not smoke:
                settings["total_timesteps"] = env_steps
    memory = agent.memory
    sequences = None
    if agent_kind != "feedforward":
        sequences = [memory.sequence_length, memory.burn_in, memory.overlap, memory.stored_state]
    start = time.perf_counter()
    agent.train(game, **settings)
    seconds = time.perf_counter() - start
    returns = example.evaluate(agent, task, smoke)["scores"]
    return _record(example, task, agent_kind, seed, settings["total_timesteps"], returns,
                   seconds, sequences, memory.memory_size, keras.backend.backend())  # fmt: skip


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
    parser.add_argument("mode", nargs="?", choices=("table", "ablation", "peer", "show", "worker"))
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
    elif args.mode == "peer":
        tasks = args.tasks.split(",") if args.tasks else list(_example().TASKS)
        _runs([(t, "tianshou", s) for t in tasks for s in seeds], False)
    elif args.mode == "ablation":
        cases = args.cases.split(",") if args.cases else list(ABLATIONS)
        _runs([(case, arm, s) for case in cases for s in seeds for arm in ARMS], False)
    records = c.load_records(RESULTS)
    agents = ("recurrent", "tianshou", "feedforward")
    print(table([r for r in records if r["agent"] in agents], agents))
    print()
    print(table([r for r in records if r["agent"] in ARMS], ARMS))


if __name__ == "__main__":
    main()
