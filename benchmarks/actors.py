"""Game copies on Ray actors: env steps a second with 1 and 2 actors, and the learner's pace.

The game is Catch whose every step costs 2 ms more (a `time.sleep`, as a
slow simulator or emulator would wait), so that acting, not learning, is the
bottleneck; a sleep uses no core, which lets 2 actors and the learner share
these 2 cores. Each actor plays 4 copies. The learner is kept busy
(`gradient_steps=8` per env step received: more than it can do), so its
gradient steps a second are its full pace, measured from the optimizer's
step counter between game ends, past the first fifth of the run. "No actors"
is `train()` of the same model on plain Catch with 8 gradient steps per
step: the learner's pace when nothing else runs. Median of `--repeats` runs,
TensorFlow (the optimizer's counter is read in place).

python benchmarks/actors.py --markdown
python benchmarks/actors.py --smoke   # no actors and 1 actor, SMOKE_ENV_STEPS env steps, once
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as c
import keras
import numpy as np
import ray

from qlearning4k import Agent
from qlearning4k.actors import RayActors
from qlearning4k.games import Catch

# -- settings -----------------------------------------------------------------
STEP_SECONDS = 0.002
NB_COPIES = 4
GRADIENT_STEPS = 8
BATCH_SIZE = 32
ACTORS = (0, 1, 2)  # rows: no actors (plain train()), then Ray actors
ENV_STEPS, REPEATS, LEARNING_STARTS = 16_000, 3, 1_000
# --smoke: no actors and one actor, a few games' worth of env steps, once.
SMOKE_ACTORS, SMOKE_ENV_STEPS, SMOKE_REPEATS, SMOKE_LEARNING_STARTS = (0, 1), 400, 1, 50
# -----------------------------------------------------------------------------


class SlowCatch(Catch):
    """Catch, each step 2 ms slower."""

    def play(self, action):
        time.sleep(STEP_SECONDS)
        super().play(action)


class _Pace(keras.callbacks.Callback):
    """Records (time, env steps so far, gradient steps so far) at each game end."""

    def __init__(self):
        super().__init__()
        self.records, self.env_steps = [], 0

    def on_epoch_end(self, epoch, logs=None):
        self.env_steps += int(logs["steps"])
        iterations = int(np.asarray(self.model.optimizer.iterations))
        self.records.append((time.perf_counter(), self.env_steps, iterations))

    def rates(self) -> tuple[float, float]:
        """Env steps and gradient steps a second, past the first fifth of the run."""
        first = self.records[len(self.records) // 5]
        last = self.records[-1]
        seconds = last[0] - first[0]
        return (last[1] - first[1]) / seconds, (last[2] - first[2]) / seconds


def _agent(seed: int) -> Agent:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((1, 10, 10)),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return Agent(model, memory_size=50_000, seed=seed)


def measure(
    nb_actors: int, env_steps: int, seed: int, learning_starts: int = LEARNING_STARTS
) -> tuple[float, float]:
    """(env steps/s, gradient steps/s) with `nb_actors` actors, or none (0)."""
    agent, pace = _agent(seed), _Pace()
    common = {"total_timesteps": env_steps, "batch_size": BATCH_SIZE, "epsilon": 0.1,
              "gradient_steps": GRADIENT_STEPS, "learning_starts": learning_starts,
              "verbose": 0, "callbacks": [pace]}  # fmt: skip
    if nb_actors == 0:  # its pace settles sooner: a quarter of the env steps
        agent.train(Catch(seed=seed), **{**common, "total_timesteps": env_steps // 4})
    else:
        actors = RayActors(nb_actors=nb_actors, nb_copies=NB_COPIES, steps_per_batch=25)
        agent.train(SlowCatch(seed=seed), actors=actors, **common)
    return pace.rates()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=ENV_STEPS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="no actors and 1 actor, tiny budgets, once")  # fmt: skip
    args = parser.parse_args()
    actors, learning_starts = ACTORS, LEARNING_STARTS
    if args.smoke:
        actors, learning_starts = SMOKE_ACTORS, SMOKE_LEARNING_STARTS
        args.env_steps, args.repeats = SMOKE_ENV_STEPS, SMOKE_REPEATS
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = {}
    for nb_actors in actors:
        runs = [
            measure(nb_actors, args.env_steps, seed, learning_starts)
            for seed in range(args.repeats)
        ]
        rows[nb_actors] = tuple(statistics.median(r[i] for r in runs) for i in range(2))
        env, grad = rows[nb_actors]
        c.emit({"benchmark": "actors", "actors": nb_actors, "env_steps_per_second": env,
                "gradient_steps_per_second": grad, "runs": runs,
                "machine": c.machine()})  # fmt: skip
        print(f"{nb_actors} actors: {env:,.0f} env steps/s, {grad:,.0f} gradient steps/s "
              f"(runs: {runs})", flush=True)  # fmt: skip
    ray.shutdown()
    alone = rows[0][1]
    lines = [
        "| actors | env steps/s | vs 1 actor | learner gradient steps/s | vs no actors |",
        "|---|---|---|---|---|",
        f"| none (plain Catch, no sleep) | {rows[0][0]:,.0f} | | {alone:,.0f} | 1.00x |",
    ]
    for n in sorted(set(rows) - {0}):
        env, grad = rows[n]
        lines.append(f"| {n} | {env:,.0f} | {env / rows[1][0]:.2f}x | {grad:,.0f} | "
                     f"{grad / alone:.2f}x |")  # fmt: skip
    print("\n".join(lines) if args.markdown else "")


if __name__ == "__main__":
    main()
