"""Games an `Agent` can learn, the `Game` and `VectorGame` contracts, and Gymnasium adapters.

`GymGame` (any Gymnasium env as a `Game`), `GymVectorGame` (a Gymnasium
vector env as a `VectorGame`), `GameEnv` (any `Game` as a Gymnasium env) and
`DiscretizedActions` (continuous actions cut into bins) need the optional
Gymnasium dependency: `pip install "qlearning4k[gym]"`.
"""

from qlearning4k.games import registration as _registration
from qlearning4k.games.catch import Catch
from qlearning4k.games.discretized_actions import DiscretizedActions
from qlearning4k.games.game import Game
from qlearning4k.games.game_env import GameEnv
from qlearning4k.games.gym_game import GymGame
from qlearning4k.games.gym_vector_game import GymVectorGame
from qlearning4k.games.snake import Snake
from qlearning4k.games.vector_catch import VectorCatch
from qlearning4k.games.vector_game import VectorGame
from qlearning4k.games.vector_snake import VectorSnake

__all__ = [
    "Catch",
    "DiscretizedActions",
    "Game",
    "GameEnv",
    "GymGame",
    "GymVectorGame",
    "Snake",
    "VectorCatch",
    "VectorGame",
    "VectorSnake",
]

_registration.register_envs()
