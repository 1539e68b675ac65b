"""What each modern DQN option buys: env steps and seconds to reach a threshold, per game.

For Catch, CartPole and Snake, each option alone and all of them together are
compared with the default (the original algorithm), on 3 seeds, and so are
C51 and Rainbow (every option, C51 and noisy networks). Every
EVAL_EVERY env steps training pauses (not counted) and the greedy policy plays
seeded games; the first time it reaches the game's threshold the run is
solved. A run that has not solved within its budget of training seconds (or
games) counts as not solved. Double DQN needs a target network, so its row
has one too; action masking does nothing for these games (they allow every
action) and has no row.

    python benchmarks/ablation.py --games catch --markdown
    python benchmarks/ablation.py --games cartpole --seeds 3 --markdown
    python benchmarks/ablation.py --games snake --seeds 1 --configs default,all
    python benchmarks/ablation.py --smoke   # one tiny run: SMOKE_CONFIG on SMOKE_GAME, one seed
"""

from __future__ import annotations

import argparse
import os
import time

import _common as c

# -- settings -----------------------------------------------------------------
SEEDS = 3
CONFIGS = {  # each option alone, then all of them; "target" is the game's target_update
    "default": {},
    "target network": {"target": True},
    "double DQN": {"target": True, "double_dqn": True},
    "dueling": {"dueling": True},
    "3-step returns": {"n_step": 3},
    "prioritized replay": {"prioritized": True},
    "all": {"target": True, "double_dqn": True, "dueling": True, "n_step": 3,
            "prioritized": True},
    # C51 (51 atoms over the game's "support") in place of the Q-values, and
    # Rainbow: "all" with C51 and noisy dueling streams (NoisyDense), epsilon 0.
    "C51": {"c51": True},
    "Rainbow": {"target": True, "double_dqn": True, "dueling": True, "n_step": 3,
                "prioritized": True, "c51": True, "noisy": True},
}  # fmt: skip
GAMES = {
    "catch": {  # time_to_solve.py's configuration until 2026-11-24 (docs/performance.md)
        "threshold": "greedy win rate >= 0.95 on 200 games",
        "eval_every": 250,  # env steps
        "budget_seconds": 60,
        "max_games": 4000,
        "train": {"batch_size": 64, "gamma": 0.9, "epsilon": (1.0, 0.05), "nb_parallel": 8},
        "epsilon_games": 100,
        "memory_size": 10_000,
        "learning_rate": 2e-3,
        "loss": "mse",
        "target_update": 100,
        "support": (-1.0, 1.0),  # C51's atoms: the game's discounted returns
    },
    "cartpole": {  # examples/cartpole.py's configuration
        "threshold": "greedy average return >= 475 on 100 episodes",
        "eval_every": 2_000,
        "budget_seconds": 240,
        "max_games": 2000,
        "train": {"batch_size": 64, "gamma": 0.99, "epsilon": (1.0, 0.02), "nb_parallel": 4},
        "epsilon_games": 100,
        "memory_size": 50_000,
        "learning_rate": 1e-3,
        "loss": "huber",
        "target_update": 500,
        "support": (0.0, 100.0),
    },
    "snake": {  # examples/snake.py's model
        "threshold": "greedy average of >= 3 fruits on 50 games",
        "eval_every": 10_000,
        "budget_seconds": 300,
        "max_games": 20_000,
        "train": {"batch_size": 64, "gamma": 0.9, "epsilon": (1.0, 0.05), "nb_parallel": 8,
                  "max_steps": 500},
        "epsilon_games": 1500,
        "memory_size": 50_000,
        "learning_rate": 1e-3,
        "loss": "huber",
        "target_update": 1000,
        "support": (-1.0, 10.0),
    },
}  # fmt: skip
# --smoke: one run of SMOKE_CONFIG (every option) on SMOKE_GAME, seed 0, with
# SMOKE_BUDGETS in place of the game's budgets (two rounds of its parallel games,
# one evaluation).
SMOKE_GAME, SMOKE_CONFIG = "catch", "Rainbow"
SMOKE_BUDGETS = {"max_games": 16, "epsilon_games": 8, "eval_every": 72}
# -----------------------------------------------------------------------------


def _model(game: str, dueling: bool, learning_rate: float, loss: str, atoms: int = 1,
           noisy: bool = False):  # fmt: skip
    import keras

    import qlearning4k

    if game == "snake":
        body = [
            keras.Input((4, c.GRID_SIZE, c.GRID_SIZE)),
            keras.layers.Rescaling(1 / 4),
            keras.layers.Permute((2, 3, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
        ]
        nb_actions = 5
    else:
        shape, hidden = ((1, c.GRID_SIZE, c.GRID_SIZE), 100) if game == "catch" else ((1, 4), 128)
        body = [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
        ]
        nb_actions = 3 if game == "catch" else 2
    if dueling:
        model = qlearning4k.dueling(keras.Sequential(body), nb_actions, nb_atoms=atoms, noisy=noisy)
    else:
        model = keras.Sequential([*body, keras.layers.Dense(nb_actions * atoms)])
    losses = {"mse": "mse", "huber": keras.losses.Huber()}
    # A distributional head brings its own loss.
    model.compile(keras.optimizers.Adam(learning_rate=learning_rate),
                  losses[loss] if atoms == 1 else None)  # fmt: skip
    return model


def _make_game(game: str):
    from qlearning4k.games import Catch, GymGame, Snake

    makers = {
        "catch": lambda seed: Catch(c.GRID_SIZE, seed=seed),
        "cartpole": lambda seed: GymGame("CartPole-v1", seed=seed, win=475),
        "snake": lambda seed: Snake(c.GRID_SIZE, seed=seed),
    }
    return makers[game]


def _solved(game: str, agent) -> bool:
    """Whether the greedy policy reaches the game's threshold, by `agent.evaluate`."""
    make = _make_game(game)
    if game == "catch":
        results = agent.evaluate(make(None), nb_games=c.EVAL_GAMES, seed=c.EVAL_SEED)
        return results["win_rate"] >= c.THRESHOLD
    if game == "cartpole":
        # 20 episodes first: most evaluations stop there, cheaply.
        for nb_games in (20, 100):
            results = agent.evaluate(make(None), nb_games=nb_games, seed=c.EVAL_SEED)
            if results["mean_score"] < 475:
                return False
        return True
    fruits = []
    agent.evaluate(
        make(None), nb_games=50, seed=c.EVAL_SEED, max_steps=300,
        on_game_end=lambda g: fruits.append(len(g.snake) - g.snake_length),
    )  # fmt: skip
    return sum(fruits) / len(fruits) >= 3


def run(game: str, config: str, seed: int, smoke: bool = False) -> dict:
    """One run of `config` on `game`: its record (`smoke`: with SMOKE_BUDGETS)."""
    import keras

    from qlearning4k import C51, Agent, PrioritizedExperienceReplay

    settings, options = GAMES[game], dict(CONFIGS[config])
    if smoke:
        settings = {**settings, **SMOKE_BUDGETS}
    keras.utils.set_random_seed(seed)
    distribution = C51(51, *settings["support"]) if options.pop("c51", False) else None
    noisy = options.pop("noisy", False)
    model = _model(game, options.pop("dueling", False), settings["learning_rate"],
                   settings["loss"], 1 if distribution is None else 51, noisy)  # fmt: skip
    memory = (
        PrioritizedExperienceReplay(settings["memory_size"], seed=seed)
        if options.pop("prioritized", False)
        else None
    )
    if options.pop("target", False):
        options["target_update"] = settings["target_update"]
    agent = Agent(model, memory=memory, memory_size=settings["memory_size"], seed=seed,
                  distribution=distribution)  # fmt: skip
    train = {**settings["train"], **options}
    if noisy:  # noisy networks explore by themselves
        train["epsilon"] = 0.0
    watch = c.Stopwatch()

    class Solve(keras.callbacks.Callback):
        env_steps, next_eval, solved = 0, settings["eval_every"], None

        def on_epoch_end(self, epoch, logs):
            self.env_steps += logs["steps"]
            if watch.elapsed() > settings["budget_seconds"]:
                self.model.stop_training = True
            if self.env_steps < self.next_eval:
                return
            self.next_eval += settings["eval_every"]
            with watch.pause():
                solved = _solved(game, agent)
            if solved:
                self.solved = (watch.elapsed(), self.env_steps)
                self.model.stop_training = True

    solve = Solve()
    agent.train(
        _make_game(game)(seed),
        nb_epoch=settings["max_games"],
        epsilon_rate=settings["epsilon_games"] / settings["max_games"],
        verbose=0,
        callbacks=[solve],
        **train,
    )
    seconds, steps = solve.solved or (float("nan"), solve.env_steps)
    return {"benchmark": "ablation", "game": game, "config": config, "seed": seed,
            "solved": solve.solved is not None, "seconds": seconds, "env_steps": steps,
            "backend": os.environ.get("KERAS_BACKEND", "tensorflow")}  # fmt: skip


def table(records) -> str:
    lines = [
        "| game | configuration | solved | env steps, median (min-max) | training s, median "
        "(min-max) |",
        "|---|---|---|---|---|",
    ]
    groups = {}
    for r in records:
        groups.setdefault((r["game"], r["config"]), []).append(r)
    for (game, config), rows in groups.items():
        solved = [r for r in rows if r["solved"]]
        cells = ["–", "–"]
        if solved:
            steps = c.median_spread(r["env_steps"] for r in solved)
            seconds = c.median_spread(r["seconds"] for r in solved)
            cells = [f"{steps[0]:,.0f} ({steps[1]:,.0f}-{steps[2]:,.0f})",
                     f"{seconds[0]:.1f} ({seconds[1]:.1f}-{seconds[2]:.1f})"]  # fmt: skip
        lines.append(f"| {game} | {config} | {len(solved)}/{len(rows)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default="catch,cartpole,snake", help="comma-separated")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--smoke", action="store_true",
                        help=f"one tiny run: {SMOKE_CONFIG} on {SMOKE_GAME}, one seed")  # fmt: skip
    args = parser.parse_args()
    if args.smoke:
        args.games, args.configs, args.seeds = SMOKE_GAME, SMOKE_CONFIG, 1
    records = []
    for game in args.games.split(","):
        for config in args.configs.split(","):
            for seed in range(args.seeds):
                records.append(run(game, config, seed, args.smoke))
                c.emit(records[-1])
    if args.markdown:
        print(f"\nMachine: {c.machine()}; {time.strftime('%Y-%m-%d')}\n")
        print(table(records))


if __name__ == "__main__":
    main()
