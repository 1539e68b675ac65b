"""Catch: move a basket to catch a falling fruit."""

from __future__ import annotations

import numpy as np

from qlearning4k.games.game import Game

_MOVES = (-1, 0, 1)  # left, stay, right
_FRUIT_COLOUR = np.array([230, 60, 60], dtype=np.uint8)
_BASKET_COLOUR = np.array([240, 200, 60], dtype=np.uint8)
_BACKGROUND = np.array([20, 20, 30], dtype=np.uint8)


class Catch(Game):
    """Catch the falling fruit with a basket.

    Description:
        A fruit falls one row per step from the top row of a square grid, in
        a random column in `[0, grid_size - 2]`. A basket three cells wide
        sits on the bottom row, centred in a random column in
        `[1, grid_size - 3]` at the start, and moves one cell per step. It
        never leaves the board.

    Actions:
        3 actions: `0` moves the basket left, `1` keeps it still, `2` moves
        it right.

    Observation:
        `get_state()` and `get_frame()` return a `(grid_size, grid_size)`
        `uint8` grid: `1` where the fruit or the basket is, `0` elsewhere.

    Rewards:
        `+1` when the fruit reaches the bottom row inside the basket, `-1`
        when it reaches the bottom row outside it, `0` on every other step.

    Episode end:
        When the fruit reaches the bottom row, after `grid_size - 1` steps.
        The game is won when the fruit was caught.

    Args:
        grid_size: Width and height of the board, at least 5. Defaults to 10.
        seed: Seed of the game's random generator. Defaults to `None`.

    Raises:
        ValueError: If `grid_size` is smaller than 5.

    Example:

    ```python
    game = Catch(grid_size=10, seed=0)
    game.reset()
    while not game.is_over():
        game.play(1)
    print(game.get_score(), game.is_won())
    ```
    """

    def __init__(self, grid_size: int = 10, seed: int | None = None):
        super().__init__(seed)
        self._check_grid_size(grid_size)
        self.grid_size = int(grid_size)
        self.reset()

    @staticmethod
    def _check_grid_size(grid_size) -> None:
        if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)):
            raise TypeError(
                f"Catch expects an integer grid_size. Received: grid_size={grid_size!r}"
            )
        if grid_size < 5:
            raise ValueError(f"Catch needs grid_size >= 5. Received: grid_size={grid_size}")

    @property
    def nb_actions(self) -> int:
        return 3

    def reset(self) -> None:
        self.fruit_row = 0
        self.fruit_col = int(self.rng.integers(0, self.grid_size - 1))
        self.basket = int(self.rng.integers(1, self.grid_size - 2))

    def play(self, action: int) -> None:
        action = self._check_action(action)
        if self.is_over():
            return
        # The original clamped the basket centre at grid_size - 1, letting
        # it hang half off the board; the whole basket stays on it here.
        self.basket = min(max(1, self.basket + _MOVES[action]), self.grid_size - 2)
        self.fruit_row += 1

    def get_state(self) -> np.ndarray:
        canvas = np.zeros((self.grid_size, self.grid_size), dtype=np.uint8)
        canvas[self.fruit_row, self.fruit_col] = 1
        canvas[-1, self.basket - 1 : self.basket + 2] = 1
        return canvas

    def get_score(self) -> int:
        if not self.is_over():
            return 0
        return 1 if self.is_won() else -1

    def is_over(self) -> bool:
        return self.fruit_row == self.grid_size - 1

    def is_won(self) -> bool:
        return self.is_over() and abs(self.fruit_col - self.basket) <= 1

    def draw(self) -> np.ndarray:
        """Returns the board as RGB: a red fruit and a yellow basket."""
        rgb = np.empty((self.grid_size, self.grid_size, 3), dtype=np.uint8)
        rgb[:] = _BACKGROUND
        rgb[-1, self.basket - 1 : self.basket + 2] = _BASKET_COLOUR
        rgb[self.fruit_row, self.fruit_col] = _FRUIT_COLOUR
        return rgb
