"""Seconds per gradient step of each value head: Q-values, C51 and QR-DQN.

The network and batch of the RL Baselines3 Zoo's Acrobot-v1 entries (two
hidden layers of 256, batch 128, Adam, a target network, `from_sb3` on
TensorFlow compiling with XLA): the plain DQN head (3 Q-values, Huber loss),
QR-DQN (25 quantiles an action, as the Zoo's `qrdqn.yml`) and C51 (51 atoms).
Each compiled call runs GRADIENT_STEPS gradient steps (on batches sampled
once, filled in place as training fills them) and the acting Q-values; the
first WARMUP calls (tracing and compiling) are not timed. Each backend runs
in its own process; the heads run side by side in it, REPEATS times in turn,
and the median is reported. On JAX it also reports each compiled step's
floating-point operations as XLA's cost analysis counts them (one gradient
step and the acting Q-values): the arithmetic each head needs, whatever the
time.

    python benchmarks/heads.py --markdown
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
HEADS = ("dqn", "qrdqn", "c51")
BATCH, GRADIENT_STEPS = 128, 4  # the Zoo's batch; train_freq=4, gradient_steps=-1
WARMUP, CALLS, REPEATS = 20, 200, 5
OBSERVATION, NB_ACTIONS = 6, 3  # Acrobot-v1
ZOO = {
    "n_timesteps": 1e5, "learning_rate": 6.3e-4, "batch_size": BATCH,
    "target_update_interval": 250, "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip
# -----------------------------------------------------------------------------


def _agent(head: str):
    import keras

    from qlearning4k import C51, Agent, from_sb3
    from qlearning4k.games import GymGame

    game = GymGame("Acrobot-v1")
    if head == "qrdqn":
        config = {**ZOO, "policy_kwargs": {"net_arch": [256, 256], "n_quantiles": 25}}
        return from_sb3(config, game, seed=0, algo="qrdqn")[0]
    agent = from_sb3(ZOO, game, seed=0)[0]
    if head == "dqn":
        return agent
    # C51: the same network with 51 logits an action, the same optimizer.
    layers = agent.model.layers
    model = keras.Sequential([keras.Input((1, OBSERVATION)), *layers[:-1],
                              keras.layers.Dense(NB_ACTIONS * 51)])  # fmt: skip
    model.compile(agent.model.optimizer.__class__.from_config(agent.model.optimizer.get_config()),
                  jit_compile=agent.model.jit_compile)  # fmt: skip
    return Agent(model, seed=0, distribution=C51(nb_atoms=51, v_min=-100.0, v_max=0.0))


def _timer(head: str):
    """A function that times CALLS calls (the first WARMUP calls made here), and on
    JAX the step's flops."""
    from qlearning4k._learner import _StepConfig

    agent = _agent(head)
    config = _StepConfig(batch_size=BATCH, max_steps=GRADIENT_STEPS, target_copied=True)
    learner = agent._learner(config)
    rng = np.random.default_rng(0)
    frames = learner.buffer((GRADIENT_STEPS * 2 * BATCH + 1, 1, OBSERVATION), np.float32)
    floats = learner.buffer((GRADIENT_STEPS * BATCH + 1, learner.width), np.float32)
    frames[:] = rng.uniform(-1, 1, frames.shape)
    rows = floats[:-1]
    rows[:, 0] = rng.integers(NB_ACTIONS, size=len(rows))
    rows[:, 1] = -1.0
    rows[:, 2] = np.where(rng.random(len(rows)) < 0.01, 0.0, 0.99)
    rows[:, 3] = 1.0
    learner.begin()
    flops = None
    if hasattr(learner, "_jit_step"):  # JAX: XLA counts the compiled step's operations
        cost = learner._jit_step.lower(learner._state, frames, floats).compile().cost_analysis()
        flops = (cost[0] if isinstance(cost, list) else cost).get("flops")
    for _ in range(WARMUP):
        learner.step(frames, floats, GRADIENT_STEPS)

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            learner.step(frames, floats, GRADIENT_STEPS)
        return (time.perf_counter() - start) / (CALLS * GRADIENT_STEPS)

    return timed, flops


def worker(library: str) -> None:
    import keras

    timers, flops = {}, {}
    for head in HEADS:
        timers[head], flops[head] = _timer(head)
    seconds = {head: [] for head in HEADS}
    for _ in range(REPEATS):
        for head in HEADS:
            seconds[head].append(timers[head]())
    plain = statistics.median(seconds["dqn"])
    for head in HEADS:
        median = statistics.median(seconds[head])
        flops_ratio = flops[head] / flops["dqn"] if flops[head] else None
        c.emit({
            "backend": keras.backend.backend(), "head": head, "ms_per_gradient_step": median * 1e3,
            "ratio_to_dqn": median / plain, "flops_ratio_to_dqn": flops_ratio,
            "machine": c.machine(),
        })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    records = c.run_workers(__file__, args.backends.split(","), False, [])
    if args.markdown:
        print("\n| backend | head | ms per gradient step | vs the DQN head | flops vs DQN |")
        print("|---|---|---|---|---|")
        for r in records:
            flops = "" if r["flops_ratio_to_dqn"] is None else f"{r['flops_ratio_to_dqn']:.2f}x"
            print(f"| {r['backend']} | {r['head']} | {r['ms_per_gradient_step']:.3f} | "
                  f"{r['ratio_to_dqn']:.2f}x | {flops} |")  # fmt: skip


if __name__ == "__main__":
    main()
