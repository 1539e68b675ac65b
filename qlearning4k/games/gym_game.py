"""`GymGame`: any Gymnasium environment with discrete actions as a qlearning4k `Game`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from qlearning4k.games.game import Game
from qlearning4k.games.game_env import _import_gymnasium

if TYPE_CHECKING:
    import gymnasium


class GymGame(Game):
    """A Gymnasium environment with discrete actions, as a `Game`.

    Description:
        Each `reset()` resets the environment with a seed drawn from the
        game's own generator, so the same `seed` plays the same episodes.

    Actions:
        The environment's `Discrete(n)` actions, shifted to `0 .. n - 1`.
        A `MultiDiscrete(nvec)` action space (one axis) is a game of several
        action parts, `nb_actions == tuple(nvec)`, each part shifted to
        start at 0, for a branching model (`qlearning4k.branching`).

    Observation:
        `get_frame()` is the observation as an array: a `Box` of `uint8`
        (pixels) as it is, a `Box` of `bool` (MinAtar) as `uint8`, so that
        frames take one byte each in the replay memory; any other `Box` as
        `float32`; a `Discrete` one one-hot encoded in `float32`. The agent
        casts frames to the model's input dtype.

    Rewards:
        `get_score()` is the reward of the last step.

    Episode end:
        When the environment is terminated or truncated. `is_won()` then
        follows `win`: with a number, the episode's total reward reached it;
        with a function, `win(total_reward, terminated, truncated)`; with
        `None`, `info["won"]` of the last step when the environment gives it
        (a `GameEnv` does), else the environment terminated without being
        truncated (right for goal-reaching tasks; CartPole, whose
        termination is a failure, wants `win=475`, say). A truncated
        episode (a time limit) is `is_truncated()`: training bootstraps its
        last transition, as Stable-Baselines3 does.

    Args:
        env: A `gymnasium.Env`, or an environment id for `gymnasium.make`.
        seed: Seed of the game's generator. Defaults to `None`.
        win: The win rule, as above. Defaults to `None`.
        **make_kwargs: Passed to `gymnasium.make` when `env` is an id (for
            example `is_slippery=False`). Without `render_mode`, the env is
            made as `gymnasium.make` makes it, which renders nothing; pass
            `render_mode="rgb_array"` for the environment's own pictures in
            `draw()` (GIFs). Rendering can slow the environment down even
            when nothing is drawn: LunarLander then simulates its engines'
            particles, which makes a step 2 to 10 times slower.

    Raises:
        ValueError: If the action space is neither `Discrete` nor
            `MultiDiscrete`, or the observation space none of those above.
        ImportError: If Gymnasium is not installed.

    Example:

    ```python
    game = GymGame("FrozenLake-v1", is_slippery=False, win=1.0, seed=0)
    model = keras.Sequential([keras.Input((1, 16)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    ```
    """

    def __init__(
        self,
        env: gymnasium.Env | str,
        seed: int | None = None,
        win: float | Callable[[float, bool, bool], bool] | None = None,
        **make_kwargs: Any,
    ):
        gymnasium = _import_gymnasium("GymGame")
        super().__init__(seed)
        if isinstance(env, str):
            env = gymnasium.make(env, **make_kwargs)
        elif make_kwargs:
            raise TypeError(
                "GymGame takes make keyword arguments only with an environment id. "
                f"Received: {sorted(make_kwargs)} with an environment object"
            )
        if not isinstance(env, gymnasium.Env):
            raise TypeError(
                "GymGame expects a gymnasium.Env or an environment id. "
                f"Received: {env!r} (of type {type(env).__name__})"
            )
        self._observations, self._actions = _check_spaces(
            "GymGame", env.action_space, env.observation_space, win
        )
        self.env = env
        self.win = win
        self._can_render = env.render_mode == "rgb_array"
        self._warned_draw = False
        self.reset()

    @property
    def name(self) -> str:
        return _env_name(self.env)

    @property
    def nb_actions(self) -> int | tuple[int, ...]:
        return self._actions.counts

    def _frame(self, observation):
        return self._observations.frame(observation)

    def reset(self) -> None:
        observation, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        self._observation = self._frame(observation)
        self._reward = 0.0
        self.total_reward = 0.0
        self._terminated = self._truncated = False
        self._info_won = None

    def play(self, action: int) -> None:
        action = self._check_action(action)
        if self.is_over():
            return
        observation, reward, terminated, truncated, info = self.env.step(
            self._actions.to_env(action)
        )
        self._info_won = info.get("won") if isinstance(info, dict) else None
        self._observation = self._frame(observation)
        self._reward = float(reward)
        self.total_reward += self._reward
        self._terminated, self._truncated = bool(terminated), bool(truncated)

    def get_state(self):
        return _map(np.copy, self._observation)

    def get_score(self) -> float:
        return self._reward

    def is_over(self) -> bool:
        return self._terminated or self._truncated

    def is_truncated(self) -> bool:
        return self._truncated and not self._terminated

    def is_won(self) -> bool:
        if not self.is_over():
            return False
        if self.win is None:
            if self._info_won is not None:  # the env says (a GameEnv does)
                return bool(self._info_won)
            return self._terminated and not self._truncated
        if callable(self.win):
            return bool(self.win(self.total_reward, self._terminated, self._truncated))
        return self.total_reward >= self.win

    def draw(self) -> np.ndarray:
        """The environment's `render()` in `rgb_array` mode, else grey levels of the frame.

        Warns once when the environment renders nothing (made without
        `render_mode="rgb_array"`), as a GIF of grey levels is rarely what
        is wanted.
        """
        if self.env.render_mode is None and not getattr(self, "_warned_draw", False):
            self._warned_draw = True
            warnings.warn(
                f"{self.name} was made without a render mode, so draw() gives grey levels "
                "of the observation. Pass render_mode='rgb_array' to GymGame for the "
                "environment's own pictures.",
                stacklevel=2,
            )
        if self._can_render:
            try:
                picture = self.env.render()
            except Exception:  # such as DependencyNotInstalled: no pygame
                self._can_render = False
            else:
                if isinstance(picture, np.ndarray) and picture.ndim == 3:
                    return picture.astype(np.uint8, copy=False)
                self._can_render = False
        return super().draw()

    def __deepcopy__(self, memo):
        # Parallel copies need their own environment: make a fresh one.
        import copy

        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key != "env":
                setattr(clone, key, copy.deepcopy(value, memo))
        spec = getattr(self.env, "spec", None)
        if spec is not None:
            gymnasium = _import_gymnasium("GymGame")
            clone.env = gymnasium.make(spec, render_mode=self.env.render_mode)
        else:
            clone.env = copy.deepcopy(self.env, memo)
        return clone


def _env_name(env) -> str:
    """A file-name-safe name of a Gymnasium env (or vector env): its id, else its class."""
    spec = getattr(env, "spec", None)
    return spec.id.replace("/", "_") if spec is not None else type(env).__name__


def _frame_dtype(space) -> np.dtype:
    """The dtype of frames of a `Box` observation: `uint8` for pixels and bools."""
    kind = np.dtype(space.dtype)
    return np.dtype(np.uint8 if kind in (np.dtype(np.uint8), np.dtype(bool)) else np.float32)


_ARRAYLESS = "Text, Graph, Sequence and the other spaces that are not arrays"


class _Observations:
    """How a Gym adapter turns observations of `space` into frames.

    A `Box` of `uint8` or `bool` gives `uint8`, any other `Box` `float32`; a
    whole `Discrete` observation is one-hot in `float32`, a whole
    `MultiDiscrete` one one-hot per entry (end to end) in `uint8`. A `Dict` or `Tuple`
    gives a dict or tuple of its parts' frames: a `Box` part as above, a
    `Discrete` part one-hot, a `MultiDiscrete` part one-hot per entry (put
    end to end) and a `MultiBinary` part as it is, each of those three in
    `uint8` (exact, and one byte a value in the replay memory).
    """

    def __init__(self, owner: str, space, single: str = ""):
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            self._convert = functools.partial(_one_hot, space, np.float32)
        elif isinstance(space, spaces.Box):
            self._convert = functools.partial(_as_array, _frame_dtype(space))
        elif isinstance(space, spaces.MultiDiscrete):
            self._convert = functools.partial(_multi_hot, space)
        elif isinstance(space, (spaces.Dict, spaces.Tuple)):
            keys = list(space.spaces) if isinstance(space, spaces.Dict) else range(len(space))
            parts = {key: self._part(owner, key, space[key], single) for key in keys}
            self._convert = functools.partial(_parts, isinstance(space, spaces.Dict), parts)
        else:
            raise ValueError(
                f"{owner} needs a Box, Discrete, MultiDiscrete, Dict or Tuple observation space. "
                f"Received: {single}observation_space={space}"
            )

    @staticmethod
    def _part(owner: str, key, space, single: str):
        from gymnasium import spaces

        if isinstance(space, spaces.Box):
            return functools.partial(_as_array, _frame_dtype(space))
        if isinstance(space, spaces.Discrete):
            return functools.partial(_one_hot, space, np.uint8)
        if isinstance(space, spaces.MultiBinary):
            return functools.partial(_as_array, np.dtype(np.uint8))
        if isinstance(space, spaces.MultiDiscrete):
            return functools.partial(_multi_hot, space)
        raise ValueError(
            f"{owner} takes Box, Discrete, MultiDiscrete and MultiBinary parts of a "
            f"{single}observation_space, not {_ARRAYLESS}. Received: part {key!r} = {space}. "
            "Drop it with gymnasium.wrappers.FilterObservation (for a Dict: "
            f"FilterObservation(env, filter_keys=[...the other keys...]))."
        )

    def frame(self, observation):
        """One observation's frame (an array, or a dict or tuple of them)."""
        return self._convert(observation, ())

    def frames(self, observations, nb_copies: int):
        """A vector env's batch of observations as frames, each with `(nb_copies,)` first."""
        return self._convert(observations, (nb_copies,))


def _as_array(dtype, observation, lead: tuple) -> np.ndarray:
    return np.array(observation, dtype=dtype)


def _one_hot(space, dtype, observation, lead: tuple) -> np.ndarray:
    index = np.asarray(observation, dtype=np.int64).reshape(lead) - int(space.start)
    return np.eye(int(space.n), dtype=dtype)[index]


def _multi_hot(space, observation, lead: tuple) -> np.ndarray:
    """One-hot of each entry of a MultiDiscrete value, end to end: `lead + (sum(nvec),)`."""
    nvec, start = space.nvec.reshape(-1), np.asarray(space.start).reshape(-1)
    index = np.asarray(observation, dtype=np.int64).reshape(lead + (-1,)) - start
    frame = np.zeros(lead + (int(nvec.sum()),), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    np.put_along_axis(frame, index + offsets, 1, axis=-1)
    return frame


def _parts(keyed: bool, parts: dict, observation, lead: tuple):
    frames = {key: convert(observation[key], lead) for key, convert in parts.items()}
    return frames if keyed else tuple(frames.values())


def _map(function, *frames):
    """`function` applied to each part of frames in parts (dicts or tuples), or to the arrays."""
    first = frames[0]
    if isinstance(first, dict):
        return {key: _map(function, *(f[key] for f in frames)) for key in first}
    if isinstance(first, tuple):
        return tuple(_map(function, *parts) for parts in zip(*frames, strict=True))
    return function(*frames)


class _Actions:
    """A Gym adapter's actions: `nb_actions` and the env's action of each of ours.

    `Discrete(n, start)`: `n` actions `0 .. n - 1`, shifted by `start`.
    `MultiDiscrete(nvec, start)` (one axis): a tuple of counts, one per
    part, each part shifted by its start.
    """

    def __init__(self, owner: str, space, single: str):
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            self.counts, self.start = int(space.n), int(space.start)
        elif isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
            self.counts = tuple(int(n) for n in space.nvec)
            self.start = np.asarray(space.start, dtype=np.int64)
        else:
            raise ValueError(
                f"{owner} needs a Discrete action space (Q-learning picks one of n actions) "
                "or a one-axis MultiDiscrete one (a branching model picks one per part); "
                "a continuous Box of actions can be cut into bins with "
                "qlearning4k.games.DiscretizedActions. "
                f"Received: {single}action_space={space}"
            )

    def to_env(self, actions):
        """Our action (or a copy's row of them) as the environment's."""
        return actions + self.start


def _check_spaces(
    owner: str, action_space, space, win, single: str = ""
) -> tuple[_Observations, _Actions]:
    """Checks a Gym adapter's spaces and win rule; returns how its observations become
    frames and how its actions become the env's. `single` prefixes the spaces' names
    in errors (`"single_"` for vector envs)."""
    actions = _Actions(owner, action_space, single)
    observations = _Observations(owner, space, single)
    if not (win is None or callable(win) or isinstance(win, (int, float))):
        raise TypeError(f"win must be None, a number or a function. Received: win={win!r}")
    return observations, actions
