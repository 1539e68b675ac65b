"""Every benchmark script runs at its `--smoke` budget: a change cannot break one unseen.

Each runs in a process of its own on the default backend, with tiny budgets
and without the peer libraries, and must print at least one JSON line. The
scripts whose extra is not installed here (JAX for `jax_step.py`, say) are
skipped with the reason. Most of a smoke run is starting Python and Keras
(5 to 7 s here), which uses one core: the runs go two at a time, started
once for all the tests.
"""

import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
# What a script needs beyond the test extras, to run at all.
NEEDS = {"jax_step.py": ("jax",), "matmul.py": ("jax", "torch")}
AT_ONCE = 2  # smoke runs at a time

pytestmark = pytest.mark.backend_free


def _missing(script: str) -> list[str]:
    return [m for m in NEEDS.get(script, ()) if importlib.util.find_spec(m) is None]


def _smoke(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as folder:  # no results file lands in the checkout
        return subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--smoke"],
            capture_output=True, text=True, timeout=300, cwd=folder, env=env,
        )  # fmt: skip


@functools.cache
def _runs() -> dict:
    """Every runnable script's smoke run, AT_ONCE at a time, the first time a test asks."""
    runnable = [script for script in SCRIPTS if not _missing(script)]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        return dict(zip(runnable, pool.map(_smoke, runnable), strict=True))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_at_its_smoke_budget(script):
    missing = _missing(script)
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    result = _runs()[script]
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records, result.stdout[-2000:]
