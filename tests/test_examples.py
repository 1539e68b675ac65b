"""Each example script runs end to end at its smoke budget."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_smoke_run(script, tmp_path):
    if script.stem == "sweep" and keras.backend.backend() != "tensorflow":
        pytest.skip("a Ray Tune sweep: run on the default backend only")
    if script.stem == "cartpole_onnx" and keras.backend.backend() != "tensorflow":
        pytest.skip("tests/test_export.py exports on every backend; the example runs on one")
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    if script.stem == "sweep":  # a results table, then the best trial
        assert "Best:" in result.stdout and "greedy return" in result.stdout
        return
    assert "Win rate" in result.stdout
    # The Gymnasium ones print returns (Gymnasium's draws need pygame).
    gym = ("cartpole", "cartpole_onnx", "minatar_breakout", "minigrid_empty", "bipedal_walker_bdq",
           "popgym_memory")  # fmt: skip
    if script.stem not in gym:
        assert list(tmp_path.rglob("*.gif")), os.listdir(tmp_path)


@pytest.mark.parametrize("variant", ["c51", "rainbow"])
def test_minatar_example_runs_each_rainbow_variant(variant, tmp_path):
    script = Path(__file__).parent.parent / "examples" / "minatar_breakout.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--variant", variant],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Greedy return" in result.stdout and "Win rate" in result.stdout


def test_minatar_example_names_the_variants_it_takes():
    import importlib.util

    script = Path(__file__).parent.parent / "examples" / "minatar_breakout.py"
    spec = importlib.util.spec_from_file_location("minatar_example", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with pytest.raises(ValueError, match="Received: variant='noisy'"):
        example.build_agent(3, (10, 10, 4), seed=0, variant="noisy")
