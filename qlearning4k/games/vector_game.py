"""The `VectorGame` contract: many copies of a game stepped in one call."""

from __future__ import annotations

import numpy as np

from qlearning4k.games.game import _check_parts


class VectorGame:
    """Base class of games that step all their copies at once.

    A vector game holds `nb_copies` copies of one game and moves them all
    with one `play(actions)` call, as Gymnasium's vector environments do,
    so that a step of 256 copies costs a few NumPy operations rather than
    256 Python calls. `Agent.train()` and `Agent.evaluate()` take one
    wherever they take a `Game` (and a `gymnasium.vector.VectorEnv`, which
    they wrap in a `GymVectorGame`). Every getter returns one entry per copy,
    in copy order; copy `k` of every array is the same game.

    A copy whose game is over stays over, ignoring its actions, until the
    agent restarts it with `reset(mask)`; the agent reads its last frame,
    score and flags first. Nothing restarts on its own, so no transition
    joins the end of one game to the start of the next.

    ALL subclasses must implement:

    - `nb_copies` (property): the number of copies.
    - `nb_actions` (property): the number of discrete actions, the same for
      every copy; a tuple of counts for a game of several action parts (as
      for `Game`), whose `play()` then takes `(nb_copies, nb_parts)` ints.
    - `reset(mask=None, seed=None)`: restart the copies where `mask` is true
      (all of them with `None`), over or not; with a `seed`, reseed the
      game's generator first.
    - `play(actions)`: apply one action per copy, an int array of shape
      `(nb_copies,)`, and advance every running copy by one step.
    - `get_frames()`: what the model sees of each copy, an array of shape
      `(nb_copies,) + frame_shape`, one dtype for all.
    - `get_scores()`: the reward of each copy's last step, a float array of
      shape `(nb_copies,)` (0 for a copy that was already over).
    - `is_over()`: a bool array `(nb_copies,)`: whose game has ended.
    - `is_won()`: a bool array `(nb_copies,)`: whose game ended in a win.

    SOME subclasses may override:

    - `name` (property): a short name. Defaults to the class name.
    - `is_truncated()`: a bool array `(nb_copies,)`: whose game, now over,
      was stopped by a time limit rather than by its rules. Defaults to all
      `False`. As for `Game`, a truncated game's last transition still
      counts the future.
    - `get_possible_actions()`: a bool array `(nb_copies, nb_actions)` of
      the actions allowed in each copy now (`(nb_copies, sum(nb_actions))`,
      the parts one after another, for several action parts). Defaults to
      all `True`. A game that overrides it gets action masking, as a `Game`
      does.

    The getters may return the game's own arrays: the agent copies what it
    keeps before the next `play()` or `reset()`.

    Args:
        nb_copies: Number of copies, at least 1.
        seed: Seed of the game's own random generator (`self.rng`), or
            `None` for an unpredictable one. Defaults to `None`.

    Raises:
        TypeError, ValueError: If `nb_copies` is not a positive int.

    Example:

    ```python
    class Coins(VectorGame):
        '''Guess heads (0) or tails (1) of many coins; one guess per game.'''

        nb_actions = 2

        def reset(self, mask=None, seed=None):
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            mask = np.ones(self.nb_copies, bool) if mask is None else mask
            if not hasattr(self, "coins"):
                self.coins = np.zeros(self.nb_copies, np.int64)
                self.guesses = np.full(self.nb_copies, -1)
            self.coins[mask] = self.rng.integers(2, size=int(mask.sum()))
            self.guesses[mask] = -1

        def play(self, actions):
            self.scored = self.guesses < 0
            self.guesses[self.scored] = actions[self.scored]

        def get_frames(self):
            return np.zeros((self.nb_copies, 1), np.float32)

        def get_scores(self):
            return np.where(self.scored, 2.0 * self.is_won() - 1, 0.0)

        def is_over(self):
            return self.guesses >= 0

        def is_won(self):
            return self.guesses == self.coins
    ```
    """

    def __init__(self, nb_copies: int, seed: int | None = None):
        if isinstance(nb_copies, (bool, np.bool_)) or not isinstance(nb_copies, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__} expects an integer nb_copies. "
                f"Received: nb_copies={nb_copies!r}"
            )
        if nb_copies < 1:
            raise ValueError(
                f"{type(self).__name__} needs nb_copies >= 1. Received: nb_copies={nb_copies}"
            )
        self._nb_copies = int(nb_copies)
        self.rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        """A short name of the game, used for file names."""
        return type(self).__name__

    @property
    def nb_copies(self) -> int:
        """The number of copies stepped together."""
        return self._nb_copies

    @property
    def nb_actions(self) -> int | tuple[int, ...]:
        """The number of discrete actions, `0 .. nb_actions - 1`; a tuple of
        counts, one per part, for a game of several action parts."""
        raise NotImplementedError(
            f"{type(self).__name__} must define `nb_actions`, the number of "
            "discrete actions (a property or a class attribute holding an int)."
        )

    def reset(self, mask: np.ndarray | None = None, seed: int | None = None) -> None:
        """Restarts the copies where `mask` is true.

        Args:
            mask: A bool array `(nb_copies,)`, or `None` for every copy.
                Defaults to `None`.
            seed: Reseeds the game's generator before the restart, so that
                the same seed plays the same games. Defaults to `None`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `reset(mask=None, seed=None)`, which "
            "restarts the copies where mask is true."
        )

    def play(self, actions: np.ndarray) -> None:
        """Applies one action per copy and advances every running copy.

        Args:
            actions: An int array of shape `(nb_copies,)`, each in
                `range(nb_actions)`; `(nb_copies, nb_parts)` for a game of
                several action parts. Copies that are over ignore theirs.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `play(actions)`, which applies one "
            "action per copy and advances every running copy by one step."
        )

    def get_frames(self) -> np.ndarray:
        """Returns what the model sees of each copy: `(nb_copies,) + frame_shape`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_frames()`, which returns one "
            "frame per copy as an array of shape (nb_copies,) + frame_shape."
        )

    def get_scores(self) -> np.ndarray:
        """Returns the reward of each copy's last step: float `(nb_copies,)`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_scores()`, which returns the "
            "reward of each copy's last step, an array of shape (nb_copies,)."
        )

    def is_over(self) -> np.ndarray:
        """Returns which copies' games have ended: bool `(nb_copies,)`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `is_over()`, which returns a bool "
            "array of shape (nb_copies,)."
        )

    def is_won(self) -> np.ndarray:
        """Returns which copies' games ended in a win: bool `(nb_copies,)`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `is_won()`, which returns a bool "
            "array of shape (nb_copies,)."
        )

    def is_truncated(self) -> np.ndarray:
        """Returns which copies' games, now over, were stopped from outside their rules.

        Returns:
            All `False` unless a subclass overrides it.
        """
        return np.zeros(self.nb_copies, dtype=bool)

    def get_possible_actions(self) -> np.ndarray:
        """Returns the actions allowed in each copy: bool `(nb_copies, nb_actions)`.

        Returns:
            All `True` unless a subclass restricts them. For a game of
            several action parts, `(nb_copies, sum(nb_actions))`: the parts'
            masks one after another.
        """
        counts = self.nb_actions
        width = sum(counts) if isinstance(counts, tuple) else counts
        return np.ones((self.nb_copies, width), dtype=bool)

    def _check_actions(self, actions) -> np.ndarray:
        """Validates `play()`'s actions and returns them as an int64 array."""
        if isinstance(self.nb_actions, tuple):
            return _check_parts(self.name, actions, self.nb_actions, "actions", (self.nb_copies,))
        actions = np.asarray(actions)
        if actions.shape != (self.nb_copies,) or actions.dtype.kind not in "iu":
            raise ValueError(
                f"{self.name}.play() expects an int array of shape ({self.nb_copies},). "
                f"Received: actions of shape {actions.shape} and dtype {actions.dtype}"
            )
        if actions.size and not (actions.min() >= 0 and actions.max() < self.nb_actions):
            raise ValueError(
                f"{self.name}.play() expects actions in range({self.nb_actions}). "
                f"Received: actions from {actions.min()} to {actions.max()}"
            )
        return actions.astype(np.int64, copy=False)

    def _mask(self, mask) -> np.ndarray:
        """`reset()`'s mask as a bool array `(nb_copies,)`; every copy for `None`."""
        if mask is None:
            return np.ones(self.nb_copies, dtype=bool)
        mask = np.asarray(mask)
        if mask.shape != (self.nb_copies,) or mask.dtype != bool:
            raise ValueError(
                f"{self.name}.reset() expects mask=None or a bool array of shape "
                f"({self.nb_copies},). Received: shape {mask.shape} and dtype {mask.dtype}"
            )
        return mask
