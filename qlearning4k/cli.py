"""The `qlearning4k` command: train from a config, a preset or an RL Zoo file; evaluate,
play, export and sweep.

    qlearning4k train --preset acrobot --run runs/acrobot
    qlearning4k train my_config.yml --set train.total_timesteps=20000 --seed 1
    qlearning4k train --zoo hyperparams/dqn.yml --env CartPole-v1
    qlearning4k train --resume runs/acrobot
    qlearning4k evaluate runs/acrobot
    qlearning4k play runs/acrobot --video acrobot.mp4
    qlearning4k export runs/acrobot --format onnx
    qlearning4k sweep sweep.yml
    qlearning4k presets

`python -m qlearning4k` is the same command.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Sequence

import keras

from qlearning4k._config import (
    RunConfig,
    build_agent,
    check_config,
    check_extras,
    make_game,
    override,
    preset_names,
    read_config,
    read_preset,
    read_zoo,
)
from qlearning4k._export import FORMATS
from qlearning4k.run_folder import RunFolder

_BACKENDS = ("tensorflow", "jax", "torch")
_CHECKPOINT_GAMES = 100  # train's default checkpoint: every this many games
_EXPORT_NAMES = {"onnx": "policy.onnx", "litert": "policy.tflite",
                 "tf_saved_model": "policy_saved_model"}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `qlearning4k` command with `argv` (the process's arguments by default).

    Args:
        argv: The arguments after the program's name, or `None` for
            `sys.argv[1:]`. Defaults to `None`.

    Returns:
        The exit status: 0 when the command succeeded, 2 for bad arguments
        (with the error on standard error).

    Example:

    ```python
    from qlearning4k.cli import main

    main(["train", "--preset", "catch", "--set", "train.nb_epoch=10", "--run", "runs/c"])
    ```
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "backend", None) and args.backend != keras.backend.backend():
        if importlib.util.find_spec(args.backend) is None:
            extra = "" if args.backend == "tensorflow" else f' (the "{args.backend}" extra)'
            print(f"qlearning4k {args.command_name}: error: --backend {args.backend} needs "
                  f"{args.backend}, which is not installed{extra}", file=sys.stderr)  # fmt: skip
            return 2
        # Keras reads its backend once, at import: run the command again in a
        # process that starts with it.
        env = {**os.environ, "KERAS_BACKEND": args.backend}
        command = [sys.executable, "-m", "qlearning4k", *(sys.argv[1:] if argv is None else argv)]
        return subprocess.call(command, env=env)
    try:
        return args.command(args) or 0
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError) as error:
        print(f"qlearning4k {args.command_name}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qlearning4k", description="Q-learning for Keras: train, evaluate, play, export."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, function, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=function, command_name=name)
        return sub

    train = command("train", _train, "train an agent; its run folder keeps everything")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("config", nargs="?", help="a YAML config file")
    source.add_argument("--preset", help=f"a shipped preset: {', '.join(preset_names())}")
    source.add_argument("--zoo", metavar="FILE", help="an RL Zoo file (hyperparams/dqn.yml)")
    source.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    train.add_argument("--env", help="with --zoo: the entry (a Gymnasium id)")
    train.add_argument("--algo", choices=("dqn", "qrdqn"), help="with --zoo: the algorithm "
                       "(default: from the file's name)")  # fmt: skip
    train.add_argument("--run", metavar="FOLDER", help="the run folder (default: runs/NAME)")
    train.add_argument("--seed", type=int, help="the seed (the config's seed by default)")
    train.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override one setting, e.g. "
                       "train.batch_size=64 or sb3.learning_rate=1e-3 (repeatable)")  # fmt: skip
    train.add_argument("--checkpoint", type=int, metavar="GAMES",
                       help=f"checkpoint every GAMES games (default {_CHECKPOINT_GAMES}; "
                       "0 for none)")  # fmt: skip
    train.add_argument("--verbose", type=int, choices=(0, 1, 2),
                       help="0 silent, 1 a progress bar (default), 2 a line a game")  # fmt: skip

    evaluate = command("evaluate", _evaluate, "play greedy games; the results go in the run")
    play = command("play", _play, "play games greedily and film them")
    export = command("export", _export, "write the greedy policy to run without qlearning4k")
    for sub in (evaluate, play, export):
        sub.add_argument("run", metavar="RUN", help="a run folder")
    for sub in (evaluate, play):
        sub.add_argument("--games", type=int, help="games to play")
        sub.add_argument("--seed", type=int, help="seed of the games")
        sub.add_argument("--video", metavar="FILE", help="film the games (.mp4 or .gif)")
    evaluate.add_argument("--name", help="the results' name in evaluations/ (default: the time)")
    play.add_argument("--fps", type=float, default=30, help="pictures per second (default 30)")
    export.add_argument("--format", default="onnx",
                        help="onnx, tf_saved_model or litert, as the backend offers")  # fmt: skip
    export.add_argument("--output", help="the file (or folder) to write (default: in RUN)")
    export.add_argument("--mask", action="store_true", help="the policy takes a mask")

    sweep = command("sweep", _sweep, "a Ray Tune sweep over a config's sweep section")
    sweep.add_argument("config", help="a YAML config with a sweep section")
    sweep.add_argument("--storage", default="runs/sweeps", help="where Ray Tune keeps trials")
    sweep.add_argument("--cpus", type=int, help="CPUs of the local Ray cluster")
    sweep.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override one setting")  # fmt: skip

    command("presets", _presets, "list the shipped presets and the figures they reached")
    for sub in (train, evaluate, play, export, sweep):
        sub.add_argument("--backend", choices=_BACKENDS, help="the Keras backend")
    return parser


# -- train ------------------------------------------------------------------------


def _train(args) -> int:
    if args.env and not args.zoo:
        raise ValueError(f"--env chooses an entry of --zoo's file. Received: --env {args.env}")
    if args.zoo and not args.env:
        raise ValueError(f"--zoo needs --env, the entry to read. Received: --zoo {args.zoo}")
    if args.resume:
        if args.run or args.overrides or args.seed is not None:
            raise ValueError(
                "--resume continues a run as it was configured: leave out --run, --set and "
                f"--seed. Received: --resume {args.resume}"
            )
        run = _with_config(args.resume)
        folder, raw = run.path, run.config
    else:
        if args.preset:
            raw, name = read_preset(args.preset)[0], args.preset
        elif args.zoo:
            raw, name = read_zoo(args.zoo, args.env, args.algo), args.env
        else:
            raw = read_config(args.config)
            name = os.path.splitext(os.path.basename(args.config))[0]
        raw = override(raw, args.overrides)
        if args.seed is not None:
            raw["seed"] = args.seed
        folder = args.run or _free_folder(os.path.join("runs", re.sub(r"[^\w.-]+", "-", name)))
        if args.run and os.path.exists(args.run) and os.listdir(args.run):
            raise FileExistsError(
                f"The run folder {args.run!r} is not empty: continue it with --resume "
                f"{args.run}, or choose another --run"
            )
    config = check_config(raw)
    check_extras(config)
    _train_run(config, folder, args.checkpoint, bool(args.resume), args.verbose)
    return 0


def _train_run(config: RunConfig, folder: str, checkpoint: int | None, resume: bool,
              verbose: int | None = None):  # fmt: skip
    """Trains the config's agent in `folder`, then evaluates it there: `(agent, history)`.

    The same run as a script that seeds Keras with the config's seed, makes
    the game with it, builds the agent (`from_sb3` for an `sb3` config) and
    calls `agent.train(game, **train_kwargs)`.
    """
    keras.utils.set_random_seed(config.seed)
    game = make_game(config, seed=config.seed)
    agent, train_kwargs = build_agent(config, game)
    if checkpoint is not None:
        train_kwargs["checkpoint"] = checkpoint or None
    else:
        train_kwargs.setdefault("checkpoint", _CHECKPOINT_GAMES)
    if verbose is not None:  # the command line's over the config's
        train_kwargs["verbose"] = verbose
    train_kwargs.setdefault("verbose", 1)
    run = RunFolder(folder, config.raw)
    print(f"Run folder: {folder}")
    history = agent.train(
        game, callbacks=[run], checkpoint_path=run.checkpoint_path, resume=resume, **train_kwargs
    )
    budget = train_kwargs.get("total_timesteps"), train_kwargs.get("nb_epoch")
    if (budget[0] and history.env_steps < budget[0]) or (
        budget[1] and len(history.epoch) < budget[1]
    ):
        # Ctrl-C stopped it: no final evaluation of a run half done.
        print(f"Training stopped early; continue it with: qlearning4k train --resume {folder}")
        return agent, history
    results = agent.evaluate(make_game(config), **config.evaluate)
    run.record_evaluation(results, "final")
    _print_results("Final evaluation", results)
    return agent, history


def _free_folder(path: str) -> str:
    """`path`, or `path-2`, `path-3`, ... : the first that does not exist."""
    candidate, i = path, 1
    while os.path.exists(candidate):
        i += 1
        candidate = f"{path}-{i}"
    return candidate


def _print_results(title: str, results: dict) -> None:
    print(
        f"{title}: mean score {results['mean_score']:.2f} (std {results['std_score']:.2f}) "
        f"over {results['nb_games']} games, win rate {results['win_rate']:.2%}, "
        f"{results['mean_steps']:.1f} steps a game"
    )


# -- evaluate, play, export -----------------------------------------------------------


def _with_config(path: str) -> RunFolder:
    run = RunFolder.open(path)
    if run.config is None:
        raise FileNotFoundError(
            f"The run folder {path!r} has no config.yml, which names its game: it was written "
            "by RunFolder without a config. Load its agent with Agent.load instead"
        )
    return run


def _opened(path: str) -> tuple[RunFolder, RunConfig]:
    run = _with_config(path)
    return run, check_config(run.config)


def _evaluate(args) -> int:
    run, config = _opened(args.run)
    settings = dict(config.evaluate)
    if args.games is not None:
        settings["nb_games"] = args.games
    if args.seed is not None:
        settings["seed"] = args.seed
    game = make_game(config, render=args.video is not None)
    results = run.load_agent().evaluate(game, video=args.video, **settings)
    name = args.name or datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    path = run.record_evaluation(results, name)
    _print_results("Evaluation", results)
    print(f"Results: {path}" + (f"; video: {args.video}" if args.video else ""))
    return 0


def _play(args) -> int:
    run, config = _opened(args.run)
    seed = config.evaluate["seed"] if args.seed is None else args.seed
    game = make_game(config, seed=seed, render=args.video is not None)
    run.load_agent().play(game, nb_epoch=args.games or 1, visualize=args.video is not None,
                          path=args.video, fps=args.fps)  # fmt: skip
    if args.video:
        print(f"Video: {args.video}")
    return 0


def _export(args) -> int:
    offered = FORMATS[keras.backend.backend()]
    if args.format not in offered:
        raise ValueError(
            f"The {keras.backend.backend()} backend exports {', '.join(offered)} "
            f"(--backend tensorflow writes all of onnx, tf_saved_model, litert). "
            f"Received: --format {args.format}"
        )
    run = RunFolder.open(args.run)
    path = args.output or os.path.join(run.path, _EXPORT_NAMES[args.format])
    run.load_agent().export(path, format=args.format, mask=args.mask)
    print(f"Exported the greedy policy ({args.format}) to {path}")
    return 0


# -- sweep, presets ---------------------------------------------------------------------


def _sweep(args) -> int:
    from qlearning4k._sweep import sweep

    raw = override(read_config(args.config), args.overrides)
    check_extras(check_config(raw))
    sweep(raw, os.path.abspath(args.storage), args.cpus)
    return 0


def _presets(args) -> int:
    for name in preset_names():
        text = read_preset(name)[1]
        summary = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
        print(f"{name}: {summary[0] if summary else ''}")
        for line in summary[1:]:
            print(f"    {line}")
    return 0
