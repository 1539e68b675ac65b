"""`DiscretizedActions`: a continuous `Box` action space cut into `MultiDiscrete` bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from qlearning4k.games.game_env import _import_gymnasium

if TYPE_CHECKING:
    import gymnasium

try:
    import gymnasium as _gymnasium
except ImportError:  # the optional extra: DiscretizedActions() then says how to install it
    _gymnasium = None

# An ActionWrapper that records its arguments, so that `gymnasium.make` can
# remake it from the env's spec (`GymGame` copies its env that way).
_WRAPPER_BASES = (
    (object,)
    if _gymnasium is None
    else (_gymnasium.ActionWrapper, _gymnasium.utils.RecordConstructorArgs)
)


class DiscretizedActions(*_WRAPPER_BASES):
    """A Gymnasium env whose continuous actions are cut into evenly spaced bins.

    Each of the `n` dimensions of a one-axis `Box(low, high, (n,))` action
    space gets `bins` values from `low` to `high`, both included, and the
    action space becomes `MultiDiscrete([bins] * n)`: action index `i` of
    dimension `d` plays `low[d] + i * (high[d] - low[d]) / (bins - 1)`. A
    `GymGame` of the wrapped env is a game of several action parts, for a
    branching model (`qlearning4k.branching`); a flat Q-network would need
    `bins ** n` outputs. This is how Tavakoli et al. (2018) and Tianshou's
    BDQ example try continuous control with Q-learning.

    Args:
        env: A `gymnasium.Env` whose action space is a one-axis `Box` with
            finite bounds.
        bins: Values per dimension, at least 2: an int for all of them, or
            one int per dimension. Defaults to 25.

    Raises:
        TypeError: If `env` is not a `gymnasium.Env` or `bins` not ints.
        ValueError: If the action space is not a bounded one-axis `Box`, or
            `bins` has the wrong length or a count below 2.
        ImportError: If Gymnasium is not installed.

    Example:

    ```python
    env = DiscretizedActions(gymnasium.make("BipedalWalker-v3"), bins=25)
    game = GymGame(env, seed=0)  # game.nb_actions == (25, 25, 25, 25)
    ```
    """

    def __init__(self, env: gymnasium.Env, bins: int | Sequence[int] = 25):
        gymnasium = _import_gymnasium("DiscretizedActions")
        if not isinstance(env, gymnasium.Env):
            raise TypeError(
                "DiscretizedActions expects a gymnasium.Env. "
                f"Received: {env!r} (of type {type(env).__name__})"
            )
        space = env.action_space
        box = gymnasium.spaces.Box
        if not isinstance(space, box) or len(space.shape) != 1 or not space.is_bounded():
            raise ValueError(
                "DiscretizedActions needs a one-axis Box action space with finite bounds. "
                f"Received: action_space={space}"
            )
        counts = np.broadcast_to(_check_bins(bins, space.shape[0]), space.shape)
        gymnasium.utils.RecordConstructorArgs.__init__(self, bins=bins)
        gymnasium.ActionWrapper.__init__(self, env)
        self.bins = tuple(int(n) for n in counts)
        self.action_space = gymnasium.spaces.MultiDiscrete(self.bins)
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        # (n, max(bins)): row d holds dimension d's values (the rest is never indexed)
        steps = np.arange(max(self.bins)) / (counts[:, None] - 1)
        self._values = (low[:, None] + steps * (high - low)[:, None]).astype(space.dtype)
        self._dimensions = np.arange(space.shape[0])

    def action(self, action):
        """The continuous action of one index per dimension."""
        return self._values[self._dimensions, np.asarray(action)]


def _check_bins(bins, nb_dimensions: int) -> np.ndarray:
    """`bins` as an int array: one count, or one per dimension, each at least 2."""
    values = np.asarray(bins)
    if values.dtype.kind not in "iu" or values.ndim > 1:
        raise TypeError(
            f"bins must be an int or a sequence of ints, one per action dimension. "
            f"Received: bins={bins!r}"
        )
    if values.ndim == 1 and len(values) != nb_dimensions:
        raise ValueError(
            f"bins must have one count per action dimension ({nb_dimensions}). "
            f"Received: bins={bins!r}"
        )
    if (values < 2).any():
        raise ValueError(f"bins must be at least 2 per dimension. Received: bins={bins!r}")
    return values
