"""Exact resume: a run killed with SIGKILL and resumed ends like an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

WORKER = Path(__file__).parent / "resume_worker.py"


def _run(*args, wait=True):
    command = [sys.executable, str(WORKER), *map(str, args)]
    if wait:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return None
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


# The schedules and counters a checkpoint keeps are the backends' alike: the
# original algorithm and env-step budgets run on the default backend; "modern"
# (whose learner keeps a target network and priorities) runs on every backend.
_DEFAULT_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the run's state: the default backend only"
)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param((), marks=_DEFAULT_ONLY),
        ("--modern",),
        pytest.param(("--steps",), marks=_DEFAULT_ONLY),
    ],
    ids=["original", "modern", "env steps"],
)
def test_sigkilled_run_resumes_to_the_same_result(tmp_path, options):
    """`--modern`: target network, Double DQN, n-step returns and prioritized replay too,
    on stacked frames;
    `--steps`: a budget and schedules in env steps."""
    _run(tmp_path / "reference", tmp_path / "reference.npz", *options)

    killed = _run(
        tmp_path / "ckpt", tmp_path / "killed.npz", "--pause-after", 12, *options, wait=False
    )
    marker = tmp_path / "killed.npz.paused"
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed.npz").exists()
    assert (tmp_path / "ckpt" / "run.pkl").exists()  # the checkpoint of game 10

    _run(tmp_path / "ckpt", tmp_path / "resumed.npz", "--resume", *options)
    with np.load(tmp_path / "reference.npz") as ref, np.load(tmp_path / "resumed.npz") as res:
        np.testing.assert_array_equal(ref["steps"], res["steps"])
        np.testing.assert_array_equal(ref["wins"], res["wins"])
        weights = [name for name in ref.files if name.startswith("arr_")]
        for name in weights:
            if keras.backend.backend() == "tensorflow":
                np.testing.assert_array_equal(ref[name], res[name])  # bit for bit
            else:
                np.testing.assert_allclose(ref[name], res[name], rtol=1e-5, atol=1e-6)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    _run(tmp_path / "none", tmp_path / "fresh.npz", "--resume")
    with np.load(tmp_path / "fresh.npz") as fresh:
        assert len(fresh["steps"]) == 24
