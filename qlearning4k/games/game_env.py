"""`GameEnv`: any qlearning4k `Game` as a Gymnasium environment."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

_INSTALL_HINT = 'Install it with: pip install "qlearning4k[gym]"'


def _import_gymnasium(who: str):
    """Imports Gymnasium, the optional dependency, or says how to install it."""
    try:
        import gymnasium
    except ImportError as error:
        raise ImportError(
            f"{who} needs Gymnasium, which is not installed. {_INSTALL_HINT}"
        ) from error
    return gymnasium


def _observation_space(spaces, frame):
    """A Box that holds every frame of this dtype; for a frame in parts (a dict, or a
    tuple holding an array) a Dict (or Tuple) of such Boxes."""
    if isinstance(frame, dict):
        return spaces.Dict({key: _observation_space(spaces, part) for key, part in frame.items()})
    if isinstance(frame, tuple) and any(np.ndim(part) for part in frame):
        return spaces.Tuple([_observation_space(spaces, part) for part in frame])
    frame = np.asarray(frame)
    if np.issubdtype(frame.dtype, np.integer):
        info = np.iinfo(frame.dtype)
        return spaces.Box(int(info.min), int(info.max), frame.shape, frame.dtype)
    if frame.dtype == np.bool_:
        return spaces.Box(0, 1, frame.shape, np.int8)
    return spaces.Box(-np.inf, np.inf, frame.shape, np.float32)


def _as_observation(space, frame):
    """`frame` in the dtypes of `space` (from `_observation_space`)."""
    if isinstance(frame, dict):
        return {key: _as_observation(space[key], part) for key, part in frame.items()}
    if isinstance(frame, tuple) and any(np.ndim(part) for part in frame):
        return tuple(_as_observation(space[i], part) for i, part in enumerate(frame))
    return np.asarray(frame).astype(space.dtype, copy=False)


try:
    import gymnasium as _gymnasium
except ImportError:  # the optional extra: GameEnv() then says how to install it
    _gymnasium = None

# GameEnv is a gymnasium.Env when Gymnasium is installed; without it, the
# class still exists (importing qlearning4k never needs Gymnasium) and
# making one raises an ImportError with the install hint.
_ENV_BASE = object if _gymnasium is None else _gymnasium.Env


class GameEnv(_ENV_BASE):
    """A qlearning4k `Game` as a `gymnasium.Env`, for any Gymnasium library.

    Observations are `game.get_frame()` (in its own dtype; a Box that holds
    every value of that dtype; a frame in parts, a `Dict` or `Tuple` of such
    Boxes), actions `Discrete(game.nb_actions)` (for a game of several
    action parts, `MultiDiscrete(game.nb_actions)`: an array of one index
    per part),
    rewards `game.get_score()`; `truncated` is `game.is_truncated()` and
    `terminated` is `game.is_over()` otherwise (wrap the env in
    Gymnasium's `TimeLimit` for a limit of its own). `info["won"]` is
    `game.is_won()`.
    `reset(seed=...)` reseeds the game's own generator. With
    `render_mode="rgb_array"`, `render()` returns `game.draw()`.

    Args:
        game: The `Game` to wrap; it is driven in place.
        render_mode: `None` or `"rgb_array"`. Defaults to `None`.

    Raises:
        TypeError: If `game` is not a `Game`.
        ValueError: If `render_mode` is not supported; from `step()`, if an
            action of a game of several parts has the wrong length.
        ImportError: If Gymnasium is not installed.

    Example:

    ```python
    import gymnasium
    import qlearning4k  # registers qlearning4k/Catch-v0 and qlearning4k/Snake-v0

    env = gymnasium.make("qlearning4k/Catch-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    ```
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    # `Game` is never evaluated (postponed annotations): this module imports no game.
    def __init__(self, game: Game, render_mode: str | None = None):  # noqa: F821
        gymnasium = _import_gymnasium("GameEnv")
        if not _is_game(game):
            raise TypeError(
                f"GameEnv expects a qlearning4k Game. Received: {game!r} "
                f"(of type {type(game).__name__})"
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(
                f"GameEnv renders to 'rgb_array' only. Received: render_mode={render_mode!r}"
            )
        self.game = game
        self.render_mode = render_mode
        game.reset()
        self.observation_space = _observation_space(gymnasium.spaces, game.get_frame())
        counts = game.nb_actions
        self._parts = isinstance(counts, tuple)
        if self._parts:
            self.action_space = gymnasium.spaces.MultiDiscrete(counts)
        else:
            self.action_space = gymnasium.spaces.Discrete(counts)

    def _observation(self):
        return _as_observation(self.observation_space, self.game.get_frame())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.game.rng = np.random.default_rng(seed)
        self.game.reset()
        return self._observation(), {}

    def step(self, action):
        if self._parts:
            action = np.asarray(action)
            nb_parts = len(self.game.nb_actions)
            if action.shape != (nb_parts,):
                raise ValueError(
                    f"GameEnv.step() expects an array of {nb_parts} action indices, one per "
                    f"part of MultiDiscrete({list(self.game.nb_actions)}). Received: "
                    f"{action!r} (shape {action.shape})"
                )
            self.game.play(action.astype(np.int64))
        else:
            self.game.play(int(action))
        over = bool(self.game.is_over())
        truncated = over and bool(self.game.is_truncated())
        info = {"won": bool(self.game.is_won())}
        reward = float(self.game.get_score())
        return self._observation(), reward, over and not truncated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self.game.draw()
        return None


# What GameEnv calls on its game: the `Game` contract, checked by its methods so
# that this adapter needs no import of the class it adapts.
_GAME_METHODS = ("reset", "play", "get_frame", "get_score", "is_over", "is_won", "is_truncated")


def _is_game(game) -> bool:
    """Whether `game` follows the `Game` contract (a `Game` subclass does)."""
    counts = getattr(game, "nb_actions", None)
    if isinstance(counts, tuple):  # several action parts
        counts = counts[0] if counts and all(isinstance(n, int) for n in counts) else None
    return isinstance(counts, (int, np.integer)) and all(
        callable(getattr(game, name, None)) for name in _GAME_METHODS
    )
