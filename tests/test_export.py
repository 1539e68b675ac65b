"""`Agent.export`: the greedy policy as an artifact, run in a process without qlearning4k.

Each case trains a small agent briefly, records states by playing, and
exports its policy in every format the backend offers. One fresh process a
format (`benchmarks/_exported.py`, which blocks `qlearning4k` and `keras`)
runs all the artifacts with their runtime alone; its actions must equal
`agent.act` and its Q-values `agent.q_values`.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from test_branching import TwinCatch
from test_frame_parts import PartsCatch
from test_frame_parts import _model as parts_model

from qlearning4k import C51, Agent, FrameStack, branching, dueling
from qlearning4k._internals import EXPORT_FORMATS as FORMATS
from qlearning4k._internals import artifact_inputs
from qlearning4k.games import Catch

RUNNER = Path(__file__).parent.parent / "benchmarks" / "_exported.py"
GRID = 10
NB_STATES = 64
FORMATS_HERE = FORMATS[keras.backend.backend()]
# The artifacts with and without a mask input, for ONNX on the default backend;
# elsewhere the masked one alone (its graph holds the unmasked one's, and its
# Q-values are compared too): each conversion costs seconds.
MASKS = {
    format: (False, True)
    if (format, keras.backend.backend()) == ("onnx", "tensorflow")
    else (True,)
    for format in FORMATS_HERE
}
ENDINGS = {"onnx": ".onnx", "litert": ".tflite", "tf_saved_model": ""}


def _dense(nb_frames, frame_shape, outputs):
    model = keras.Sequential(
        [keras.Input((nb_frames, *frame_shape)), keras.layers.Flatten()]
        + [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(outputs)]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def _catch():
    return Agent(_dense(2, (GRID, GRID), 3), seed=0), lambda seed: Catch(GRID, seed=seed)


def _c51():
    c51 = C51(nb_atoms=11, v_min=-1.0, v_max=1.0)
    return Agent(_dense(1, (GRID, GRID), 3 * 11), seed=0, distribution=c51), Catch


def _noisy_dueling():
    body = keras.Sequential([keras.Input((1, GRID, GRID)), keras.layers.Flatten()])
    model = dueling(body, 3, units=32, noisy=True)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return Agent(model, seed=0), Catch


def _branching():
    body = keras.Sequential([keras.Input((1, 5, 10)), keras.layers.Flatten()])
    model = branching(body, (3, 3), units=32)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return Agent(model, seed=0), lambda seed: TwinCatch(seed=seed)


def _parts():
    return Agent(parts_model(nb_frames=2, hidden=32), seed=0), PartsCatch


CASES = {
    "catch-stacked": _catch,
    "c51": _c51,
    "noisy-dueling": _noisy_dueling,
    "branching": _branching,
    "dict-parts": _parts,
}


def _recorded_states(agent, make_game, rng):
    """`NB_STATES` states met by random play (a batch, or a dict of batches)."""
    game, stack, states = make_game(seed=1), FrameStack(agent.nb_frames), []
    state = stack.reset(game.get_frame())
    while len(states) < NB_STATES:
        states.append(state)
        counts = np.atleast_1d(game.nb_actions)
        action = [int(rng.integers(n)) for n in counts]
        game.play(action if len(action) > 1 else action[0])
        if game.is_over():
            game.reset()
            state = stack.reset(game.get_frame())
        else:
            state = stack.push(game.get_frame())
    if isinstance(states[0], dict):
        return {key: np.stack([s[key] for s in states]) for key in states[0]}
    return np.stack(states)


def _masks(agent, rng):
    """Random masks, each allowing one action or more in every part."""
    parts = agent.nb_actions if isinstance(agent.nb_actions, tuple) else (agent.nb_actions,)
    masks = []
    for n in parts:
        mask = rng.random((NB_STATES, n)) < 0.5
        mask[np.arange(NB_STATES), rng.integers(n, size=NB_STATES)] = True
        masks.append(mask)
    return np.concatenate(masks, axis=1)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Each case's agent (trained briefly), states, masks and expected outputs."""
    rng = np.random.default_rng(0)
    made = {}
    for name, build in CASES.items():
        keras.utils.set_random_seed(0)
        agent, make_game = build()
        agent.train(make_game(seed=0), nb_epoch=10, batch_size=16, verbose=0)
        states, masks = _recorded_states(agent, make_game, rng), _masks(agent, rng)
        made[name] = {
            "agent": agent,
            "feeds": artifact_inputs(agent.model, states, masks),
            "action": np.asarray(agent.act(states)),
            "masked": np.asarray(agent.act(states, mask=masks)),
            "q_values": agent.q_values(states),
        }
    return made


@pytest.fixture(scope="module", params=FORMATS_HERE)
def exported(request, cases, tmp_path_factory):
    """The artifacts' outputs in one fresh process for the format: by case, with and
    without a mask."""
    format, folder = request.param, tmp_path_factory.mktemp(request.param)
    jobs = []
    for name, case in cases.items():
        for masked in MASKS[format]:
            path = folder / f"{name}-{masked}{ENDINGS[format]}"
            case["agent"].export(path, format=format, mask=masked)
            feeds = dict(case["feeds"])
            if not masked:
                del feeds["mask"]
            np.savez(folder / f"{name}-{masked}-in.npz", **feeds)
            jobs.append(
                {
                    "format": format,
                    "path": str(path),
                    "inputs": str(folder / f"{name}-{masked}-in.npz"),
                    "outputs": str(folder / f"{name}-{masked}-out.npz"),
                }
            )
    (folder / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run([sys.executable, str(RUNNER), str(folder / "jobs.json")], check=True)
    return format, {
        (name, masked): dict(np.load(folder / f"{name}-{masked}-out.npz"))
        for name in cases
        for masked in MASKS[format]
    }


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_artifact_acts_as_the_agent(exported, cases, name, masked):
    format, outputs = exported
    if masked not in MASKS[format]:
        pytest.skip(f"{format} on {keras.backend.backend()}: the masked artifact only")
    case, outputs = cases[name], outputs[(name, masked)]
    expected = case["masked"] if masked else case["action"]
    np.testing.assert_array_equal(outputs["action"], expected)
    np.testing.assert_allclose(outputs["q_values"], case["q_values"], rtol=1e-4, atol=1e-5)


def test_the_runner_cannot_import_qlearning4k(tmp_path):
    """The check is real: in the runner's process qlearning4k does not import."""
    probe = f"import runpy, sys; runpy.run_path({str(RUNNER)!r}); import qlearning4k"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode != 0 and "import of qlearning4k halted" in done.stderr


@pytest.mark.parametrize(
    "path, format, message",
    [
        ("policy.onnx", "openvino", "writes the formats"),
        ("policy.onnx", "keras", "writes the formats"),
        ("policy", "onnx", "a file ending in '.onnx'"),
    ],
)
def test_bad_exports_say_what_is_expected(tmp_path, path, format, message):
    agent, _ = _catch()
    with pytest.raises(ValueError, match=message):
        agent.export(tmp_path / path, format=format)
