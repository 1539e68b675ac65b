"""Games an `Agent` can learn, and the `Game` contract for your own."""

from qlearning4k.games.catch import Catch
from qlearning4k.games.game import Game
from qlearning4k.games.snake import Snake

__all__ = ["Catch", "Game", "Snake"]
