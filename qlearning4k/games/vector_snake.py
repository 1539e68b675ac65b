"""VectorSnake: many games of Snake stepped as one NumPy operation."""

from __future__ import annotations

import numpy as np

from qlearning4k.games.snake import _BODY, _EMPTY, _FRUIT, _HEAD, _MOVES, _PALETTE, _WALL, Snake
from qlearning4k.games.vector_game import VectorGame

_STEPS = np.array(_MOVES + ((0, 0),), dtype=np.int64)  # (5, 2): each action's move; idle none


class VectorSnake(VectorGame):
    """`nb_copies` games of `Snake`, stepped together.

    Description:
        Each copy is a game of `Snake`: the same board, start, moves,
        rewards and end. Fruits fall on random free cells drawn from one
        generator for all copies. Each snake's cells are kept in a ring per
        copy, so a step of every copy is a few array operations.

    Actions:
        5 actions per copy: `0` left, `1` right, `2` up, `3` down, `4` idle.
        An action that would reverse a snake onto itself is ignored.

    Observation:
        `get_frames()` is a `(nb_copies, grid_size, grid_size)` `uint8`
        array of boards coded as in `Snake`: `0` empty, `1` wall, `2` body,
        `3` head, `4` fruit.

    Rewards:
        The snake's new length when it eats, `-1` when it dies, `0`
        otherwise.

    Episode end:
        When a snake hits a wall or itself, or fills its board. A game that
        is over is won when its snake ate at least one fruit.

    Args:
        nb_copies: Number of games played side by side, at least 1.
        grid_size: Width and height of each board, walls included, at least
            6. Defaults to 10.
        snake_length: Length of each snake at the start, between 2 and
            `grid_size - 3`. Defaults to 3.
        seed: Seed of the generator of every copy's fruits. Defaults to
            `None`.

    Raises:
        TypeError, ValueError: If an argument is out of range.

    Example:

    ```python
    game = VectorSnake(64, seed=0)
    game.play(np.full(64, 2))  # every snake goes up
    print(game.get_scores().shape)  # (64,)
    ```
    """

    def __init__(
        self,
        nb_copies: int,
        grid_size: int = 10,
        snake_length: int = 3,
        seed: int | None = None,
    ):
        super().__init__(nb_copies, seed)
        Snake._check_sizes(grid_size, snake_length)
        self.grid_size, self.snake_length = int(grid_size), int(snake_length)
        n, size = self.nb_copies, self.grid_size
        self._board = np.zeros((n, size, size), dtype=np.uint8)
        self._ring = (size - 2) ** 2 + 1  # room for a snake that fills the board
        self._cells = np.zeros((n, self._ring, 2), dtype=np.int64)  # each snake, in a ring
        self._head = np.zeros(n, dtype=np.int64)  # ring index of each head
        self.length = np.zeros(n, dtype=np.int64)
        self._heading = np.zeros((n, 2), dtype=np.int64)
        self._dead = np.zeros(n, dtype=bool)
        self._full = np.zeros(n, dtype=bool)
        self._scores = np.zeros(n, dtype=np.float32)
        self._copies = np.arange(n)
        self.reset()

    @property
    def nb_actions(self) -> int:
        return 5

    def reset(self, mask: np.ndarray | None = None, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mask = self._mask(mask)
        k = np.flatnonzero(mask)
        if not len(k):
            return
        length, top = self.snake_length, (self.grid_size - self.snake_length) // 2
        board = self._board
        board[k] = _WALL
        board[k, 1:-1, 1:-1] = _EMPTY
        # Ring index i holds row top + length - 1 - i: the head, at length - 1, on top.
        rows = top + length - 1 - np.arange(length)
        self._cells[k, :length, 0] = rows
        self._cells[k, :length, 1] = top
        board[k[:, None], rows, top] = _BODY
        board[k, top, top] = _HEAD
        self._head[k], self.length[k] = length - 1, length
        self._heading[k] = (-1, 0)
        self._dead[k] = self._full[k] = False
        self._scores[k] = 0.0
        self._drop_fruits(k)

    def _drop_fruits(self, k: np.ndarray) -> None:
        """A fruit on a random free cell of each board `k`; a full board ends its game."""
        free = (self._board[k] == _EMPTY).reshape(len(k), -1)  # (len(k), cells)
        full = ~free.any(axis=1)
        self._full[k[full]] = True
        draws = np.where(free, self.rng.random(free.shape), -1.0)
        cell = draws.argmax(axis=1)[~full]
        rows, cols = np.divmod(cell, self.grid_size)
        self._board[k[~full], rows, cols] = _FRUIT

    def play(self, actions: np.ndarray) -> None:
        actions = self._check_actions(actions)
        running = ~self.is_over()
        self._scores[:] = 0.0
        moves = _STEPS[actions]  # (n, 2)
        turn = (actions < 4) & ~(moves == -self._heading).all(axis=1) & running
        self._heading[turn] = moves[turn]
        k = np.flatnonzero(running)
        board, cells = self._board, self._cells
        head = cells[k, self._head[k]]  # (m, 2)
        new = head + self._heading[k]
        there = board[k, new[:, 0], new[:, 1]]
        eating = there == _FRUIT
        tail = cells[k, (self._head[k] - self.length[k] + 1) % self._ring]
        # The tail moves away this step unless the snake grows, so the head
        # may enter the cell the tail leaves.
        leaving_tail = ~eating & (new == tail).all(axis=1)
        dies = (there == _WALL) | (((there == _BODY) | (there == _HEAD)) & ~leaving_tail)
        self._dead[k[dies]] = True
        self._scores[k[dies]] = -1.0
        moving = ~dies
        k, head, new, tail, eating = (
            k[moving],
            head[moving],
            new[moving],
            tail[moving],
            eating[moving],
        )
        shrink = ~eating
        board[k[shrink], tail[shrink, 0], tail[shrink, 1]] = _EMPTY
        board[k, head[:, 0], head[:, 1]] = _BODY
        self._head[k] = (self._head[k] + 1) % self._ring
        cells[k, self._head[k]] = new
        board[k, new[:, 0], new[:, 1]] = _HEAD
        grown = k[eating]
        self.length[grown] += 1
        self._scores[grown] = self.length[grown]
        if len(grown):
            self._drop_fruits(grown)

    def get_frames(self) -> np.ndarray:
        return self._board

    def get_scores(self) -> np.ndarray:
        return self._scores

    def is_over(self) -> np.ndarray:
        return self._dead | self._full

    def is_won(self) -> np.ndarray:
        return self.is_over() & (self.length > self.snake_length)

    def draw(self) -> np.ndarray:
        """Returns every board as RGB: `(nb_copies, grid_size, grid_size, 3)` `uint8`."""
        return _PALETTE[self._board]
