"""Seconds per gradient step of each value head: Q-values, C51 and QR-DQN.

`--network acrobot` (the default): the network and batch of the RL
Baselines3 Zoo's Acrobot-v1 entries (two hidden layers of 256, batch 128,
Adam, a target network, `from_sb3` on TensorFlow compiling with XLA): the
plain DQN head (3 Q-values, Huber loss), QR-DQN (25 quantiles an action, as
the Zoo's `qrdqn.yml`) and C51 (51 atoms). Each compiled call runs 4
gradient steps (train_freq=4, gradient_steps=-1) and the acting Q-values.

`--network minatar`: the MinAtar paper's network for Breakout
(`examples/minatar_breakout.py`: one 3x3 convolution of 16 filters over
the 10x10x4 frame, a dense layer of 128, 3 actions), batch 32, one gradient
step a call (a step every env step), Adam for every head so that only the
head differs, XLA on TensorFlow.

Batches are sampled once and filled in place, as training fills them; the
first WARMUP calls (tracing and compiling) are not timed. Each backend runs
in its own process; the heads run side by side in it, REPEATS times in turn,
and the median is reported. On JAX it also reports each compiled step's
floating-point operations as XLA's cost analysis counts them (the gradient
steps and the acting Q-values): the arithmetic each head needs, whatever
the time.

    python benchmarks/heads.py --markdown
    python benchmarks/heads.py --network minatar --markdown
    python benchmarks/heads.py --smoke   # TensorFlow, a couple of calls timed once
"""

from __future__ import annotations

import argparse
import statistics

import _common as c

# -- settings -----------------------------------------------------------------
HEADS = ("dqn", "qrdqn", "c51")
NB_QUANTILES, NB_ATOMS = 25, 51
WARMUP, CALLS, REPEATS = c.STEP_WARMUP, c.STEP_CALLS, 5
SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS = 1, 2, 1  # --smoke
NETWORKS = c.STEP_NETWORKS  # each network's frame, actions, batch and gradient steps a call
ZOO = c.ZOO_ACROBOT
MINATAR_LEARNING_RATE, MINATAR_ADAM_EPSILON = 2.5e-4, 0.01 / 32  # the example's C51 Adam
# -----------------------------------------------------------------------------


def _acrobot(head: str):
    import keras

    from qlearning4k import C51, Agent

    if head == "qrdqn":
        config = {**ZOO, "policy_kwargs": {"net_arch": [256, 256], "n_quantiles": NB_QUANTILES}}
        return c.zoo_acrobot_agent(config, algo="qrdqn")
    agent = c.zoo_acrobot_agent(ZOO)
    if head == "dqn":
        return agent
    # C51: the same network with 51 logits an action, the same optimizer.
    layers, nb_actions = agent.model.layers, agent.model.output_shape[-1]
    model = keras.Sequential([keras.Input(agent.model.input_shape[1:]), *layers[:-1],
                              keras.layers.Dense(nb_actions * NB_ATOMS)])  # fmt: skip
    model.compile(agent.model.optimizer.__class__.from_config(agent.model.optimizer.get_config()),
                  jit_compile=agent.model.jit_compile)  # fmt: skip
    return Agent(model, seed=0, distribution=C51(nb_atoms=NB_ATOMS, v_min=-100.0, v_max=0.0))


def _minatar(head: str):
    import keras

    from qlearning4k import C51, Agent, QuantileRegression

    frame, nb_actions = NETWORKS["minatar"]["frame"], NETWORKS["minatar"]["nb_actions"]
    keras.utils.set_random_seed(0)
    distribution = {
        "dqn": None, "qrdqn": QuantileRegression(NB_QUANTILES), "c51": C51(NB_ATOMS, 0.0, 20.0)
    }[head]  # fmt: skip
    model = keras.Sequential([
        keras.Input((1, *frame)),
        keras.layers.Reshape(frame),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(nb_actions * (1 if distribution is None else distribution.nb_atoms)),
    ])  # fmt: skip
    jit = True if keras.backend.backend() == "tensorflow" else "auto"
    optimizer = keras.optimizers.Adam(MINATAR_LEARNING_RATE, epsilon=MINATAR_ADAM_EPSILON)
    model.compile(optimizer, keras.losses.Huber() if head == "dqn" else None, jit_compile=jit)
    return Agent(model, seed=0, distribution=distribution)


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global WARMUP, CALLS, REPEATS
    WARMUP, CALLS, REPEATS = SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS


def _timer(network: str, head: str):
    """A function that times CALLS calls (the first WARMUP calls made here), and on
    JAX the step's flops."""
    agent = _acrobot(head) if network == "acrobot" else _minatar(head)
    return c.step_timer(agent, network, WARMUP, CALLS)


def worker(library: str, network: str) -> None:
    import keras

    timers, flops = {}, {}
    for head in HEADS:
        timers[head], flops[head] = _timer(network, head)
    seconds = {head: [] for head in HEADS}
    for _ in range(REPEATS):
        for head in HEADS:
            seconds[head].append(timers[head]())
    plain = statistics.median(seconds["dqn"])
    for head in HEADS:
        median = statistics.median(seconds[head])
        flops_ratio = flops[head] / flops["dqn"] if flops[head] else None
        c.emit({
            "backend": keras.backend.backend(), "network": network, "head": head,
            "ms_per_gradient_step": median * 1e3,
            "ratio_to_dqn": median / plain, "flops_ratio_to_dqn": flops_ratio,
            "machine": c.machine(),
        })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated")
    parser.add_argument("--network", default="acrobot", choices=sorted(NETWORKS))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="TensorFlow, tiny budgets (the SMOKE_ settings)")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.backends = "tensorflow"
    if args.worker:
        worker(args.worker, args.network)
        return
    extra = ["--network", args.network]
    if args.smoke:
        extra.append("--smoke")
    records = c.run_workers(__file__, args.backends.split(","), False, extra)
    if args.markdown:  # a row a backend; XLA's flop counts (JAX) printed after
        print("\n| network | backend | DQN, ms | QR-DQN, ms (vs DQN) | C51, ms (vs DQN) |")
        print("|---|---|---|---|---|")
        for backend in dict.fromkeys(r["backend"] for r in records):
            heads = {r["head"]: r for r in records if r["backend"] == backend}
            cells = [f"{heads['dqn']['ms_per_gradient_step']:.3f}"] + [
                f"{heads[h]['ms_per_gradient_step']:.3f} ({heads[h]['ratio_to_dqn']:.2f}x)"
                for h in ("qrdqn", "c51")
            ]
            print(f"| {args.network} | {backend} | " + " | ".join(cells) + " |")
        for r in records:
            if r["flops_ratio_to_dqn"] is not None and r["head"] != "dqn":
                print(f"{r['backend']} {r['head']}: {r['flops_ratio_to_dqn']:.2f}x DQN's flops")


if __name__ == "__main__":
    main()
