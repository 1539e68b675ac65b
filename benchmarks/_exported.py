"""Runs policies written by `Agent.export` with their runtimes alone.

Neither qlearning4k nor Keras can be imported in this process (both are
blocked before anything else is imported), so an artifact that still needed
them fails here. Used by `tests/test_export.py` and `benchmarks/export.py`:

    python benchmarks/_exported.py JOBS.json

`JOBS.json` lists jobs `{"format", "path", "inputs", "outputs", "timing"}`:
`inputs` an `.npz` of the artifact's inputs by name, `outputs` the `.npz` to
write (`action`, `q_values`, and with `timing`, `[warm-up calls, calls, repeats]`,
`latency_us`: microseconds a call on the first state alone, by
`_common.seconds_per_call`, as `export.py` times `agent.act`).
"""

from __future__ import annotations

import json
import sys

for _blocked in ("qlearning4k", "keras"):
    sys.modules[_blocked] = None  # `import qlearning4k` now raises ImportError

import numpy as np  # noqa: E402


def _onnx(path: str):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(feeds: dict) -> dict:
        return dict(zip(names, session.run(None, feeds), strict=True))

    return run


def _tf_saved_model(path: str):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(feeds: dict) -> dict:
        return {
            k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in feeds.items()}).items()
        }

    return run


def _litert(path: str):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner()

    def run(feeds: dict) -> dict:
        return runner(**feeds)

    return run


_RUNTIMES = {"onnx": _onnx, "tf_saved_model": _tf_saved_model, "litert": _litert}


def _named(outputs: dict) -> dict:
    """The artifact's outputs as `action` (the integer one) and `q_values` (the float
    one): runtimes name them differently (`action`, `output_0`, ...)."""
    arrays = [np.asarray(v) for v in outputs.values()]
    action = next(a for a in arrays if a.dtype.kind in "iu")
    q_values = next(a for a in arrays if a.dtype.kind == "f")
    return {"action": action, "q_values": q_values}


def run_job(job: dict) -> None:
    run = _RUNTIMES[job["format"]](job["path"])
    with np.load(job["inputs"]) as data:
        feeds = {name: data[name] for name in data.files}
    results = _named(run(feeds))
    if job.get("timing"):
        from _common import seconds_per_call  # NumPy and the standard library only

        one = {name: value[:1] for name, value in feeds.items()}
        results["latency_us"] = np.asarray(1e6 * seconds_per_call(lambda: run(one), *job["timing"]))
    np.savez(job["outputs"], **results)


def main() -> None:
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        run_job(job)


if __name__ == "__main__":
    main()
