"""The Gymnasium ids of the built-in games: `qlearning4k/Catch-v0` and `qlearning4k/Snake-v0`.

`qlearning4k.games` registers them when it is imported (and Gymnasium is
installed), so that `gymnasium.make("qlearning4k/Catch-v0")` works after
`import qlearning4k`. This is the package's one registration, kept above the
games and the `GameEnv` adapter it combines.
"""

from __future__ import annotations

from qlearning4k.games.catch import Catch
from qlearning4k.games.game_env import GameEnv, _import_gymnasium
from qlearning4k.games.snake import Snake

_BUILTIN = {"Catch": (Catch, None), "Snake": (Snake, 1000)}  # class, max_episode_steps


def register_envs() -> None:
    """Registers the built-in games as Gymnasium ids, when Gymnasium is there."""
    try:
        _import_gymnasium("qlearning4k's Gymnasium ids")
    except ImportError:
        return
    from gymnasium.envs.registration import register, registry

    for name, (_, max_steps) in _BUILTIN.items():
        env_id = f"qlearning4k/{name}-v0"
        if env_id not in registry:
            register(
                id=env_id,
                entry_point="qlearning4k.games.registration:make_builtin",
                kwargs={"name": name},
                max_episode_steps=max_steps,
            )


def make_builtin(name: str, render_mode: str | None = None, **kwargs) -> GameEnv:
    """Entry point of the registered ids: `gymnasium.make("qlearning4k/Catch-v0", grid_size=8)`."""
    game_class, _ = _BUILTIN[name]
    return GameEnv(game_class(**kwargs), render_mode=render_mode)
