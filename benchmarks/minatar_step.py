"""One training step of the MinAtar Breakout network, per framework: milliseconds.

`examples/minatar_breakout.py` trains a gradient step every env step, so a
run's seconds are mostly this step: the MinAtar paper's network (a 3x3
convolution of 16 filters on `(10, 10, 4)` frames, a dense layer of 128, 3
actions), a batch of 32, centred RMSProp, the Huber loss, a target network.
qlearning4k's compiled call (one gradient step and the acting Q-values of
one state) runs on each Keras backend, and on TensorFlow also with XLA
(`jit_compile=True`). The peer's row is the step Stable-Baselines3's DQN
runs for the same network (`benchmarks/minatar_breakout.py`'s features
extractor), written out in PyTorch as its `train()` does it, with a thread a core:
the target network's Q-values, the online Q-values, the Huber loss,
backward, RMSProp, and the greedy action of one state; Stable-Baselines3's
Python around it (its replay buffer, logging) is not in this figure. The
"without convolution" row is qlearning4k's TensorFlow call with the convolution
left out (the frames flattened into the dense layer of 128): how much of
the step the convolution and the 1,024 inputs of the dense layer cost.

The first WARMUP calls are not timed; each figure is the median of REPEATS
runs of CALLS calls. Each row runs in its own process.

    python benchmarks/minatar_step.py --markdown
    python benchmarks/minatar_step.py --smoke   # the TensorFlow row, a couple of calls timed once
"""

from __future__ import annotations

import argparse

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
FRAME, NB_ACTIONS, BATCH = (10, 10, 4), 3, 32
WARMUP, CALLS, REPEATS = 50, 300, 5
SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS = 1, 2, 1  # --smoke
SMOKE_STEPS = ("tensorflow",)
PEER = "sb3 step (pytorch)"
STEPS = {  # row: (Keras backend, XLA on TensorFlow, with the convolution)
    "tensorflow": ("tensorflow", False, True),
    "tensorflow-xla": ("tensorflow", True, True),
    "jax": ("jax", False, True),
    "torch": ("torch", False, True),
    "tensorflow without convolution": ("tensorflow", False, False),
    PEER: ("tensorflow", False, True),  # the peer's step: PyTorch itself
}
# -----------------------------------------------------------------------------


def _batch(rng):
    frames = (rng.random((2 * BATCH + 1, 1, *FRAME)) < 0.1).astype(np.uint8)
    actions = rng.integers(NB_ACTIONS, size=BATCH)
    rewards = rng.random(BATCH).astype(np.float32)
    return frames, actions, rewards


def _ours(xla: bool, convolution: bool):
    """A function that runs one compiled call of qlearning4k's training step."""
    import keras

    from qlearning4k import Agent
    from qlearning4k._internals import StepConfig

    body = [keras.layers.Conv2D(16, 3, activation="relu")] if convolution else []
    model = keras.Sequential([
        keras.Input((1, *FRAME)), keras.layers.Reshape(FRAME), *body, keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dense(NB_ACTIONS),
    ])  # fmt: skip
    optimizer = keras.optimizers.RMSprop(
        2.5e-4, rho=0.95, epsilon=(0.01 / NB_ACTIONS) ** 2, centered=True
    )
    jit = xla if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(optimizer, keras.losses.Huber(), jit_compile=jit)
    agent = Agent(model, memory_size=1_000, seed=0)
    learner = agent._learner(StepConfig(batch_size=BATCH, max_steps=1, target_copied=True))
    frames, actions, rewards = _batch(np.random.default_rng(0))
    buffers = learner.call_buffers(1, frames.shape[1:], np.uint8)
    batch = buffers.batches[0]
    batch.states[...], batch.next_states[...] = frames[:BATCH], frames[BATCH : 2 * BATCH]
    buffers.acting[...] = frames[2 * BATCH :]
    batch.actions[:], batch.rewards[:], batch.discounts[:] = actions, rewards, 0.99
    learner.begin()
    return lambda: learner.step(buffers, 1)


def _sb3_step():
    """A function that runs Stable-Baselines3 DQN's step for this network, in PyTorch."""
    import torch

    torch.set_num_threads(c.cores())  # 2, or 1 when taskset pins the run
    torch.manual_seed(0)

    def network():
        return torch.nn.Sequential(
            torch.nn.Conv2d(FRAME[2], 16, 3), torch.nn.ReLU(), torch.nn.Flatten(),
            torch.nn.Linear(16 * (FRAME[0] - 2) * (FRAME[1] - 2), 128), torch.nn.ReLU(),
            torch.nn.Linear(128, NB_ACTIONS),
        )  # fmt: skip

    online, target = network(), network()
    target.load_state_dict(online.state_dict())
    optimizer = torch.optim.RMSprop(
        online.parameters(), lr=2.5e-4, alpha=0.95, eps=0.01, centered=True
    )
    frames, actions, rewards = _batch(np.random.default_rng(0))
    frames = torch.from_numpy(frames[:, 0]).float().permute(0, 3, 1, 2)  # channels first
    states, next_states, acting = frames[:BATCH], frames[BATCH:-1], frames[-1:]
    actions = torch.from_numpy(actions).long()[:, None]
    rewards = torch.from_numpy(rewards)

    def step():
        with torch.no_grad():
            y = rewards + 0.99 * target(next_states).max(dim=1)[0]
        q = online(states).gather(1, actions).squeeze(1)
        loss = torch.nn.functional.smooth_l1_loss(q, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            return online(acting).argmax(dim=1).item()

    return step


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global WARMUP, CALLS, REPEATS
    WARMUP, CALLS, REPEATS = SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS


def worker(row: str) -> None:
    _, xla, convolution = STEPS[row]
    call = _sb3_step() if row == PEER else _ours(xla, convolution)
    seconds = c.seconds_per_call(call, WARMUP, CALLS, REPEATS)
    c.emit({"step": row, "ms_per_step": seconds * 1e3, "machine": c.machine()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated rows")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="SMOKE_STEPS only, tiny budgets")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.steps = ",".join(SMOKE_STEPS)
    if args.worker:
        worker(args.worker)
        return
    backends = {row: backend for row, (backend, *_) in STEPS.items()}
    records = c.run_rows(
        __file__, args.steps.split(","), backends, ["--smoke"] if args.smoke else []
    )
    if args.markdown:
        print("\n| step | ms per step |")
        print("|---|---|")
        for r in records:
            print(f"| {r['step']} | {r['ms_per_step']:.3f} |")


if __name__ == "__main__":
    main()
