"""qlearning4k's JAX gradient step against the same step written by hand in JAX.

The network, batch and settings of the RL Baselines3 Zoo's Acrobot-v1 DQN
entry (two hidden layers of 256, batch 128, Adam with the gradients clipped
to a global norm, the Huber loss, a target network), as `heads.py` builds
them through `from_sb3`: qlearning4k's compiled call (4 gradient steps and
the acting Q-values, through Keras' `stateless_call`, compiled loss and
optimizer) against a `jax.jit` of the same arithmetic written directly with
`jax.numpy` (the same `fori_loop`, the same buffers in and out). The ratio
is what the library's step costs over what plain JAX gives for this
network; below 1 on the CPU, where the library keeps the output layer's
gradient apart from its transpose and the hand-written step lets XLA fold
them into a slow product (docs/backends.md). Both run in one process, side
by side, median of REPEATS rounds.

    KERAS_BACKEND=jax python benchmarks/jax_step.py
    python benchmarks/jax_step.py --smoke   # tiny budgets, on JAX whatever KERAS_BACKEND says
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
WARMUP, CALLS, REPEATS = c.STEP_WARMUP, c.STEP_CALLS, 7
SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS = 1, 2, 1  # --smoke
# -----------------------------------------------------------------------------


def _by_hand(agent, batch: int, steps: int, nb_actions: int):
    """The hand-written step: a jitted function of (state, frames, floats)."""
    import jax
    import jax.numpy as jnp

    optimizer = agent.model.optimizer
    learning_rate = float(optimizer.learning_rate.numpy())
    beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
    epsilon, clip = optimizer.epsilon, optimizer.global_clipnorm

    def forward(weights, x):
        x = x.reshape(x.shape[0], -1)
        for i in range(0, len(weights) - 2, 2):
            x = jax.nn.relu(x @ weights[i] + weights[i + 1])
        return x @ weights[-2] + weights[-1]

    def huber(error):  # Keras' Huber loss (delta 1), averaged over the actions
        size = jnp.abs(error)
        return jnp.where(size <= 1.0, 0.5 * error**2, size - 0.5) / nb_actions

    def body(i, carry):
        weights, m, v, t, target, losses, frames, floats = carry
        both = jax.lax.dynamic_slice_in_dim(frames, i * 2 * batch, 2 * batch)
        states, next_states = both[:batch], both[batch:]
        rows = jax.lax.dynamic_slice_in_dim(floats, i * batch, batch)
        actions = rows[:, 0].astype(jnp.int32)
        y = rows[:, 1] + rows[:, 2] * forward(target, next_states).max(axis=1)

        def loss(weights):
            q = jnp.take_along_axis(forward(weights, states), actions[:, None], axis=1)[:, 0]
            return jnp.mean(huber(y - q) * rows[:, 3])

        value, grads = jax.value_and_grad(loss)(weights)
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads))
        grads = [g * jnp.minimum(1.0, clip / norm) for g in grads]
        t = t + 1
        m = [a + (g - a) * (1 - beta_1) for a, g in zip(m, grads, strict=True)]
        v = [a + (g * g - a) * (1 - beta_2) for a, g in zip(v, grads, strict=True)]
        alpha = learning_rate * jnp.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        weights = [
            w - alpha * a / (jnp.sqrt(b) + epsilon) for w, a, b in zip(weights, m, v, strict=True)
        ]
        return weights, m, v, t, target, losses.at[i].set(value), frames, floats

    def step(state, frames, floats):
        count = floats[-1, 0].astype(jnp.int32)
        carry = (*state, jnp.zeros((steps,), jnp.float32), frames, floats)
        weights, m, v, t, target, losses, _, _ = jax.lax.fori_loop(0, count, body, carry)
        q = forward(weights, frames[steps * 2 * batch :])
        return (weights, m, v, t, target), jnp.concatenate([losses, q.reshape(-1)])

    weights = [jnp.array(w.value) for w in agent.model.trainable_variables]
    state = (
        weights,
        [jnp.zeros_like(w) for w in weights],
        [jnp.zeros_like(w) for w in weights],
        jnp.zeros((), jnp.float32),
        [jnp.array(w) for w in weights],
    )
    return jax.jit(step, donate_argnums=0), state


def _same_results(batch: int, steps: int, nb_actions: int, calls: int = 3) -> bool:
    """Whether both steps, from the same weights on the same batches, return
    the same losses and acting Q-values (to float32 rounding)."""
    import jax

    from qlearning4k._internals import StepConfig

    agent = c.zoo_acrobot_agent()
    step, state = _by_hand(agent, batch, steps, nb_actions)
    learner = agent._learner(StepConfig(batch_size=batch, max_steps=steps, target_copied=True))
    buffers = c.fill_step_buffers(learner.call_buffers(1, (1, 6), np.float32), "acrobot")
    learner.begin()
    same = True
    for _ in range(calls):
        losses, q, _ = learner.step(buffers, steps)
        # The hand-written step reads the call's two arrays itself (its own unpacking).
        frames, floats = jax.device_put(buffers.frames), jax.device_put(buffers.floats)
        state, out = step(state, frames, floats)
        same &= np.allclose(np.concatenate([losses, q.ravel()]), np.asarray(out), rtol=1e-5)
    return bool(same)


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process, on JAX."""
    global WARMUP, CALLS, REPEATS
    WARMUP, CALLS, REPEATS = SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported: the step is JAX's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budgets (the SMOKE_ settings), on JAX")  # fmt: skip
    if parser.parse_args().smoke:
        _use_smoke_settings()
    import jax

    from qlearning4k._internals import StepConfig

    spec = c.STEP_NETWORKS["acrobot"]
    batch, steps, nb_actions = spec["batch"], spec["gradient_steps"], spec["nb_actions"]
    same = _same_results(batch, steps, nb_actions)
    ours, _ = c.step_timer(c.zoo_acrobot_agent(), "acrobot", WARMUP, CALLS)
    agent = c.zoo_acrobot_agent()
    step, state = _by_hand(agent, batch, steps, nb_actions)
    learner = agent._learner(StepConfig(batch_size=batch, max_steps=steps, target_copied=True))
    buffers = c.fill_step_buffers(learner.call_buffers(1, (1, 6), np.float32), "acrobot")
    buffers.floats[-1, 0] = steps  # the gradient steps to run (the learner's step() writes its own)
    frames, floats = jax.device_put(buffers.frames), jax.device_put(buffers.floats)
    held = {"state": state}

    def call():
        held["state"], out = step(held["state"], frames, floats)
        np.asarray(out)

    for _ in range(WARMUP):
        call()

    def by_hand() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            call()
        return (time.perf_counter() - start) / (CALLS * steps)

    seconds = {"qlearning4k": [], "by hand": []}
    for _ in range(REPEATS):
        seconds["qlearning4k"].append(ours())
        seconds["by hand"].append(by_hand())
    ours_ms, hand_ms = (statistics.median(seconds[k]) * 1e3 for k in seconds)
    c.emit({
        "benchmark": "jax_step", "network": "acrobot", "ms_per_gradient_step": ours_ms,
        "by_hand_ms_per_gradient_step": hand_ms, "ratio": ours_ms / hand_ms,
        "same_results": same, "machine": c.machine(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
