"""Time to solve Catch: training seconds and env steps until the greedy policy wins 95%.

Every EVAL_EVERY env steps training pauses (the pause is not counted) and the
greedy policy plays 200 seeded games; the first time it wins at least 95% the
run is solved. The solved policy then plays 1000 fresh games. Training seconds
include everything inside `Agent.train` (or SB3's `learn`), the first call's
tracing and compilation too; that one-time cost is also shown on its own.
The `jax+cache` backend runs JAX a second time with its persistent
compilation cache filled by a first, unreported run (see `_common.run_workers`).

    python benchmarks/time_to_solve.py --peer --markdown   # TF, JAX, JAX cached, PyTorch + SB3
    python benchmarks/time_to_solve.py --backends jax --seeds 1
    python benchmarks/time_to_solve.py --smoke   # TensorFlow, one seed, SMOKE_ budgets, no peer
"""

from __future__ import annotations

import argparse
import os

import _common as c

# -- settings -----------------------------------------------------------------
SEEDS = 3
EVAL_EVERY = 250  # env steps between evaluations (at the end of a game)
MAX_GAMES = 4000  # give up after this many games
# qlearning4k's best configuration found for Catch (see docs/performance.md).
BEST = {
    "nb_parallel": 16,
    "gradient_steps": 1,
    "batch_size": 64,
    "learning_rate": 4e-3,
    "epsilon": (1.0, 0.05),
    "epsilon_games": 100,  # epsilon decays over the first 100 games
    "memory_size": 10_000,
    "gamma": 0.9,
    "single_core": True,  # the training loop and the backend share one core
}
PEER_TRAIN_FREQ = 4  # the peer's best configuration
PEER_TOTAL_STEPS = 20_000  # its epsilon decays over the first 20% of these
# --smoke: two rounds of the parallel games, one evaluation, epsilon over the first round.
SMOKE_MAX_GAMES, SMOKE_EVAL_EVERY, SMOKE_EPSILON_GAMES = 32, 144, 16
# -----------------------------------------------------------------------------


def _use_smoke_settings() -> None:
    """--smoke: the SMOKE_ budgets in place of the full ones, in this process."""
    global MAX_GAMES, EVAL_EVERY, BEST
    MAX_GAMES, EVAL_EVERY = SMOKE_MAX_GAMES, SMOKE_EVAL_EVERY
    BEST = {**BEST, "epsilon_games": SMOKE_EPSILON_GAMES}


def ours(seed: int) -> dict:
    import keras

    from qlearning4k import Agent
    from qlearning4k.games import Catch

    keras.utils.set_random_seed(seed)
    model = c.catch_model(learning_rate=BEST["learning_rate"])
    agent = Agent(model, memory_size=BEST["memory_size"], seed=seed)
    watch = c.Stopwatch()

    class Solve(keras.callbacks.Callback):
        env_steps, next_eval, solved = 0, EVAL_EVERY, None

        def on_epoch_end(self, epoch, logs):
            self.env_steps += logs["steps"]
            if self.env_steps < self.next_eval:
                return
            self.next_eval += EVAL_EVERY
            with watch.pause():
                rate = agent.evaluate(Catch(c.GRID_SIZE), c.EVAL_GAMES, c.EVAL_SEED)
                rate = rate["win_rate"]
            if rate >= c.THRESHOLD:
                self.solved = (watch.elapsed(), self.env_steps)
                self.model.stop_training = True

    solve = Solve()
    agent.train(
        Catch(c.GRID_SIZE, seed=seed),
        nb_epoch=MAX_GAMES,
        batch_size=BEST["batch_size"],
        gamma=BEST["gamma"],
        epsilon=BEST["epsilon"],
        epsilon_rate=BEST["epsilon_games"] / MAX_GAMES,
        nb_parallel=BEST["nb_parallel"],
        gradient_steps=BEST["gradient_steps"],
        single_core=BEST["single_core"],
        verbose=0,
        callbacks=[solve],
    )
    seconds, steps = solve.solved or (float("nan"), solve.env_steps)
    final = agent.evaluate(Catch(c.GRID_SIZE), c.FINAL_GAMES, c.FINAL_SEED)["win_rate"]
    return {"seconds": seconds, "env_steps": steps, "final_win_rate": final,
            "compile_seconds": c.compile_seconds(agent)}  # fmt: skip


def peer(seed: int) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    model = c.sb3_dqn(seed, PEER_TRAIN_FREQ, PEER_TOTAL_STEPS)
    watch = c.Stopwatch()

    class Solve(BaseCallback):
        solved = None

        def _on_step(self):
            if self.num_timesteps % EVAL_EVERY:
                return True
            with watch.pause():
                rate = c.evaluate(c.sb3_greedy(self.model), c.EVAL_GAMES, c.EVAL_SEED)
            if rate >= c.THRESHOLD:
                self.solved = (watch.elapsed(), self.num_timesteps)
                return False
            return True

    solve = Solve()
    model.learn(PEER_TOTAL_STEPS, callback=solve)
    seconds, steps = solve.solved or (float("nan"), PEER_TOTAL_STEPS)
    final = c.evaluate(c.sb3_greedy(model), c.FINAL_GAMES, c.FINAL_SEED)
    return {"seconds": seconds, "env_steps": steps, "final_win_rate": final}


def worker(library: str, seeds: int) -> None:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow") if library == "qlearning4k" else "torch"
    run = ours if library == "qlearning4k" else peer
    for seed in range(seeds):
        c.emit({"benchmark": "time_to_solve", "library": library, "backend": backend,
                "seed": seed, **run(seed)})  # fmt: skip


def table(records) -> str:
    peer_rows = [r for r in records if r["library"] == "stable-baselines3"]
    peer_seconds = c.median_spread(r["seconds"] for r in peer_rows)[0] if peer_rows else None
    lines = [
        "| library | backend | training s, median (min-max) | of which compile s | "
        "env steps, median | final win rate (1000 games) | SB3 s / ours |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in records:
        groups.setdefault((r["library"], r["backend"]), []).append(r)
    for (library, backend), rows in groups.items():
        med, lo, hi = c.median_spread(r["seconds"] for r in rows)
        compile_s = c.median_spread(r.get("compile_seconds", float("nan")) for r in rows)[0]
        steps = c.median_spread(r["env_steps"] for r in rows)[0]
        final = c.median_spread(r["final_win_rate"] for r in rows)[0]
        ratio = (
            f"{peer_seconds / med:.2f}x"
            if peer_seconds and library != "stable-baselines3"
            else "1x"
        )
        compile_text = "" if compile_s != compile_s else f"{compile_s:.2f}"
        lines.append(f"| {library} | {backend} | {med:.2f} ({lo:.2f}-{hi:.2f}) | {compile_text} | "
                     f"{steps:.0f} | {final:.3f} | {ratio} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", default=f"tensorflow,jax,{c.WARM_CACHE},torch", help="comma-separated"
    )
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--peer", action="store_true", help="also run Stable-Baselines3 DQN")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help="TensorFlow, one seed, tiny budgets, no peer")  # fmt: skip
    c.add_results_argument(parser, "time_to_solve")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        _use_smoke_settings()
        args.backends, args.seeds, args.peer = "tensorflow", 1, False
    if args.worker:
        worker(args.worker, args.seeds)
        return
    extra = ["--seeds", str(args.seeds)]
    if args.smoke:
        extra.append("--smoke")
    records = c.run_workers(__file__, args.backends.split(","), args.peer, extra)
    c.finish(
        args,
        records,
        {
            "best": BEST,
            "optimizer": "Adam",
            "eval_every": EVAL_EVERY,
            "max_games": MAX_GAMES,
            "peer_train_freq": PEER_TRAIN_FREQ,
        },
        table,
    )


if __name__ == "__main__":
    main()
