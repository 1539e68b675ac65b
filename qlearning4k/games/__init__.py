"""Games an `Agent` can learn, the `Game` contract for your own, and Gymnasium adapters.

`GymGame` (any Gymnasium env as a `Game`) and `GameEnv` (any `Game` as a
Gymnasium env) need the optional Gymnasium dependency:
`pip install "qlearning4k[gym]"`.
"""

from qlearning4k.games import game_env as _game_env
from qlearning4k.games.catch import Catch
from qlearning4k.games.game import Game
from qlearning4k.games.game_env import GameEnv
from qlearning4k.games.gym_game import GymGame
from qlearning4k.games.snake import Snake

__all__ = ["Catch", "Game", "GameEnv", "GymGame", "Snake"]

_game_env._register_envs()
