"""The `Game` contract that every qlearning4k game follows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qlearning4k.games.game_env import GameEnv

# Grey levels used by the default `draw()`: frame values are scaled to 0..255.
_DEFAULT_BACKGROUND = np.array([20, 20, 30], dtype=np.uint8)


class Game:
    """Base class of the games an `Agent` learns to play.

    A game is a small, self-contained simulation that the agent drives one
    action at a time. One *epoch* of training is one game, from `reset()` to
    `is_over()`.

    ALL subclasses must implement:

    - `nb_actions` (property): the number of discrete actions; actions are
      the integers `0 .. nb_actions - 1`. A game whose action has several
      parts (a joint each, steer and throttle: Gymnasium's `MultiDiscrete`)
      gives a tuple of counts instead, one per part; its actions are then
      int arrays of one index per part, `0 .. nb_actions[d] - 1` for part
      `d`, and it takes a branching model (`qlearning4k.branching`).
    - `reset()`: start a new game.
    - `play(action)`: apply one action and advance the game by one step.
    - `get_state()`: the current observation as a NumPy array of a fixed
      shape and dtype.
    - `get_score()`: the reward earned by the last `play()`, a finite number.
    - `is_over()`: whether the game has ended.
    - `is_won()`: whether the game ended in a win (used for win rates).

    SOME subclasses may override:

    - `name` (property): a short name, used for file names. Defaults to the
      class name.
    - `get_frame()`: what the model sees of one step. Defaults to
      `get_state()`. The agent stacks the last `nb_frames` frames as the
      model input, so a model for this game takes inputs of shape
      `(batch, nb_frames) + get_frame().shape`. A frame may also come in
      parts, a dict (or a tuple) of arrays, for a model with one named
      `keras.Input` per key, `(batch, nb_frames) + part.shape` (see the
      "Observations and actions in parts" guide).
    - `draw()`: an RGB picture of the game for animations, a `uint8` array of
      shape `(height, width, 3)`. Defaults to a grey-level picture of
      `get_frame()`.
    - `get_possible_actions()`: the actions allowed now. Defaults to all of
      `range(nb_actions)`. A game that overrides it gets action masking:
      the agent stores the mask of every next state and both its moves and
      its Q-targets consider only possible actions. A game of several
      action parts returns one list per part.
    - `is_truncated()`: whether a game that is over was stopped from outside
      (a time limit) rather than ended by its rules. Defaults to `False`.
      The last transition of a truncated game is not a game over: its
      Q-target still counts the future, as for games stopped by
      `Agent.train(max_steps=...)`.

    Games that use randomness take a `seed` and draw from their own
    generator (`self.rng`), never from the global `np.random` state, so that
    the same seed always plays the same games.

    Args:
        seed: Seed of the game's own random generator, or `None` for a fresh,
            unpredictable one. Defaults to `None`.

    Example:

    ```python
    class Coin(Game):
        '''Guess heads (0) or tails (1); one guess per game.'''

        nb_actions = 2

        def reset(self):
            self.coin = int(self.rng.integers(2))
            self.guess = None

        def play(self, action):
            self.guess = action

        def get_state(self):
            return np.zeros((1,), dtype=np.float32)

        def get_score(self):
            return 0.0 if self.guess is None else float(self.is_won()) * 2 - 1

        def is_over(self):
            return self.guess is not None

        def is_won(self):
            return self.guess == self.coin
    ```
    """

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        """A short name of the game, used for file names."""
        return type(self).__name__

    @property
    def nb_actions(self) -> int | tuple[int, ...]:
        """The number of discrete actions, `0 .. nb_actions - 1`; a tuple of
        counts, one per part, for a game of several action parts."""
        raise NotImplementedError(
            f"{type(self).__name__} must define `nb_actions`, the number of "
            "discrete actions (a property or a class attribute holding an int)."
        )

    def reset(self) -> None:
        """Starts a new game."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `reset()`, which starts a new game."
        )

    def play(self, action: int | np.ndarray) -> None:
        """Applies `action` and advances the game by one step.

        Args:
            action: An integer in `range(nb_actions)`; for a game of several
                action parts, an int array of one index per part.

        Raises:
            ValueError: If `action` is not a valid action (built-in games).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `play(action)`, which "
            "applies one action and advances the game by one step."
        )

    def get_state(self) -> np.ndarray:
        """Returns the current observation as an array of fixed shape."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_state()`, which "
            "returns the current observation as a NumPy array."
        )

    def get_score(self) -> float:
        """Returns the reward earned by the last `play()`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_score()`, which "
            "returns the reward of the last step as a finite number."
        )

    def is_over(self) -> bool:
        """Returns whether the game has ended."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `is_over()`, which "
            "returns whether the game has ended."
        )

    def is_won(self) -> bool:
        """Returns whether the game ended in a win."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `is_won()`, which "
            "returns whether the game ended in a win."
        )

    def is_truncated(self) -> bool:
        """Returns whether the game, now over, was stopped from outside its rules.

        A time limit truncates a game; losing or winning ends it. Training
        bootstraps the last transition of a truncated game (its Q-target
        still counts the future) and not that of an ended one.

        Returns:
            `False` unless a subclass overrides it.
        """
        return False

    def get_frame(self) -> np.ndarray | dict | tuple:
        """Returns what the model sees of the current step.

        Returns:
            `get_state()` unless a subclass overrides it: an array, or a dict
            (or tuple) of arrays for a model of one input per part.
        """
        return self.get_state()

    def draw(self) -> np.ndarray:
        """Returns an RGB picture of the game.

        Returns:
            A `uint8` array of shape `(height, width, 3)`. The default draws
            `get_frame()` (squeezed to 2-D) in grey levels, its largest value
            white; of a frame in parts, its largest part.
        """
        frame = self.get_frame()
        if isinstance(frame, (dict, tuple)):
            parts = list(frame.values()) if isinstance(frame, dict) else list(frame)
            frame = max(parts, key=np.size)
        frame = np.asarray(frame, dtype=np.float32)
        frame = frame.reshape(frame.shape[:2] if frame.ndim > 1 else (1, -1))
        top = float(frame.max()) if frame.size else 0.0
        grey = frame / top if top > 0 else frame
        rgb = _DEFAULT_BACKGROUND + (255 - _DEFAULT_BACKGROUND) * grey[..., None]
        return rgb.astype(np.uint8)

    def get_possible_actions(self) -> list[int] | list[list[int]]:
        """Returns the actions allowed in the current state.

        Returns:
            A list of integers in `range(nb_actions)`; all of them unless a
            subclass restricts it. For a game of several action parts, one
            such list per part.
        """
        if isinstance(self.nb_actions, tuple):
            return [list(range(n)) for n in self.nb_actions]
        return list(range(self.nb_actions))

    def to_gym(self, render_mode: str | None = None) -> GameEnv:
        """Returns this game as a `gymnasium.Env` (a `GameEnv`).

        Args:
            render_mode: `None` or `"rgb_array"`. Defaults to `None`.

        Returns:
            A `qlearning4k.games.GameEnv` driving this game.

        Raises:
            ImportError: If Gymnasium is not installed.
        """
        from qlearning4k.games.game_env import GameEnv

        return GameEnv(self, render_mode=render_mode)

    def _check_action(self, action) -> int | np.ndarray:
        """Validates `action` for `play()` and returns it as an int (an int
        array `(nb_parts,)` for a game of several action parts)."""
        counts = self.nb_actions
        if isinstance(counts, tuple):
            return _check_parts(self.name, action, counts, "an action")
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise TypeError(
                f"{self.name}.play() expects an integer action. "
                f"Received: action={action!r} (of type {type(action).__name__})"
            )
        if not 0 <= action < self.nb_actions:
            raise ValueError(
                f"{self.name}.play() expects an action in "
                f"range({self.nb_actions}). Received: action={action}"
            )
        return int(action)


def _check_parts(name: str, actions, counts: tuple, what: str, lead: tuple = ()) -> np.ndarray:
    """`actions` of a game of several action parts, checked: ints of shape
    `lead + (len(counts),)`, part `d` in `range(counts[d])`."""
    actions = np.asarray(actions)
    shape = lead + (len(counts),)
    if actions.shape != shape or actions.dtype.kind not in "iu":
        raise ValueError(
            f"{name}.play() expects {what} of one index per action part, ints of shape "
            f"{shape} (nb_actions={counts}). Received: {actions!r}"
        )
    bad = (actions < 0) | (actions >= np.asarray(counts))
    if bad.any():
        raise ValueError(
            f"{name}.play() expects part d of an action in range(nb_actions[d]) "
            f"(nb_actions={counts}). Received: {actions!r}"
        )
    return actions.astype(np.int64, copy=False)
