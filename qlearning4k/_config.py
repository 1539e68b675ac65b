"""The config of a run (a YAML file, a preset, an RL Zoo entry), checked, and what it builds.

A config is a mapping with these keys (all but `game` optional):

- `game`: a Gymnasium id (`Acrobot-v1`, `MinAtar/Breakout-v1`,
  `ALE/Breakout-v5`, `qlearning4k/Catch-v0`) or `module:Class`, a `Game`
  subclass; `game_kwargs`, its arguments (`gymnasium.make`'s for an id);
  `wrappers`, Gymnasium wrappers by class name with their arguments;
  `win`, `GymGame`'s score at which a game counts as won.
- `sb3` (a Stable-Baselines3 DQN config, built by `from_sb3`, with `algo`
  `dqn` or `qrdqn`), or `network` (`_network.network_spec`) with `agent`
  (`memory_size`, `nb_frames`, `distribution`, `prioritized`).
- `train`: arguments of `Agent.train` (they override those of `sb3`);
  `evaluate`: of `Agent.evaluate`; `seed`; `sweep` (`qlearning4k sweep`).

Values are read by `_Loader`, PyYAML's safe loader that also reads `5e4`
and `1e-3` as numbers (YAML 1.1 reads them as strings; the RL Zoo's files
write `!!float 5e4` for that reason). No tag makes it build an object.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import importlib.resources
import inspect
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from qlearning4k._checks import _check_keys, _did_you_mean, _unknown_key
from qlearning4k._network import NetworkSpec, build_network, named_entry, network_spec
from qlearning4k.agent import Agent
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.games.game import Game
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay
from qlearning4k.sb3 import _read_config, from_sb3


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2's numbers: `5e4` and `1e-3` are floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)

_TOP = ("game", "game_kwargs", "wrappers", "win", "sb3", "algo", "network", "agent", "train",
        "evaluate", "seed", "sweep")  # fmt: skip
_AGENT = ("memory_size", "nb_frames", "distribution", "prioritized")
_DISTRIBUTIONS = {"C51": C51, "QuantileRegression": QuantileRegression}
# train() arguments the command line sets itself.
_OWN_TRAIN = ("game", "callbacks", "actors", "checkpoint_path", "resume")
_EVALUATE = ("nb_games", "seed", "epsilon", "max_steps", "nb_parallel")
EVALUATE_DEFAULTS = {"nb_games": 100, "seed": 1_000_000}
# Gymnasium ids whose games come with an extra of qlearning4k: (id prefix, the
# module that registers them, how, the extra).
_EXTRAS = (
    ("MinAtar/", "minatar.gym", "register_envs", "minatar"),
    ("ALE/", "ale_py", "gymnasium", "atari"),
    ("MiniGrid-", "minigrid", None, "minigrid"),
    ("BabyAI-", "minigrid", None, "minigrid"),
    ("LunarLander", "Box2D", None, "box2d"),
    ("BipedalWalker", "Box2D", None, "box2d"),
    ("CarRacing", "Box2D", None, "box2d"),
)


def _parameters(function, leave_out: Sequence[str]) -> tuple[str, ...]:
    names = inspect.signature(function).parameters
    return tuple(name for name in names if name not in ("self", *leave_out))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A checked config: what `qlearning4k train` runs.

    `raw` is the config as written (after overrides), which the run folder
    keeps as `config.yml`; the other fields are its checked parts.
    """

    raw: dict
    game: str
    game_kwargs: dict
    wrappers: tuple[tuple[str, dict], ...]
    win: float | None
    sb3: dict | None
    algo: str
    network: NetworkSpec | None
    agent: dict
    train: dict
    evaluate: dict
    seed: int
    sweep: dict | None


def check_config(raw: Mapping) -> RunConfig:
    """Checks a config mapping: a `RunConfig`.

    Raises:
        ValueError: For an unknown key (naming it and the nearest known one),
            a missing `game`, both or neither of `sb3` and `network`, or a value
            of the wrong kind.
    """
    raw = _check_keys("", raw, _TOP)
    game = raw.get("game")
    if not isinstance(game, str) or not game:
        raise ValueError(
            "The config needs game: a Gymnasium id (such as Acrobot-v1) or module:Class "
            f"(a qlearning4k Game). Received: game={game!r}"
        )
    if ("sb3" in raw) == ("network" in raw):
        raise ValueError(
            "The config needs one of sb3 (a Stable-Baselines3 DQN config, built by "
            "from_sb3) and network (a Keras network by its layers). Received: "
            f"{'both' if 'sb3' in raw else 'neither'}"
        )
    algo = raw.get("algo", "dqn")
    if algo not in ("dqn", "qrdqn"):
        raise ValueError(f"algo must be dqn or qrdqn. Received: algo={algo!r}")
    agent = _check_keys("agent.", raw.get("agent") or {}, _AGENT)
    if agent.get("distribution") is not None:
        name, arguments = named_entry("agent.distribution", agent["distribution"])
        if name not in _DISTRIBUTIONS:
            raise _unknown_key("agent.distribution: ", name, list(_DISTRIBUTIONS), arguments)
        agent["distribution"] = (name, arguments)
    if agent.get("prioritized") is not None and not isinstance(agent["prioritized"], Mapping):
        raise ValueError(
            "agent.prioritized must be a mapping of PrioritizedExperienceReplay arguments "
            f"({{}} for its defaults). Received: prioritized={agent['prioritized']!r}"
        )
    if "sb3" in raw and agent:
        raise ValueError(
            "With sb3, the agent is from_sb3's (its buffer_size, frame_stack, policy_kwargs): "
            f"leave the agent section out. Received: agent={agent!r}"
        )
    if "algo" in raw and "sb3" not in raw:
        raise ValueError(
            "algo chooses from_sb3's algorithm; with network, set agent.distribution. "
            f"Received: algo={algo!r}"
        )
    train = _check_keys("train.", raw.get("train") or {},
                        _parameters(Agent.train, _OWN_TRAIN))  # fmt: skip
    evaluate = _check_keys("evaluate.", raw.get("evaluate") or {}, _EVALUATE)
    sb3 = raw.get("sb3")
    if sb3 is not None:
        if not isinstance(sb3, Mapping):
            raise ValueError(f"sb3 must be a mapping of DQN settings. Received: sb3={sb3!r}")
        _read_config(sb3, algo == "qrdqn")  # its keys and values, before any game is made
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0. Received: seed={seed!r}")
    wrappers = raw.get("wrappers") or []
    if not isinstance(wrappers, list):
        raise ValueError(f"wrappers must be a list. Received: wrappers={wrappers!r}")
    win = raw.get("win")
    if win is not None and (isinstance(win, bool) or not isinstance(win, (int, float))):
        raise ValueError(f"win must be a number. Received: win={win!r}")
    sweep = raw.get("sweep")
    if sweep is not None and not isinstance(sweep, Mapping):
        raise ValueError(f"sweep must be a mapping. Received: sweep={sweep!r}")
    return RunConfig(
        raw=copy.deepcopy(dict(raw)),
        game=game,
        game_kwargs=_mapping("game_kwargs", raw.get("game_kwargs")),
        wrappers=tuple(named_entry(f"wrappers[{i}]", e) for i, e in enumerate(wrappers)),
        win=win,
        sb3=None if sb3 is None else dict(sb3),
        algo=algo,
        network=network_spec(_mapping("network", raw["network"])) if "network" in raw else None,
        agent=agent,
        train=train,
        evaluate={**EVALUATE_DEFAULTS, **evaluate},
        seed=seed,
        sweep=None if sweep is None else dict(sweep),
    )


def _mapping(name: str, section) -> dict:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{name} must be a mapping. Received: {name}={section!r}")
    return dict(section)


# -- reading configs -------------------------------------------------------------


def read_yaml(text: str, source: str) -> Any:
    """YAML text read safely (`_Loader`): a `ValueError` naming `source` if it is not YAML."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ValueError(f"{source} is not valid YAML: {error}") from error


def _yaml_mapping(path: str | os.PathLike, what: str) -> dict:
    """The mapping of the YAML file at `path` (`what` names the file in errors)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {what} at {path!r}")
    with open(path, encoding="utf-8") as f:
        read = read_yaml(f.read(), path)
    if not isinstance(read, Mapping):
        raise ValueError(f"A {what} holds a mapping. Received: {type(read).__name__} in {path}")
    return dict(read)


def read_config(path: str | os.PathLike) -> dict:
    """The config mapping of a YAML file."""
    return _yaml_mapping(path, "config file")


def preset_names() -> list[str]:
    """The presets shipped in `qlearning4k/presets`, by name."""
    folder = importlib.resources.files("qlearning4k") / "presets"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml"))


def read_preset(name: str) -> tuple[dict, str]:
    """A shipped preset: `(config, its text)` (the text has the figures it reached)."""
    names = preset_names()
    if name not in names:
        raise ValueError(
            f"Unknown preset {name!r}{_did_you_mean(name, names)}: the presets are "
            f"{', '.join(names)}"
        )
    text = (importlib.resources.files("qlearning4k") / "presets" / f"{name}.yml").read_text(
        encoding="utf-8"
    )
    return dict(read_yaml(text, f"preset {name}")), text


def read_zoo(path: str | os.PathLike, env_id: str, algo: str | None = None) -> dict:
    """The config of the RL Baselines3 Zoo's entry for `env_id` in its YAML file at
    `path` (`hyperparams/dqn.yml` or `qrdqn.yml`, unchanged).

    Only that entry is read; the others (`atari`, `default`, other tasks)
    are left alone. Its `policy_kwargs` string (`"dict(net_arch=[256, 256])"`)
    becomes a dict by `zoo_literal`, which evaluates no code.
    """
    path = os.fspath(path)
    entries = _yaml_mapping(path, "RL Zoo file")
    if env_id not in entries:
        raise ValueError(
            f"{path} has no entry for {env_id}{_did_you_mean(env_id, entries)}; its entries are "
            f"{', '.join(map(str, entries))}. Received: --env {env_id}"
        )
    entry = dict(entries[env_id])
    if isinstance(entry.get("policy_kwargs"), str):
        entry["policy_kwargs"] = zoo_literal(entry["policy_kwargs"])
    if algo is None:
        algo = "qrdqn" if os.path.basename(path).startswith("qrdqn") else "dqn"
    return {"game": env_id, "algo": algo, "sb3": entry}


def zoo_literal(text: str) -> dict:
    """The RL Zoo's `policy_kwargs` string, such as `"dict(net_arch=[256, 256])"`, as a
    dict, without `eval`: only `dict(...)` calls of Python literals are read.

    Raises:
        ValueError: For anything else (a name such as `nn.ReLU`, a call of another
            function), naming it.
    """

    def value(node):
        if isinstance(node, ast.Call):
            plain = all(keyword.arg is not None for keyword in node.keywords)  # no **unpacking
            if not (isinstance(node.func, ast.Name) and node.func.id == "dict" and plain) or (
                node.args
            ):
                raise ValueError(
                    "policy_kwargs is read as dict(key=literal, ...) without running "
                    f"code. Received: {ast.unparse(node)!r} in {text!r}"
                )
            return {k.arg: value(k.value) for k in node.keywords}
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValueError(
                "policy_kwargs is read as dict(key=literal, ...) without running code; "
                f"{ast.unparse(node)!r} is not a literal. Received: {text!r}"
            ) from None

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"policy_kwargs is not a Python expression: {text!r}") from error
    result = value(tree.body)
    if not isinstance(result, dict):
        raise ValueError(f"policy_kwargs must be a dict(...). Received: {text!r}")
    return result


def override(config: Mapping, assignments: Sequence[str] | Mapping[str, Any]) -> dict:
    """`config` with assignments applied: `KEY=VALUE` strings (the value read as
    YAML), or a mapping of keys to values. Dotted keys reach into sections:
    `train.batch_size=64`, `sb3.learning_rate=1e-3`, `seed=1`."""
    if not isinstance(assignments, Mapping):
        pairs = {}
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            if not sep or not key:
                raise ValueError(f"An override is KEY=VALUE. Received: {assignment!r}")
            pairs[key] = read_yaml(text, f"the value of {key}") if text else None
        assignments = pairs
    config = copy.deepcopy(dict(config))
    for key, value in assignments.items():
        *sections, last = key.split(".")
        place = config
        for i, section in enumerate(sections):
            if place.get(section) is None:
                place[section] = {}
            place = place[section]
            if not isinstance(place, dict):
                raise ValueError(
                    f"{'.'.join(sections[: i + 1])} is not a section. Received: {key}={value!r}"
                )
        place[last] = copy.deepcopy(value)
    return config


# -- building -------------------------------------------------------------------


def check_extras(config: RunConfig) -> None:
    """Raises an `ImportError` naming the `pip install` extra when the game needs
    one that is not installed."""
    if ":" in config.game:
        return
    if not config.game.startswith("qlearning4k/"):
        _need("gymnasium", "gym", config.game)
    for prefix, module, _, extra in _EXTRAS:
        if config.game.startswith(prefix):
            _need(module, extra, config.game)


def _need(module: str, extra: str, game: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f'{game} needs the {extra} extra: pip install "qlearning4k[{extra}]" '
            f"(import {module} failed: {error})"
        ) from error


def make_game(config: RunConfig, seed: int | None = None, render: bool = False):
    """The config's game, seeded; with `render`, one whose `draw()` gives RGB pictures
    (Gymnasium's `render_mode="rgb_array"`)."""
    check_extras(config)
    if ":" in config.game:
        module, _, name = config.game.partition(":")
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, (Game, VectorGame))):
            raise ValueError(
                f"game {config.game!r} must name a qlearning4k Game or VectorGame subclass as "
                f"module:Class. Received: {cls!r}"
            )
        return cls(**config.game_kwargs, seed=seed)
    import gymnasium

    from qlearning4k.games.gym_game import GymGame

    for prefix, module, register, _ in _EXTRAS:
        if not config.game.startswith(prefix) or config.game in gymnasium.registry:
            continue
        if register == "register_envs":
            importlib.import_module(module).register_envs()
        elif register == "gymnasium":
            gymnasium.register_envs(importlib.import_module(module))
    kwargs = dict(config.game_kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    env = gymnasium.make(config.game, **kwargs)
    for name, arguments in config.wrappers:
        wrapper = getattr(gymnasium.wrappers, name, None)
        if not (isinstance(wrapper, type) and issubclass(wrapper, gymnasium.Wrapper)):
            raise ValueError(f"wrappers names classes of gymnasium.wrappers. Received: {name!r}")
        env = wrapper(env, **arguments)
    return GymGame(env, seed=seed, win=config.win)


def build_agent(config: RunConfig, game) -> tuple[Agent, dict]:
    """The agent of the config and its `train()` arguments (the config's `train`
    section over those of `sb3`)."""
    if config.sb3 is not None:
        agent, train_kwargs = from_sb3(config.sb3, game, seed=config.seed, algo=config.algo)
        return agent, {**train_kwargs, **config.train}
    settings = config.agent
    distribution = None
    if settings.get("distribution") is not None:
        name, arguments = settings["distribution"]
        distribution = _DISTRIBUTIONS[name](**arguments)
    nb_frames = settings.get("nb_frames", 1)
    probe = copy.deepcopy(game)  # a frame read from a copy leaves the game's run as it was
    probe.reset()
    frame = probe.get_frame()
    if isinstance(frame, (dict, tuple)):
        raise ValueError(
            "The network section builds a model of one input; frames in parts (dicts) need "
            "sb3 with policy: MultiInputPolicy, or a script. Received: frames of type "
            f"{type(frame).__name__} from {config.game}"
        )
    import numpy as np

    nb_atoms = 1 if distribution is None else distribution.nb_atoms
    model = build_network(config.network, (nb_frames, *np.shape(frame)), game.nb_actions,
                          nb_atoms)  # fmt: skip
    memory_size = settings.get("memory_size", 1000)
    memory = None
    if settings.get("prioritized") is not None:
        arguments = settings["prioritized"]
        memory = PrioritizedExperienceReplay(memory_size, **arguments, seed=config.seed)
    agent = Agent(model, memory=memory, memory_size=memory_size, nb_frames=nb_frames,
                  seed=config.seed, distribution=distribution)  # fmt: skip
    return agent, dict(config.train)
