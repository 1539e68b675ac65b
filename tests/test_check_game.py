"""qlearning4k.testing.check_game on the built-in games and on broken ones."""

import numpy as np
import pytest

from qlearning4k.games import Catch, Game, Snake
from qlearning4k.testing import check_game

pytestmark = pytest.mark.backend_free  # games and checkers only


@pytest.mark.parametrize(
    "game", [Catch(seed=0), Catch(6, seed=1), Snake(seed=0), Snake(8, 4, seed=2)]
)
def test_built_in_games_pass(game):
    check_game(game, nb_games=5, max_steps=5000)


class _Counter(Game):
    """A correct little game: count up to 3 with action 1."""

    nb_actions = 2

    def reset(self):
        self.count = 0
        self.start = int(self.rng.integers(2))

    def play(self, action):
        self.count += int(action == 1) + self.start

    def get_state(self):
        return np.array([self.count], dtype=np.float32)

    def get_score(self):
        return float(self.count >= 3)

    def is_over(self):
        return self.count >= 3

    def is_won(self):
        return self.count >= 3


class _Shape(_Counter):
    def get_state(self):
        return np.zeros((self.count + 1,), dtype=np.float32)


class _Dtype(_Counter):
    def get_state(self):
        return np.array([self.count], dtype=np.float32 if self.count == 0 else np.float64)


class _NaNFrame(_Counter):
    def get_state(self):
        return np.array([np.nan if self.count else 0.0])


class _Forever(_Counter):
    def is_over(self):
        return False

    def is_won(self):
        return False


class _WonEarly(_Counter):
    def is_won(self):
        return True


class _TruncatedEarly(_Counter):
    def is_truncated(self):
        return True


class _BadActions(_Counter):
    def get_possible_actions(self):
        return [0, 1, 2]


class _NoActions(_Counter):
    def get_possible_actions(self):
        return []


class _StaleReset(_Counter):
    def reset(self):
        if not hasattr(self, "count"):
            super().reset()
        self.count = min(getattr(self, "count", 0), 1)
        self.start = 1


class _GlobalRandom(_Counter):
    def play(self, action):
        self.count += np.random.default_rng().random() + 0.5


class _NaNScore(_Counter):
    def get_score(self):
        return float("nan")


class _TextScore(_Counter):
    def get_score(self):
        return "1"


@pytest.mark.parametrize(
    ("game", "message"),
    [
        (_Shape(), "changed shape or dtype"),
        (_Dtype(), "changed shape or dtype"),
        (_NaNFrame(), "NaN or infinity"),
        (_Forever(), "did not end within max_steps=50"),
        (_WonEarly(), "is_won\\(\\) is true while the game is not over"),
        (_TruncatedEarly(), "is_truncated\\(\\) is true while the game is not over"),
        (_BadActions(), "outside range\\(nb_actions=2\\)"),
        (_NoActions(), "get_possible_actions\\(\\) is empty"),
        (_StaleReset(), "reset\\(\\) does not restore a fresh game"),
        (_GlobalRandom(), "not deterministic under a seed"),
        (_NaNScore(), "finite number"),
        (_TextScore(), "finite number"),
    ],
)
def test_broken_games_are_reported(game, message):
    with pytest.raises(ValueError, match=message):
        check_game(game, max_steps=50)


def test_a_correct_custom_game_passes_and_is_left_unchanged():
    game = _Counter(seed=0)
    game.reset()
    game.play(1)
    check_game(game)
    assert game.count == 1 + game.start


@pytest.mark.parametrize(
    ("game", "error"),
    [("catch", TypeError), (type("NoActions", (_Counter,), {"nb_actions": 0})(), ValueError)],
)
def test_check_game_rejects_what_is_not_a_game(game, error):
    with pytest.raises(error):
        check_game(game)
