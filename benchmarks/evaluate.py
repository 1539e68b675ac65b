"""Evaluating a policy: `agent.evaluate` against a per-step `model(obs)` loop, on CartPole-v1.

Both play the same 100 seeded episodes with the same greedy moves (the
games are `GymGame`s seeded alike): `agent.evaluate` plays them side by side
with one compiled call per step, the loop one episode after the other with
one eager `model(state)` call per move, as a user would write it. The model
is a fixed linear policy that balances the pole (push towards where the pole
falls), so the episodes are long, as a trained agent's are.

    python benchmarks/evaluate.py --markdown
    KERAS_BACKEND=jax python benchmarks/evaluate.py --markdown
    python benchmarks/evaluate.py --smoke   # SMOKE_EPISODES episodes, one timed run
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c
import numpy as np

# -- settings -----------------------------------------------------------------
ENV_ID = "CartPole-v1"
EPISODES = 100
SEED = 10_000
REPEATS = 3  # timed runs of each; the median is reported
SMOKE_EPISODES, SMOKE_REPEATS = 1, 1  # --smoke (an episode lasts 500 steps)
# -----------------------------------------------------------------------------


def balancing_model():
    """Q-values whose greedy move pushes the cart towards where the pole falls."""
    import keras

    model = keras.Sequential(
        [keras.Input((1, 4)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)]
    )
    lean = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)  # pole angle + angular velocity
    model.layers[-1].set_weights([np.stack([-lean, lean], axis=1)])
    model.compile("sgd", "mse")
    return model


def with_evaluate(agent, episodes: int = EPISODES) -> tuple[float, np.ndarray]:
    from qlearning4k.games import GymGame

    start = time.perf_counter()
    results = agent.evaluate(GymGame(ENV_ID), nb_games=episodes, seed=SEED, max_steps=None)
    return time.perf_counter() - start, results["scores"]


def with_loop(model, episodes: int = EPISODES) -> tuple[float, np.ndarray]:
    """The loop a user writes: one game at a time, `model(state)` for every move."""
    import keras

    from qlearning4k.games import GymGame

    start = time.perf_counter()
    returns = np.zeros(episodes)
    for i in range(episodes):
        game = GymGame(ENV_ID, seed=SEED + i)  # its first episode, as evaluate() plays it
        while not game.is_over():
            state = game.get_frame()[None, None]  # (1, nb_frames=1, 4)
            q = keras.ops.convert_to_numpy(model(state, training=False))
            game.play(int(np.argmax(q[0])))
            returns[i] += game.get_score()
    return time.perf_counter() - start, returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets: SMOKE_EPISODES, once")
    args = parser.parse_args()
    episodes = SMOKE_EPISODES if args.smoke else EPISODES
    if args.smoke:
        args.repeats = SMOKE_REPEATS
    from qlearning4k import Agent

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    model = balancing_model()
    agent = Agent(model, seed=0)
    with_evaluate(agent, episodes)  # the first call compiles; not timed
    times = {"evaluate": [], "loop": []}
    for _ in range(args.repeats):  # alternated
        seconds, ours = with_evaluate(agent, episodes)
        times["evaluate"].append(seconds)
        seconds, theirs = with_loop(model, episodes)
        times["loop"].append(seconds)
        if not np.array_equal(ours, theirs):
            raise SystemExit("agent.evaluate and the loop played different episodes")
    steps = int(ours.sum())  # one reward a step
    record = {"benchmark": "evaluate", "backend": backend, "episodes": episodes,
              "env_steps": steps, "mean_return": float(ours.mean()),
              "evaluate_seconds": times["evaluate"], "loop_seconds": times["loop"]}  # fmt: skip
    c.emit(record)
    if args.markdown:
        ev, lo = (c.median_spread(times[k]) for k in ("evaluate", "loop"))
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print("| backend | episodes | env steps | `agent.evaluate` s | `model(obs)` loop s "
              "| speed-up |\n|---|---|---|---|---|---|")  # fmt: skip
        print(f"| {backend} | {episodes} | {steps} | {ev[0]:.2f} ({ev[1]:.2f}-{ev[2]:.2f}) | "
              f"{lo[0]:.2f} ({lo[1]:.2f}-{lo[2]:.2f}) | {lo[0] / ev[0]:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
