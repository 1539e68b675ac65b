"""VectorCatch: many games of Catch stepped as one NumPy operation."""

from __future__ import annotations

import numpy as np

from qlearning4k.games.catch import _BACKGROUND, _BASKET_COLOUR, _FRUIT_COLOUR, _MOVES, Catch
from qlearning4k.games.vector_game import VectorGame

_SHIFTS = np.array(_MOVES, dtype=np.int64)  # basket move of each action


class VectorCatch(VectorGame):
    """`nb_copies` games of `Catch`, stepped together.

    Description:
        Each copy is a game of `Catch`: the same board, moves, rewards and
        end, with the same start positions drawn from one generator for all
        copies. A step of every copy is a few array operations, so the cost
        of a step hardly grows with the number of copies.

    Actions:
        3 actions per copy: `0` left, `1` stay, `2` right.

    Observation:
        `get_frames()` is a `(nb_copies, grid_size, grid_size)` `uint8`
        array: copy `k`'s `Catch.get_frame()`.

    Rewards:
        `+1` for a caught fruit, `-1` for a missed one, `0` otherwise.

    Episode end:
        A copy's game ends after `grid_size - 1` steps, as in `Catch`; it is
        won when the fruit was caught.

    Args:
        nb_copies: Number of games played side by side, at least 1.
        grid_size: Width and height of each board, at least 5. Defaults to 10.
        seed: Seed of the generator of every copy's start positions.
            Defaults to `None`.

    Raises:
        TypeError, ValueError: If `nb_copies` or `grid_size` is out of range.

    Example:

    ```python
    game = VectorCatch(256, seed=0)
    game.play(np.ones(256, dtype=np.int64))  # every basket stays
    print(game.get_frames().shape)  # (256, 10, 10)
    ```
    """

    def __init__(self, nb_copies: int, grid_size: int = 10, seed: int | None = None):
        super().__init__(nb_copies, seed)
        Catch._check_grid_size(grid_size)
        self.grid_size = int(grid_size)
        n = self.nb_copies
        self.fruit_row = np.zeros(n, dtype=np.int64)
        self.fruit_col = np.zeros(n, dtype=np.int64)
        self.basket = np.zeros(n, dtype=np.int64)
        self._scores = np.zeros(n, dtype=np.float32)
        self._frames = np.zeros((n, self.grid_size, self.grid_size), dtype=np.uint8)
        self._copies = np.arange(n)
        self.reset()

    @property
    def nb_actions(self) -> int:
        return 3

    def reset(self, mask: np.ndarray | None = None, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mask = self._mask(mask)
        count = int(mask.sum())
        self.fruit_row[mask] = 0
        self.fruit_col[mask] = self.rng.integers(0, self.grid_size - 1, size=count)
        self.basket[mask] = self.rng.integers(1, self.grid_size - 2, size=count)
        self._scores[mask] = 0.0

    def play(self, actions: np.ndarray) -> None:
        actions = self._check_actions(actions)
        running = ~self.is_over()
        basket = np.clip(self.basket + _SHIFTS[actions], 1, self.grid_size - 2)
        self.basket = np.where(running, basket, self.basket)
        self.fruit_row += running
        caught = np.abs(self.fruit_col - self.basket) <= 1
        self._scores[:] = np.where(running & self.is_over(), np.where(caught, 1.0, -1.0), 0.0)

    def get_frames(self) -> np.ndarray:
        frames, k = self._frames, self._copies
        frames[:] = 0
        frames[k, self.fruit_row, self.fruit_col] = 1
        bottom = frames[:, -1]  # (nb_copies, grid_size), a view
        for shift in (-1, 0, 1):
            bottom[k, self.basket + shift] = 1
        return frames

    def get_scores(self) -> np.ndarray:
        return self._scores

    def is_over(self) -> np.ndarray:
        return self.fruit_row == self.grid_size - 1

    def is_won(self) -> np.ndarray:
        return self.is_over() & (np.abs(self.fruit_col - self.basket) <= 1)

    def draw(self) -> np.ndarray:
        """Returns every board as RGB: `(nb_copies, grid_size, grid_size, 3)` `uint8`."""
        rgb = np.empty(self._frames.shape + (3,), dtype=np.uint8)
        rgb[:] = _BACKGROUND
        k = self._copies
        for shift in (-1, 0, 1):
            rgb[k, -1, self.basket + shift] = _BASKET_COLOUR
        rgb[k, self.fruit_row, self.fruit_col] = _FRUIT_COLOUR
        return rgb
