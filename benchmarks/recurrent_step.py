"""qlearning4k's gradient step on sequences against the same step written by hand (JAX, TensorFlow).

A recurrent Q-network as `examples/popgym_memory.py` builds it (a Dense
encoder of 64, a GRU of 64, a Q-value head; 4 inputs, 4 actions), Adam and
the Huber loss, R2D2's step: a batch of 32 sequences of 20 steps with a
burn-in of 5, unrolled from their stored states, a target network, Double
DQN. qlearning4k's call (GRADIENT_STEPS gradient steps, then the acting
Q-values and next states of one copy) against the same arithmetic written
directly in the backend's own operations: the GRU as Keras computes it
(`reset_after`), unrolled by `lax.scan` on JAX and by a `tf.while_loop`
on TensorFlow, Adam's update by hand, the same number of calls. Both start
from the same weights on the same batch; `same_loss` says whether their
first losses agree. Each backend runs in its own process, both sides of a
backend side by side, median of REPEATS rounds.

    python benchmarks/recurrent_step.py            # JAX and TensorFlow, into results/
    python benchmarks/recurrent_step.py --smoke    # tiny budgets, the backends installed
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
UNITS, FRAME, NB_ACTIONS = 64, 4, 4
BATCH, LENGTH, BURN_IN = 32, 20, 5
GRADIENT_STEPS = 4  # a call's gradient steps (R2D2 and the example: train_freq 4)
GAMMA, LEARNING_RATE = 0.99, 1e-3
WARMUP, CALLS, REPEATS = 10, 50, 5
SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS = 1, 2, 1  # --smoke
BACKENDS = {"jax": "jax", "tensorflow": "tensorflow"}
# -----------------------------------------------------------------------------


def _agent():
    import keras

    from qlearning4k import Agent, SequenceReplay, recurrent

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [keras.Input((FRAME,)), keras.layers.Dense(UNITS, activation="relu")]
    )
    model = recurrent(keras.layers.GRU(UNITS), (FRAME,), NB_ACTIONS, encoder=encoder)
    model.compile(keras.optimizers.Adam(LEARNING_RATE), keras.losses.Huber())
    memory = SequenceReplay(1000, sequence_length=LENGTH, burn_in=BURN_IN, overlap=BURN_IN)
    return Agent(model, memory=memory, seed=0)


def _filled(learner):
    """The call's buffers with one random batch in every slot."""
    buffers = learner.call_buffers(1, (1, FRAME), np.float32)
    rng = np.random.default_rng(0)
    learned = LENGTH - BURN_IN
    for batch in buffers.batches:
        batch.frames[...] = rng.normal(size=batch.frames.shape)
        batch.states[...] = rng.normal(size=batch.states.shape) * 0.3
        batch.fresh[...] = 0.0
        batch.actions[...] = rng.integers(0, NB_ACTIONS, batch.actions.shape)
        batch.rewards[...] = rng.normal(size=batch.rewards.shape)
        batch.discounts[...] = GAMMA
        batch.weights[...] = 1.0
        batch.bootstrap[...] = np.arange(1, learned + 1)
    buffers.acting[...] = rng.normal(size=buffers.acting.shape)
    return buffers


def _hand_math(ops):
    """The step's arithmetic in a backend's operations (`ops`: a dict of them)."""

    def gru(weights, x, h):  # x (batch, time, features): Keras' GRU with reset_after
        kernel, recurrent_kernel, bias = weights
        inputs = ops["matmul3"](x, kernel) + bias[0]  # (batch, time, 3 units)

        def cell(h, x_t):
            inner = h @ recurrent_kernel + bias[1]
            z = ops["sigmoid"](x_t[:, :UNITS] + inner[:, :UNITS])
            r = ops["sigmoid"](x_t[:, UNITS : 2 * UNITS] + inner[:, UNITS : 2 * UNITS])
            candidate = ops["tanh"](x_t[:, 2 * UNITS :] + r * inner[:, 2 * UNITS :])
            return z * h + (1.0 - z) * candidate

        return ops["scan"](cell, h, inputs)  # (outputs (batch, time, units), last h)

    def forward(weights, frames, h):
        encoder_w, encoder_b, *core, head_w, head_b = weights
        x = ops["relu"](ops["matmul3"](frames, encoder_w) + encoder_b)
        outputs, h = gru(core, x, h)
        return ops["matmul3"](outputs, head_w) + head_b, h

    def loss(weights, target, frames, states, actions, rewards, discounts):
        burn, rest = frames[:, :BURN_IN], frames[:, BURN_IN:]
        stop = ops["stop_gradient"]
        online_h = stop(forward(weights, burn, states)[1])
        target_h = forward(target, burn, states)[1]
        q_all, _ = forward(weights, rest, online_h)  # (batch, learned + 1, actions)
        q_target, _ = forward(target, rest, target_h)
        q, fixed = q_all[:, :-1], stop(q_all[:, 1:])
        best = ops["one_hot"](ops["argmax"](fixed), NB_ACTIONS)  # Double DQN
        y = rewards + discounts * ops["sum"](best * stop(q_target[:, 1:]))
        taken = ops["one_hot"](actions, NB_ACTIONS)
        error = taken * (y[..., None] - q)  # 0 at the actions not taken
        size = ops["abs"](error)
        huber = ops["where"](size <= 1.0, 0.5 * error**2, size - 0.5)
        return ops["mean"](huber) * 1.0  # Keras' Huber: the mean over actions, then rows

    def adam(weights, m, v, t, grads):
        t = t + 1.0
        scale = LEARNING_RATE * ops["sqrt"](1.0 - 0.999**t) / (1.0 - 0.9**t)
        m = [0.9 * a + 0.1 * g for a, g in zip(m, grads, strict=True)]
        v = [0.999 * a + 0.001 * g * g for a, g in zip(v, grads, strict=True)]
        weights = [
            w - scale * a / (ops["sqrt"](b) + 1e-7) for w, a, b in zip(weights, m, v, strict=True)
        ]
        return weights, m, v, t

    def act(weights, frame, h):
        q, h = forward(weights, frame[:, None], h)
        return q[:, 0], h

    return loss, adam, act


def _by_hand_jax(agent, buffers):
    import jax
    import jax.numpy as jnp

    def scan(cell, h, inputs):
        def body(h, x_t):
            h = cell(h, x_t)
            return h, h

        last, outputs = jax.lax.scan(body, h, jnp.swapaxes(inputs, 0, 1))
        return jnp.swapaxes(outputs, 0, 1), last

    ops = {
        "matmul3": lambda x, w: x @ w, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
        "relu": jax.nn.relu, "scan": scan, "stop_gradient": jax.lax.stop_gradient,
        "one_hot": lambda i, n: jax.nn.one_hot(i, n), "argmax": lambda q: jnp.argmax(q, -1),
        "sum": lambda x: jnp.sum(x, -1), "abs": jnp.abs, "where": jnp.where,
        "mean": jnp.mean, "sqrt": jnp.sqrt,
    }  # fmt: skip
    loss, adam, act = _hand_math(ops)

    @jax.jit
    def step(state, frames, states, actions, rewards, discounts):
        weights, target, m, v, t = state
        value, grads = jax.value_and_grad(loss)(
            weights, target, frames, states, actions, rewards, discounts
        )
        weights, m, v, t = adam(weights, m, v, t, grads)
        return (weights, target, m, v, t), value

    acting = jax.jit(act)
    weights = [jnp.asarray(w) for w in agent.model.get_weights()]
    state = (weights, list(weights), [jnp.zeros_like(w) for w in weights],
             [jnp.zeros_like(w) for w in weights], jnp.zeros(()))  # fmt: skip
    arrays = [
        (jnp.asarray(b.frames), jnp.asarray(b.states), jnp.asarray(b.actions.astype(np.int32)),
         jnp.asarray(b.rewards), jnp.asarray(b.discounts))
        for b in buffers.batches
    ]  # fmt: skip
    frame, h = jnp.asarray(buffers.acting), jnp.asarray(buffers.acting_states)
    held = {"state": state}

    def call():
        values = []
        for i in range(GRADIENT_STEPS):
            held["state"], value = step(held["state"], *arrays[i])
            values.append(value)
        q, after = acting(held["state"][0], frame, h)
        np.asarray(q), np.asarray(after)
        return float(values[0])

    return call


def _by_hand_tensorflow(agent, buffers):
    import tensorflow as tf

    def scan(cell, h, inputs):
        steps = inputs.shape[1]
        outputs = tf.TensorArray(tf.float32, size=steps)

        def body(t, h, outputs):
            h = cell(h, inputs[:, t])
            return t + 1, h, outputs.write(t, h)

        _, last, outputs = tf.while_loop(lambda t, *_: t < steps, body, (0, h, outputs))
        return tf.transpose(outputs.stack(), (1, 0, 2)), last

    ops = {
        "matmul3": lambda x, w: tf.einsum("btf,fu->btu", x, w), "sigmoid": tf.sigmoid,
        "tanh": tf.tanh, "relu": tf.nn.relu, "scan": scan, "stop_gradient": tf.stop_gradient,
        "one_hot": lambda i, n: tf.one_hot(i, n), "argmax": lambda q: tf.argmax(q, -1),
        "sum": lambda x: tf.reduce_sum(x, -1), "abs": tf.abs, "where": tf.where,
        "mean": tf.reduce_mean, "sqrt": tf.sqrt,
    }  # fmt: skip
    loss, adam, act = _hand_math(ops)
    weights = [tf.Variable(w) for w in agent.model.get_weights()]
    target = [tf.constant(w) for w in agent.model.get_weights()]
    m = [tf.Variable(tf.zeros_like(w)) for w in weights]
    v = [tf.Variable(tf.zeros_like(w)) for w in weights]
    t = tf.Variable(0.0)

    @tf.function(autograph=False)
    def step(frames, states, actions, rewards, discounts):
        with tf.GradientTape() as tape:
            value = loss(weights, target, frames, states, actions, rewards, discounts)
        grads = tape.gradient(value, weights)
        new, m_new, v_new, t_new = adam(weights, m, v, t, grads)
        for variable, x in zip(weights + m + v + [t], new + m_new + v_new + [t_new], strict=True):
            variable.assign(x)
        return value

    acting = tf.function(lambda frame, h: act(weights, frame, h), autograph=False)
    arrays = [
        (tf.constant(b.frames), tf.constant(b.states), tf.constant(b.actions.astype(np.int32)),
         tf.constant(b.rewards), tf.constant(b.discounts))
        for b in buffers.batches
    ]  # fmt: skip
    frame, h = tf.constant(buffers.acting), tf.constant(buffers.acting_states)

    def call():
        values = [step(*arrays[i]) for i in range(GRADIENT_STEPS)]
        q, after = acting(frame, h)
        q.numpy(), after.numpy()
        return float(values[0])

    return call


def worker(backend: str) -> dict:
    import keras

    from qlearning4k._internals import StepConfig

    if keras.backend.backend() != backend:
        raise SystemExit(f"The {backend} row runs with KERAS_BACKEND={backend}")
    agent = _agent()
    learner = agent._learner(
        StepConfig(batch_size=BATCH, max_steps=GRADIENT_STEPS, target_copied=True, double_dqn=True)
    )
    buffers = _filled(learner)
    states = buffers.acting_states.copy()
    by_hand = {"jax": _by_hand_jax, "tensorflow": _by_hand_tensorflow}[backend](agent, buffers)

    def ours():
        buffers.acting_states[...] = states  # the same acting state at every call
        return float(learner.step(buffers, GRADIENT_STEPS)[0][0])

    first = ours(), by_hand()  # both from the model's initial weights
    same = bool(np.isclose(first[0], first[1], rtol=1e-4))
    for _ in range(WARMUP):
        ours(), by_hand()
    seconds = {"qlearning4k": [], "by hand": []}
    for _ in range(REPEATS):
        for name, call in (("qlearning4k", ours), ("by hand", by_hand)):
            start = time.perf_counter()
            for _ in range(CALLS):
                call()
            seconds[name].append((time.perf_counter() - start) / (CALLS * GRADIENT_STEPS))
    ours_ms, hand_ms = (statistics.median(seconds[k]) * 1e3 for k in seconds)
    return {
        "benchmark": "recurrent_step", "backend": backend, "ms_per_gradient_step": ours_ms,
        "by_hand_ms_per_gradient_step": hand_ms, "ratio": ours_ms / hand_ms,
        "same_loss": same, "losses": first, "batch": BATCH, "length": LENGTH,
        "burn_in": BURN_IN, "units": UNITS, "machine": c.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def main() -> None:
    global WARMUP, CALLS, REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (the SMOKE_ settings)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        WARMUP, CALLS, REPEATS = SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS
    if args.worker:
        print(json.dumps(worker(args.worker)), flush=True)
        return
    extra = ["--smoke"] if args.smoke else []
    rows = [row for row in BACKENDS if importlib.util.find_spec(BACKENDS[row]) is not None]
    records = c.run_rows(os.path.abspath(__file__), rows, BACKENDS, extra)
    if not args.smoke:
        for record in records:
            c.append(os.path.join(c.RESULTS, "recurrent_step.jsonl"), record)
    for r in records:
        print(f"{r['backend']:>10}: {r['ms_per_gradient_step']:.2f} ms a gradient step, by hand "
              f"{r['by_hand_ms_per_gradient_step']:.2f} ms, ratio {r['ratio']:.2f}, same loss "
              f"{r['same_loss']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
