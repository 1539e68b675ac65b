"""Snake: steer a growing snake to the fruit on a walled board."""

from __future__ import annotations

from collections import deque

import numpy as np

from qlearning4k.games.game import Game

# Cell codes of the observation grid.
_EMPTY, _WALL, _BODY, _HEAD, _FRUIT = 0, 1, 2, 3, 4
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # left, right, up, down; 4 is idle
_PALETTE = np.array(
    [
        [20, 20, 30],  # empty
        [110, 110, 120],  # wall
        [40, 170, 70],  # body
        [170, 240, 90],  # head
        [230, 60, 60],  # fruit
    ],
    dtype=np.uint8,
)


class Snake(Game):
    """Steer a snake to the fruit; it grows with each fruit it eats.

    Description:
        A square board with walls on its border. The snake starts vertical
        in the middle of the board, heading up, `snake_length` cells long.
        One fruit lies on a random free cell. Each step the snake moves one
        cell; eating the fruit makes it one cell longer and a new fruit
        appears on a random free cell.

    Actions:
        5 actions: `0` left, `1` right, `2` up, `3` down, `4` idle (keep
        going straight). An action that would reverse the snake onto itself
        is ignored and the snake keeps going straight.

    Observation:
        A `(grid_size, grid_size)` `uint8` grid: `0` empty, `1` wall,
        `2` snake body, `3` snake head, `4` fruit.

    Rewards:
        The snake's new length when it eats a fruit, `-1` when it hits a wall
        or itself, `0` otherwise.

    Episode end:
        When the snake hits a wall or itself, or when it fills the board so
        that no cell is left for a new fruit. A game that is over is won when
        the snake ate at least one fruit.

    Args:
        grid_size: Width and height of the board, walls included, at least 6.
            Defaults to 10.
        snake_length: Length of the snake at the start, between 2 and
            `grid_size - 3`. Defaults to 3.
        seed: Seed of the game's random generator. Defaults to `None`.

    Raises:
        ValueError: If `grid_size` or `snake_length` is out of range.

    Example:

    ```python
    game = Snake(grid_size=10, seed=0)
    game.reset()
    game.play(2)  # up
    print(game.get_score(), game.is_over())
    ```
    """

    def __init__(self, grid_size: int = 10, snake_length: int = 3, seed: int | None = None):
        super().__init__(seed)
        self._check_sizes(grid_size, snake_length)
        self.grid_size = int(grid_size)
        self.snake_length = int(snake_length)
        self._board = np.zeros((self.grid_size, self.grid_size), dtype=np.uint8)
        self.reset()

    @staticmethod
    def _check_sizes(grid_size, snake_length) -> None:
        for name, value in (("grid_size", grid_size), ("snake_length", snake_length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Snake expects an integer {name}. Received: {name}={value!r}")
        if grid_size < 6:
            raise ValueError(f"Snake needs grid_size >= 6. Received: grid_size={grid_size}")
        if not 2 <= snake_length <= grid_size - 3:
            raise ValueError(
                f"Snake needs 2 <= snake_length <= grid_size - 3 = {grid_size - 3}. "
                f"Received: snake_length={snake_length}"
            )

    @property
    def nb_actions(self) -> int:
        return 5

    def reset(self) -> None:
        board = self._board
        board[:] = _WALL
        board[1:-1, 1:-1] = _EMPTY
        top = (self.grid_size - self.snake_length) // 2
        col = top
        self.snake = deque((row, col) for row in range(top, top + self.snake_length))
        for cell in self.snake:
            board[cell] = _BODY
        board[self.snake[0]] = _HEAD
        self._heading = (-1, 0)
        self._dead = False
        self._full = False
        self._scored = False
        self._drop_fruit()

    def _drop_fruit(self) -> None:
        free = np.flatnonzero(self._board == _EMPTY)
        if free.size == 0:
            # The original looped forever here; a full board ends the game.
            self._full = True
            self.fruit = None
            return
        self.fruit = divmod(int(free[self.rng.integers(free.size)]), self.grid_size)
        self._board[self.fruit] = _FRUIT

    def play(self, action: int) -> None:
        action = self._check_action(action)
        self._scored = False
        if self.is_over():
            return
        if action < 4:
            move = _MOVES[action]
            if move != (-self._heading[0], -self._heading[1]):
                self._heading = move
        head = self.snake[0]
        new = (head[0] + self._heading[0], head[1] + self._heading[1])
        eating = self._board[new] == _FRUIT
        # The tail moves away this step unless the snake grows, so the head
        # may enter the cell the tail leaves.
        leaving_tail = not eating and new == self.snake[-1]
        if self._board[new] == _WALL or (self._board[new] in (_BODY, _HEAD) and not leaving_tail):
            self._dead = True
            return
        if not eating:
            self._board[self.snake.pop()] = _EMPTY
        self._board[head] = _BODY
        self.snake.appendleft(new)
        self._board[new] = _HEAD
        if eating:
            self._scored = True
            self._drop_fruit()

    def get_state(self) -> np.ndarray:
        return self._board.copy()

    def get_score(self) -> int:
        if self._dead:
            return -1
        return len(self.snake) if self._scored else 0

    def is_over(self) -> bool:
        return self._dead or self._full

    def is_won(self) -> bool:
        return self.is_over() and len(self.snake) > self.snake_length

    def draw(self) -> np.ndarray:
        """Returns the board as RGB: grey walls, green snake, red fruit."""
        return _PALETTE[self._board]
