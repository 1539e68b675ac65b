"""Fingerprints of seeded runs: the SHA-256 of the weights each one trains.

A change meant to keep results (a refactoring, a faster step) must leave
these unchanged on TensorFlow's CPU backend, which is deterministic here:
run this script before and after, and compare the lines.

python benchmarks/fingerprints.py                 # every run, one JSON line each
python benchmarks/fingerprints.py --runs readme   # some of them
python benchmarks/fingerprints.py --smoke         # tiny budgets (CI)
python benchmarks/fingerprints.py --record        # also append to results/fingerprints.jsonl
"""

import argparse
import hashlib
import subprocess
import tempfile
from pathlib import Path

import _common as c
import keras
import numpy as np

from qlearning4k import Agent, PrioritizedExperienceReplay, dueling, from_sb3
from qlearning4k.games import Catch, GymGame, VectorCatch

# -- settings -----------------------------------------------------------------
RUNS = ("readme", "every_option", "zoo_acrobot", "vector_catch", "resumed")
README_GAMES = 1000  # the README example's default budget
OPTION_GAMES = 250  # tests/test_learning.py's every-option run
ACROBOT_STEPS = 20_000
VECTOR_STEPS = 20_000  # env steps of 64 VectorCatch copies
RESUME_GAMES, RESUME_STOP = 60, 35  # the run stops at game 35, checkpointed at 30
BUDGETS = {"readme": README_GAMES, "every_option": OPTION_GAMES, "zoo_acrobot": ACROBOT_STEPS,
           "vector_catch": VECTOR_STEPS, "resumed": 0}  # fmt: skip
SMOKE = {"readme": 5, "every_option": 5, "zoo_acrobot": 500, "vector_catch": 640, "resumed": 12}
RESULTS = Path(__file__).parent / "results" / "fingerprints.jsonl"
# Zoo's hyperparams/dqn.yml entry for Acrobot-v1 (as benchmarks/suite.py).
ACROBOT = {
    "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4,
    "batch_size": 128, "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99,
    "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
    "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
    "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip
# -----------------------------------------------------------------------------


def _digest(agent: Agent) -> str:
    """SHA-256 of the model's weights and optimizer variables, in order."""
    sha = hashlib.sha256()
    arrays = agent.model.get_weights() + [
        keras.ops.convert_to_numpy(v.value) for v in agent.model.optimizer.variables
    ]
    for array in arrays:
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()


def _catch_model(head_only: bool = False):
    layers = [
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
    ]
    if head_only:
        return keras.Sequential(layers)
    return keras.Sequential([*layers, keras.layers.Dense(3)])


def readme(budget: int) -> Agent:
    """The README example, seeded (examples/catch.py)."""
    model = _catch_model()
    model.compile(keras.optimizers.SGD(learning_rate=0.2), "mse")
    agent = Agent(model, seed=0)
    agent.train(Catch(10, seed=0), nb_epoch=budget, verbose=0)
    return agent


def every_option(budget: int) -> Agent:
    """Dueling heads, prioritized replay, a target network, Double DQN, 3-step returns."""
    model = dueling(_catch_model(head_only=True), nb_actions=3)
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    agent = Agent(model, memory=PrioritizedExperienceReplay(1000, seed=0), seed=0)
    agent.train(Catch(seed=0), nb_epoch=budget, batch_size=32, verbose=0,
                target_update=50, double_dqn=True, n_step=3)  # fmt: skip
    return agent


def zoo_acrobot(budget: int) -> Agent:
    """The Zoo's Acrobot settings through `from_sb3`."""
    agent, kwargs = from_sb3(ACROBOT, GymGame("Acrobot-v1"), seed=0)
    kwargs["total_timesteps"] = budget
    agent.train(GymGame("Acrobot-v1", seed=0), verbose=0, **kwargs)
    return agent


def vector_catch(budget: int) -> Agent:
    """64 copies of Catch in one vector game, the Zoo's kind of schedule."""
    model = _catch_model()
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    agent = Agent(model, memory_size=10_000, seed=0)
    agent.train(VectorCatch(64, seed=0), total_timesteps=budget, batch_size=64, verbose=0,
                train_freq=1, gradient_steps=8, learning_starts=1000,
                target_update_interval=500, epsilon=(1.0, 0.05), epsilon_rate=0.3)  # fmt: skip
    return agent


class _Stop(keras.callbacks.Callback):
    """Stops the run after game `games`, as if killed after its last checkpoint."""

    def __init__(self, games: int):
        super().__init__()
        self.games = games

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch == self.games - 1


def resumed(budget: int) -> Agent:
    """A checkpointed run stopped at game 35 (checkpoint of game 30) and resumed to 60."""
    games = budget or RESUME_GAMES
    stop = RESUME_STOP if budget == 0 else min(RESUME_STOP, games - 1)
    options = {"nb_epoch": games, "batch_size": 32, "verbose": 0, "checkpoint": 10,
               "target_update": 20, "double_dqn": True, "n_step": 2}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "ckpt")
        for attempt in ("stopped", "resumed"):
            keras.utils.set_random_seed(0)
            model = _catch_model()
            model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
            agent = Agent(model, memory=PrioritizedExperienceReplay(500, seed=0), seed=0)
            callbacks = [_Stop(stop)] if attempt == "stopped" else []
            agent.train(Catch(seed=0), checkpoint_path=path, resume=attempt == "resumed",
                        callbacks=callbacks, **options)  # fmt: skip
    return agent


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parent)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--smoke", action="store_true", help="tiny budgets")
    parser.add_argument("--record", action="store_true", help=f"append to {RESULTS}")
    args = parser.parse_args()
    budgets = SMOKE if args.smoke else BUDGETS
    for name in args.runs:
        keras.utils.set_random_seed(0)
        agent = globals()[name](budgets[name])
        record = {"benchmark": "fingerprints", "run": name, "budget": budgets[name],
                  "sha256": _digest(agent), "commit": _commit(), **c.versions()}  # fmt: skip
        c.emit(record)
        if args.record and not args.smoke:
            c.append(RESULTS, record)


if __name__ == "__main__":
    main()
