"""Every benchmark script runs at its `--smoke` budget: a change cannot break one unseen.

Each runs on the default backend, with tiny budgets and without the peer
libraries, and must print at least one JSON line. The scripts whose extra is
not installed here (JAX for `jax_step.py`, say) are skipped with the reason.
Starting Python and Keras costs 5 to 7 s a process, more than most smoke
runs: the scripts run one after another in AT_ONCE processes
(`_smoke_runner.py`), started once for all the tests, but for those that
must start Keras themselves (OWN_PROCESS), which get a process each.
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
RUNNER = Path(__file__).parent / "_smoke_runner.py"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
# What a script needs beyond the test extras, to run at all.
NEEDS = {"jax_step.py": ("jax",), "matmul.py": ("jax", "torch")}
OWN_PROCESS = {"jax_step.py"}  # picks its Keras backend before importing Keras
AT_ONCE = 2  # processes at a time

# One xdist worker runs them all (they share one pool of smoke runs).
pytestmark = [pytest.mark.backend_free, pytest.mark.xdist_group("benchmarks")]


def _missing(script: str) -> list[str]:
    return [m for m in NEEDS.get(script, ()) if importlib.util.find_spec(m) is None]


def _run_scripts(scripts: list[str], output: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(RUNNER), str(output), *(str(BENCHMARKS / s) for s in scripts)]
    subprocess.run(command, timeout=600, env=env, check=False)


@functools.cache
def _runs() -> dict:
    """Every runnable script's (exit status, stdout, stderr), the first time a test asks."""
    runnable = [script for script in SCRIPTS if not _missing(script)]
    shared = [script for script in runnable if script not in OWN_PROCESS]
    groups = [shared[i::AT_ONCE] for i in range(AT_ONCE)]
    groups += [[script] for script in runnable if script in OWN_PROCESS]
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(AT_ONCE) as pool:
        output = Path(folder)
        list(pool.map(lambda group: _run_scripts(group, output), groups))
        runs = {}
        for script in runnable:
            rc = output / f"{script}.rc"  # absent where the runner itself died
            runs[script] = (
                int(rc.read_text()) if rc.exists() else None,
                (output / f"{script}.out").read_text() if rc.exists() else "",
                (output / f"{script}.err").read_text() if rc.exists() else "no exit status",
            )
        return runs


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_at_its_smoke_budget(script):
    missing = _missing(script)
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    returncode, stdout, stderr = _runs()[script]
    assert returncode == 0, stderr[-3000:]
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert records, stdout[-2000:]
