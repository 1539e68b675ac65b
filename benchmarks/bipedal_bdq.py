"""Action branching on BipedalWalker-v3: qlearning4k's branching Q-network against Tianshou's BDQ.

qlearning4k runs `examples/bipedal_walker_bdq.py` itself: each of
BipedalWalker's 4 continuous actions cut into 25 bins (`DiscretizedActions`,
as Tianshou's `ContinuousToDiscrete`), 390,625 joint actions, 100 outputs
for a branching network, with the settings of Tianshou's example
(`examples/box2d/bipedal_bdq.py` of Tianshou 2.x), which the peer runs
here: a shared body of 512 and 256 units, a value stream and one advantage
stream per branch of 128 hidden units, Adam at 1e-4, gamma 0.99, batches of
512, a replay buffer of 100,000, 20 training envs, a gradient step per
collection of 20 env steps (Tianshou asks 16; all 20 envs step), a target
network copied every 1,000 gradient steps, Double DQN, BDQ's targets and
mean squared loss, 10,240 env steps collected before learning. Both stop
at 500,000 env steps in all (Tianshou's warm-up included). Tianshou decays
epsilon exponentially, `0.73 * (1 - 5e-6) ** env_step`; qlearning4k's
schedules are linear, so the example decays it from 0.73 to 0.06
(Tianshou's value at the end) over the first half of the budget: a mean
epsilon of 0.23 against Tianshou's 0.27. Tianshou tests 10 episodes after
each epoch (its example's `test_in_training`), which its `train_time`
leaves out.

The final greedy policy of each then plays the same 100 seeded episodes
(episode i reset with the seed that `GymGame(seed=EVAL_SEED + i)` draws).
Training seconds: the example's `train()`, or Tianshou's warm-up and
`train_time`. `flat` measures what a flat Q-network over the joint actions
would take: its output layer, and one gradient step of it.

    python benchmarks/bipedal_bdq.py run --library qlearning4k --seed 0
    python benchmarks/bipedal_bdq.py run --library tianshou --seed 0
    python benchmarks/bipedal_bdq.py flat
    python benchmarks/bipedal_bdq.py table --markdown
    python benchmarks/bipedal_bdq.py --smoke   # the example's smoke budget, printed only

Needs `pip install "qlearning4k[box2d]"`, and for the peer
`pip install tianshou==2.0.1` (in a virtual environment of its own beside
qlearning4k's, as it pins older pandas and filelock).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import _common as c
import numpy as np

EXAMPLE = Path(__file__).parent.parent / "examples" / "bipedal_walker_bdq.py"
# --- settings (the rest are the example's) ---------------------------------------
EVAL_SEED = 30_000  # the evaluation episodes' seeds: EVAL_SEED + i
EPS_DECAY = 5e-6  # Tianshou: EPSILON[0] * (1 - EPS_DECAY) ** env_step
TIANSHOU_EPOCHS = 10
TIANSHOU_COLLECT, TIANSHOU_UPDATES_PER_STEP, TIANSHOU_TEST_ENVS = 16, 0.0625, 10
SMOKE_EPISODES = 2
# -----------------------------------------------------------------------------


def _example():
    """examples/bipedal_walker_bdq.py as a module: its settings, `build_agent` and `train`."""
    spec = importlib.util.spec_from_file_location("bipedal_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_qlearning4k(example, seed: int, smoke: bool) -> dict:
    import keras

    from qlearning4k.games import GymGame

    keras.utils.set_random_seed(seed)
    agent = example.build_agent(seed)
    start = time.perf_counter()
    example.train(agent, smoke, verbose=0)
    seconds = time.perf_counter() - start
    episodes = SMOKE_EPISODES if smoke else example.EVAL_EPISODES
    games = agent.evaluate(
        GymGame(example.make_env()), nb_games=episodes, seed=EVAL_SEED,
        max_steps=100 if smoke else None,
    )  # fmt: skip
    return {
        "train_seconds": seconds, "returns": [float(s) for s in games["scores"]],
        "versions": c.library_versions("qlearning4k"),
    }  # fmt: skip


def _train_tianshou(example, seed: int, smoke: bool) -> dict:
    import gymnasium
    import tianshou
    import torch
    from tianshou.algorithm import BDQN
    from tianshou.algorithm.modelfree.bdqn import BDQNPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import ContinuousToDiscrete, SubprocVectorEnv
    from tianshou.trainer import OffPolicyTrainerParams
    from tianshou.utils.net.common import BranchingNet

    ex = example

    def make():
        return ContinuousToDiscrete(gymnasium.make(ex.ENV_ID), ex.BINS)

    env = make()
    np.random.seed(seed)
    torch.manual_seed(seed)
    nb_envs = ex.SMOKE_ENVS if smoke else ex.NB_ENVS
    training_envs = SubprocVectorEnv([make for _ in range(nb_envs)])
    test_envs = SubprocVectorEnv([make for _ in range(TIANSHOU_TEST_ENVS)])
    training_envs.seed(seed)
    test_envs.seed(seed)
    net = BranchingNet(
        state_shape=env.observation_space.shape, num_branches=env.action_space.shape[0],
        action_per_branch=ex.BINS, common_hidden_sizes=list(ex.COMMON),
        value_hidden_sizes=[ex.BRANCH_UNITS], action_hidden_sizes=[ex.BRANCH_UNITS],
    )  # fmt: skip
    policy = BDQNPolicy(
        model=net, action_space=env.action_space, eps_training=ex.EPSILON[0], eps_inference=0.0
    )
    algorithm = BDQN(
        policy=policy, optim=AdamOptimizerFactory(lr=ex.LEARNING_RATE), gamma=ex.GAMMA,
        target_update_freq=ex.TARGET_UPDATE,
    )  # fmt: skip
    budget = ex.SMOKE_TIMESTEPS if smoke else ex.TOTAL_TIMESTEPS
    warmup = 100 if smoke else ex.LEARNING_STARTS
    batch = ex.SMOKE_BATCH if smoke else ex.BATCH_SIZE
    training = Collector[CollectStats](
        algorithm, training_envs, VectorReplayBuffer(ex.MEMORY_SIZE, nb_envs),
        exploration_noise=True,
    )  # fmt: skip
    testing = Collector[CollectStats](algorithm, test_envs, exploration_noise=False)
    start = time.perf_counter()
    training.reset()
    training.collect(n_step=warmup)
    warmup_seconds = time.perf_counter() - start

    def training_fn(epoch: int, env_step: int) -> None:
        policy.set_eps_training(ex.EPSILON[0] * (1 - EPS_DECAY) ** env_step)

    epochs = 1 if smoke else TIANSHOU_EPOCHS
    result = algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=training, test_collector=testing, max_epochs=epochs,
            epoch_num_steps=(budget - warmup) // epochs,
            collection_step_num_env_steps=TIANSHOU_COLLECT,
            test_step_num_episodes=TIANSHOU_TEST_ENVS, batch_size=batch,
            update_step_num_gradient_steps_per_sample=TIANSHOU_UPDATES_PER_STEP,
            training_fn=training_fn, stop_fn=lambda mean_rewards: False, test_in_training=True,
            show_progress=False,
        )
    )  # fmt: skip
    training_envs.close()
    test_envs.close()
    net.eval()

    def greedy(observations):
        with torch.no_grad():
            values, _ = net(torch.as_tensor(observations, dtype=torch.float32))
        return values.argmax(dim=-1).numpy()

    episodes = SMOKE_EPISODES if smoke else ex.EVAL_EPISODES
    returns = c.peer_returns(greedy, ex.make_env, episodes, EVAL_SEED, 100 if smoke else None)
    return {
        "train_seconds": warmup_seconds + result.timing.train_time, "returns": returns,
        "versions": {"tianshou": tianshou.__version__, "torch": torch.__version__},
    }  # fmt: skip


def run_one(library: str, seed: int, smoke: bool) -> dict:
    example = _example()
    train = _train_qlearning4k if library == "qlearning4k" else _train_tianshou
    outcome = train(example, seed, smoke)
    returns = outcome.pop("returns")
    return {
        "task": f"{example.ENV_ID} ({example.BINS} bins)", "library": library, "seed": seed,
        "env_steps": example.SMOKE_TIMESTEPS if smoke else example.TOTAL_TIMESTEPS,
        **outcome, "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns), "eval_episodes": len(returns),
        "machine": c.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def _step_seconds(model, config, nb_actions: int, smoke: bool) -> float:
    """The median seconds of one gradient step (batch of the example's size) of `model`."""
    from qlearning4k._internals import make_learner

    learner = make_learner(model, config)
    buffers = learner.call_buffers(1, (1, 24), np.float32)
    rng = np.random.default_rng(0)
    into = buffers.batches[0]
    into.states[...] = rng.normal(size=into.states.shape)
    into.next_states[...] = rng.normal(size=into.next_states.shape)
    into.actions[...] = rng.integers(nb_actions, size=into.actions.shape)
    learner.begin()
    learner.step(buffers, 1)  # compiles
    times = []
    for _ in range(2 if smoke else 5):
        start = time.perf_counter()
        learner.step(buffers, 1)
        times.append(time.perf_counter() - start)
    learner.end()
    return statistics.median(times)


def flat(smoke: bool) -> dict:
    """A flat Q-network over every joint action against the example's branching one:
    the output layer of each, and one gradient step of each."""
    import keras

    from qlearning4k._internals import StepConfig

    ex = _example()
    # The smoke run: two joints' worth (625 outputs), not all four.
    nb_parts = 2 if smoke else 4
    nb_outputs = ex.BINS**nb_parts
    flat_model = keras.Sequential(
        [keras.Input((1, 24)), keras.layers.Flatten()]
        + [keras.layers.Dense(units, activation="relu") for units in ex.COMMON]
        + [keras.layers.Dense(nb_outputs)]
    )
    flat_model.compile(keras.optimizers.Adam(ex.LEARNING_RATE), "mse")
    config = StepConfig(batch_size=ex.BATCH_SIZE, target_update=ex.TARGET_UPDATE, double_dqn=True)
    flat_seconds = _step_seconds(flat_model, config, nb_outputs, smoke)
    branching = ex.build_agent(0).model
    parts = branching.output.shape[-1] // ex.BINS
    branch_config = StepConfig(
        batch_size=ex.BATCH_SIZE, target_update=ex.TARGET_UPDATE, double_dqn=True,
        action_parts=(ex.BINS,) * parts,
    )  # fmt: skip
    branch_seconds = _step_seconds(branching, branch_config, ex.BINS, smoke)
    output = flat_model.layers[-1]
    return {
        "task": "flat DQN", "nb_outputs": nb_outputs,
        "output_layer_parameters": int(output.count_params()),
        "output_layer_mb": output.count_params() * 4 / 2**20,
        "step_seconds": flat_seconds, "branching_step_seconds": branch_seconds,
        "branching_parameters": int(branching.count_params()), "batch_size": ex.BATCH_SIZE,
        "versions": c.library_versions("qlearning4k"), "machine": c.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def table(records: list[dict]) -> str:
    runs = [r for r in records if r.get("library")]
    lines = [
        "| library | seeds | greedy return, median (each seed) | training s, median (each seed) |",
        "|---|---|---|---|",
    ]
    for library in sorted({r["library"] for r in runs}):
        mine = sorted((r for r in runs if r["library"] == library), key=lambda r: r["seed"])
        backend = mine[0]["versions"].get("backend")
        name = f"{library} ({backend})" if backend else library
        returns = ", ".join(f"{r['mean_return']:.1f}" for r in mine)
        seconds = ", ".join(f"{r['train_seconds']:.0f}" for r in mine)
        lines.append(
            f"| {name} | {len(mine)} "
            f"| {statistics.median(r['mean_return'] for r in mine):.1f} ({returns}) "
            f"| {statistics.median(r['train_seconds'] for r in mine):.0f} ({seconds}) |"
        )
    for r in [r for r in records if r.get("task") == "flat DQN"][-1:]:
        lines.append(
            f"\nFlat DQN over {r['nb_outputs']:,} joint actions: output layer "
            f"{r['output_layer_parameters']:,} parameters ({r['output_layer_mb']:.0f} MB), "
            f"{r['step_seconds']:.2f} s a gradient step of batch {r['batch_size']}"
            + (
                f"; the branching network: {r['branching_parameters']:,} parameters in all, "
                f"{r['branching_step_seconds'] * 1000:.1f} ms a step."
                if "branching_step_seconds" in r
                else "."
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["run", "flat", "table"])
    parser.add_argument("--smoke", action="store_true", help="tiny, printed, not recorded")
    parser.add_argument("--library", choices=["qlearning4k", "tianshou"], default="qlearning4k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    c.add_results_argument(parser, "bipedal_bdq")
    args = parser.parse_args()
    if args.smoke:
        c.emit(run_one("qlearning4k", args.seed, smoke=True))
        c.emit(flat(smoke=True))
        return
    if args.command == "table":
        print(table(c.load_records(args.results)))
        return
    if args.command == "flat":
        record = flat(smoke=False)
    else:
        record = run_one(args.library, args.seed, smoke=False)
    c.emit(record)
    c.append(args.results, {**record, "command": "python " + " ".join(sys.argv)})


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
