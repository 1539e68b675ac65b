"""Matrix products at the Zoo's layer size on each framework: GFLOP/s.

The RL Baselines3 Zoo's classic-control DQN entries train two hidden layers
of 256 on batches of 128, and a gradient step is mostly products of a
`(128, 256)` batch with `(256, 256)` weights. How fast a library's step can
be is bounded by how fast its framework multiplies such matrices on the
CPU, so this times just that, in each framework qlearning4k and the peer
run on: LAYERS products `x = relu(x @ w)` in one compiled call (jax.jit,
tf.function with and without XLA; PyTorch eagerly with 1 and 2 threads, as
Stable-Baselines3 runs it and as qlearning4k's traced step calls the same
`aten::mm`). The first WARMUP calls are not timed; each figure is the median
of REPEATS runs of CALLS calls. Each framework runs in its own process.

    python benchmarks/matmul.py --markdown
    python benchmarks/matmul.py --smoke   # the TensorFlow row, a couple of calls timed once
"""

from __future__ import annotations

import argparse

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
BATCH, WIDTH, LAYERS = 128, 256, 8
WARMUP, CALLS, REPEATS = 50, 300, 5
SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS = 1, 2, 1  # --smoke
SMOKE_FRAMEWORKS = ("tensorflow",)
FRAMEWORKS = ("jax", "tensorflow", "tensorflow-xla", "torch-1-thread", "torch-2-threads")
# -----------------------------------------------------------------------------


def _arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, WIDTH)).astype(np.float32)
    w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
    return x, w


def _call(framework: str):
    """A function that runs the LAYERS products once and waits for the result."""
    x, w = _arrays()
    if framework == "jax":
        import jax

        @jax.jit
        def layers(x, w):
            for _ in range(LAYERS):
                x = jax.nn.relu(x @ w)
            return x

        x, w = jax.device_put(x), jax.device_put(w)
        return lambda: layers(x, w).block_until_ready()
    if framework.startswith("tensorflow"):
        import tensorflow as tf

        @tf.function(jit_compile=framework.endswith("xla"))
        def layers(x, w):
            for _ in range(LAYERS):
                x = tf.nn.relu(x @ w)
            return x

        x, w = tf.constant(x), tf.constant(w)
        return lambda: layers(x, w).numpy()
    import torch

    torch.set_num_threads(1 if framework == "torch-1-thread" else 2)
    x, w = torch.from_numpy(x), torch.from_numpy(w)

    def layers():
        with torch.inference_mode():
            y = x
            for _ in range(LAYERS):
                y = torch.relu(y @ w)
            return y

    return layers


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global WARMUP, CALLS, REPEATS
    WARMUP, CALLS, REPEATS = SMOKE_WARMUP, SMOKE_CALLS, SMOKE_REPEATS


def worker(framework: str) -> None:
    per_product = c.seconds_per_call(_call(framework), WARMUP, CALLS, REPEATS) / LAYERS
    c.emit({
        "framework": framework, "us_per_product": per_product * 1e6,
        "gflops": 2 * BATCH * WIDTH * WIDTH / per_product / 1e9, "machine": c.machine(),
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="SMOKE_FRAMEWORKS only, tiny budgets")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.frameworks = ",".join(SMOKE_FRAMEWORKS)
    if args.worker:
        worker(args.worker)
        return
    backends = {f: "jax" if f == "jax" else "tensorflow" for f in FRAMEWORKS}
    records = c.run_rows(
        __file__, args.frameworks.split(","), backends, ["--smoke"] if args.smoke else []
    )
    if args.markdown:
        print(f"\n| framework | µs per ({BATCH}, {WIDTH}) x ({WIDTH}, {WIDTH}) product | GFLOP/s |")
        print("|---|---|---|")
        for r in records:
            print(f"| {r['framework']} | {r['us_per_product']:.1f} | {r['gflops']:.0f} |")


if __name__ == "__main__":
    main()
