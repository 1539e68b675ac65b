"""`GymGame`: any Gymnasium environment with discrete actions as a qlearning4k `Game`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from qlearning4k.games.game import Game
from qlearning4k.games.game_env import _import_gymnasium

if TYPE_CHECKING:
    import gymnasium


class GymGame(Game):
    """A Gymnasium environment with a `Discrete` action space, as a `Game`.

    Description:
        Each `reset()` resets the environment with a seed drawn from the
        game's own generator, so the same `seed` plays the same episodes.

    Actions:
        The environment's `Discrete(n)` actions, shifted to `0 .. n - 1`.

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
        ValueError: If the action space is not `Discrete` or the observation
            space is neither `Box` nor `Discrete`.
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
        self._one_hot, self._dtype = _check_spaces(
            "GymGame", env.action_space, env.observation_space, win
        )
        self.env = env
        self.win = win
        self._action_start = int(env.action_space.start)
        self._can_render = env.render_mode == "rgb_array"
        self._warned_draw = False
        self.reset()

    @property
    def name(self) -> str:
        return _env_name(self.env)

    @property
    def nb_actions(self) -> int:
        return int(self.env.action_space.n)

    def _frame(self, observation) -> np.ndarray:
        if self._one_hot is not None:
            frame = np.zeros(self._one_hot, dtype=np.float32)
            frame[int(observation)] = 1.0
            return frame
        return np.asarray(observation, dtype=getattr(self, "_dtype", np.float32))

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
            action + self._action_start
        )
        self._info_won = info.get("won") if isinstance(info, dict) else None
        self._observation = self._frame(observation)
        self._reward = float(reward)
        self.total_reward += self._reward
        self._terminated, self._truncated = bool(terminated), bool(truncated)

    def get_state(self) -> np.ndarray:
        return self._observation.copy()

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


def _check_spaces(owner: str, action_space, space, win, single: str = "") -> tuple:
    """Checks a Gym adapter's spaces and win rule; returns its frames' `(one_hot, dtype)`.

    `one_hot` is the size of a `Discrete` observation space (frames one-hot
    encoded), or `None` for a `Box`. `single` prefixes the spaces' names in
    errors (`"single_"` for vector envs).
    """
    from gymnasium import spaces

    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"{owner} needs a Discrete action space (Q-learning picks one of n actions). "
            f"Received: {single}action_space={action_space}"
        )
    if isinstance(space, spaces.Discrete):
        one_hot, dtype = int(space.n), np.dtype(np.float32)
    elif isinstance(space, spaces.Box):
        one_hot, dtype = None, _frame_dtype(space)
    else:
        raise ValueError(
            f"{owner} needs a Box or Discrete observation space. "
            f"Received: {single}observation_space={space}"
        )
    if not (win is None or callable(win) or isinstance(win, (int, float))):
        raise TypeError(f"win must be None, a number or a function. Received: win={win!r}")
    return one_hot, dtype
