"""Exported policies act as the agent: `Agent.export` in every format of the backend.

For each case, an agent trains briefly (TRAIN_STEPS env steps), then plays
NB_STATES moves (epsilon 0.2, so states off the greedy path come too) while
the states (and the games' masks of possible actions) are recorded. Its
policy is exported in every format `Agent.export` offers on the backend in
use, and `benchmarks/_exported.py` runs the artifacts in a fresh process
where neither qlearning4k nor Keras can be imported. A row: how many of the
recorded states' actions equal `agent.act`'s (with the masks where the case
has them), the largest Q-value difference, and one state's latency in the
runtime beside `agent.act`'s (`_common.seconds_per_call`: the median of
10 repeats of 30 calls).

    KERAS_BACKEND=jax python benchmarks/export.py run     # one backend's rows, recorded
    python benchmarks/export.py table --markdown
    python benchmarks/export.py --smoke                    # tiny, printed only

Needs `pip install "qlearning4k[export,gym,minatar,minigrid]"`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as c
import numpy as np

HERE = Path(__file__).parent
EXAMPLES = HERE.parent / "examples"
# -- settings -----------------------------------------------------------------
CASES = ("Catch", "CartPole-v1", "MinAtar Breakout", "MinAtar Breakout C51", "MiniGrid masked")
NB_STATES = 1000
TRAIN_STEPS = 5000
EPSILON = 0.2  # of the recording moves
TIMING = (10, 30, 10)  # latency: seconds_per_call's warm-up calls, calls, repeats
SEED = 0
SMOKE_STATES, SMOKE_TRAIN_STEPS, SMOKE_TIMING = 20, 300, (1, 2, 2)
# -----------------------------------------------------------------------------


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case(name: str, seed: int):
    """`(agent, make_game, masked)` of a case, the agent untrained."""
    import keras

    from qlearning4k import Agent, from_sb3
    from qlearning4k.games import Catch, GymGame

    if name == "Catch":
        model = c.catch_model()
        return Agent(model, memory_size=TRAIN_STEPS, seed=seed), Catch, False
    if name == "CartPole-v1":
        settings = _example("cartpole_onnx").ZOO_SETTINGS
        agent, _ = from_sb3(settings, GymGame("CartPole-v1"), seed=seed)
        return agent, lambda seed=None: GymGame("CartPole-v1", seed=seed), False
    if name.startswith("MinAtar"):
        import minatar.gym

        minatar.gym.register_envs()
        example = _example("minatar_breakout")
        game = GymGame(example.ENV_ID)
        variant = "c51" if name.endswith("C51") else "dqn"  # a convnet, plain or C51
        frame_shape = game.get_frame().shape
        agent = example.build_agent(game.nb_actions, frame_shape, seed, variant)
        return agent, lambda seed=None: GymGame(example.ENV_ID, seed=seed), False
    if name != "MiniGrid masked":
        raise ValueError(f"Expected a case of {CASES}. Received: {name!r}")
    example = _example("minigrid_empty")  # dict frames, 3 of 7 actions allowed
    keras.utils.set_random_seed(seed)
    return example.build_agent(seed), example.make_game, True


def _record(agent, make_game, masked: bool, nb_states: int, rng) -> tuple:
    """`nb_states` states met in play (epsilon-greedy), and the games' masks."""
    from qlearning4k import FrameStack

    game, stack = make_game(seed=SEED + 1), FrameStack(agent.nb_frames)
    states, masks = [], []
    state = stack.reset(game.get_frame())
    while len(states) < nb_states:
        mask = np.zeros(agent.nb_actions, dtype=bool)
        mask[game.get_possible_actions()] = True
        states.append(state)
        masks.append(mask)
        if rng.random() < EPSILON:
            action = int(rng.choice(np.flatnonzero(mask)))
        else:
            action = agent.act(state, mask=mask if masked else None)
        game.play(action)
        if game.is_over():
            game.reset()
            state = stack.reset(game.get_frame())
        else:
            state = stack.push(game.get_frame())
    if isinstance(states[0], dict):
        return {k: np.stack([s[k] for s in states]) for k in states[0]}, np.stack(masks)
    return np.stack(states), np.stack(masks)


def run_case(name: str, smoke: bool) -> list[dict]:
    import keras

    from qlearning4k._internals import EXPORT_FORMATS as FORMATS
    from qlearning4k._internals import artifact_inputs

    keras.utils.set_random_seed(SEED)
    agent, make_game, masked = _case(name, SEED)
    steps = SMOKE_TRAIN_STEPS if smoke else TRAIN_STEPS
    agent.train(make_game(seed=SEED), total_timesteps=steps, learning_starts=steps // 5,
                verbose=0)  # fmt: skip
    nb_states = SMOKE_STATES if smoke else NB_STATES
    states, masks = _record(agent, make_game, masked, nb_states, np.random.default_rng(SEED))
    expected = np.asarray(agent.act(states, mask=masks if masked else None))
    q_values = agent.q_values(states)
    timing = SMOKE_TIMING if smoke else TIMING
    first = {k: v[0] for k, v in states.items()} if isinstance(states, dict) else states[0]
    mask = masks[0] if masked else None
    act_us = 1e6 * c.seconds_per_call(lambda: agent.act(first, mask=mask), *timing)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        jobs, inputs = [], os.path.join(folder, "inputs.npz")
        np.savez(inputs, **artifact_inputs(agent.model, states, masks if masked else None))
        for format in FORMATS[keras.backend.backend()]:
            ending = {"onnx": ".onnx", "litert": ".tflite"}.get(format, "")
            path = os.path.join(folder, format + ending)
            agent.export(path, format=format, mask=masked)
            outputs = os.path.join(folder, f"{format}.npz")
            jobs.append(
                {"format": format, "path": path, "inputs": inputs, "outputs": outputs,
                 "timing": timing}
            )  # fmt: skip
        with open(os.path.join(folder, "jobs.json"), "w") as f:
            json.dump(jobs, f)
        subprocess.run([sys.executable, str(HERE / "_exported.py"), f.name], check=True)
        for job in jobs:
            with np.load(job["outputs"]) as out:
                equal = (out["action"] == expected).reshape(nb_states, -1).all(axis=1)
                rows.append({
                    "case": name, "format": job["format"], "states": nb_states,
                    "equal_actions": int(equal.sum()),
                    "max_q_difference": float(np.abs(out["q_values"] - q_values).max()),
                    "max_abs_q": float(np.abs(q_values).max()),
                    "runtime_us": float(out["latency_us"]), "act_us": act_us,
                })  # fmt: skip
    return rows


def table(records: list[dict]) -> str:
    """A row a backend and format, over the cases: the actions equal to `agent.act`'s,
    the largest Q difference relative to the largest |Q| of its case, and the range of
    one state's latency in the runtime and in `agent.act`."""
    lines = [
        "| backend | format | cases | actions equal to `agent.act` "
        "| largest Q difference / largest \\|Q\\| | one state in the runtime, us "
        "| `agent.act`, us |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in records:
        groups.setdefault((r["versions"]["backend"], r["format"]), {})[r["case"]] = r  # latest
    for (backend, format), cases in groups.items():
        rows = list(cases.values())
        equal, states = sum(r["equal_actions"] for r in rows), sum(r["states"] for r in rows)
        relative = max(r["max_q_difference"] / r["max_abs_q"] for r in rows)
        runtime = [r["runtime_us"] for r in rows]
        act = [r["act_us"] for r in rows]
        lines.append(
            f"| {backend} | {format} | {len(rows)} | {equal:,} of {states:,} | {relative:.0e} "
            f"| {min(runtime):.0f} to {max(runtime):.0f} | {min(act):.0f} to {max(act):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["run", "table"])
    parser.add_argument("--smoke", action="store_true", help="tiny, printed, not recorded")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--markdown", action="store_true")
    c.add_results_argument(parser, "export")
    args = parser.parse_args()
    if args.command == "table":
        print(table(c.load_records(args.results)))
        return
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for name in args.cases.split(","):
        for row in run_case(name, args.smoke):
            record = {**row, "versions": c.library_versions("qlearning4k"), "machine": c.machine(),
                      "date": date}  # fmt: skip
            c.emit(record)
            if not args.smoke:
                c.append(args.results, {**record, "command": "python " + " ".join(sys.argv)})


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
