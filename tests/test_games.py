"""Rules of Catch and Snake, played by script, and the Game contract."""

import numpy as np
import pytest

from qlearning4k.games import Catch, Game, Snake

pytestmark = pytest.mark.backend_free  # games and checkers only

LEFT, STAY, RIGHT = 0, 1, 2
S_LEFT, S_RIGHT, S_UP, S_DOWN, S_IDLE = 0, 1, 2, 3, 4


def test_catch_start_positions_cover_the_documented_ranges():
    fruits, baskets = set(), set()
    for seed in range(300):
        game = Catch(10, seed=seed)
        fruits.add(game.fruit_col)
        baskets.add(game.basket)
        assert game.fruit_row == 0
    assert fruits == set(range(0, 9))
    assert baskets == set(range(1, 8))


@pytest.mark.parametrize(
    ("fruit_col", "basket", "action", "won", "score"),
    [
        (4, 4, STAY, True, 1),  # already under it
        (0, 1, LEFT, True, 1),  # basket clamps at the left edge and still catches
        (8, 7, RIGHT, True, 1),  # moves right, clamps at grid_size - 2
        (0, 7, STAY, False, -1),
        (8, 1, LEFT, False, -1),
    ],
)
def test_catch_scripted_games(fruit_col, basket, action, won, score):
    game = Catch(10, seed=0)
    game.fruit_col, game.basket = fruit_col, basket
    steps = 0
    while not game.is_over():
        assert game.get_score() == 0
        assert not game.is_won()
        game.play(action)
        steps += 1
        assert 1 <= game.basket <= 8
    assert steps == 9
    assert game.is_won() is won
    assert game.get_score() == score


def test_catch_frame_shows_fruit_and_three_wide_basket():
    game = Catch(6, seed=0)
    game.fruit_col, game.basket = 2, 3
    frame = game.get_frame()
    assert frame.dtype == np.uint8 and frame.shape == (6, 6)
    assert frame[0, 2] == 1 and frame[-1, 2:5].tolist() == [1, 1, 1]
    assert frame.sum() == 4
    assert game.draw().shape == (6, 6, 3)


def test_games_are_deterministic_under_a_seed():
    def trace(game_class, seed):
        game = game_class(seed=seed)
        rng = np.random.default_rng(0)
        frames = []
        for _ in range(5):
            game.reset()
            while not game.is_over():
                game.play(int(rng.integers(game.nb_actions)))
                frames.append(game.get_frame())
        return np.stack(frames)

    for game_class in (Catch, Snake):
        np.testing.assert_array_equal(trace(game_class, 3), trace(game_class, 3))
        assert not np.array_equal(trace(game_class, 3)[:9], trace(game_class, 4)[:9])


@pytest.mark.parametrize(
    ("game", "action", "error"),
    [
        (Catch(seed=0), 3, ValueError),
        (Catch(seed=0), -1, ValueError),
        (Catch(seed=0), 1.0, TypeError),
        (Snake(seed=0), 5, ValueError),
        (Snake(seed=0), "up", TypeError),
    ],
)
def test_play_rejects_invalid_actions(game, action, error):
    with pytest.raises(error, match="action"):
        game.play(action)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"grid_size": 4}, ValueError),
        ({"grid_size": 10.0}, TypeError),
    ],
)
def test_catch_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match="grid_size"):
        Catch(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"grid_size": 5}, ValueError),
        ({"snake_length": 1}, ValueError),
        ({"grid_size": 8, "snake_length": 6}, ValueError),
        ({"snake_length": "3"}, TypeError),
    ],
)
def test_snake_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match=r"grid_size|snake_length"):
        Snake(**kwargs)


def test_snake_start_and_frame_codes():
    game = Snake(10, 3, seed=0)
    frame = game.get_frame()
    assert frame.dtype == np.uint8 and frame.shape == (10, 10)
    assert (frame[0] == 1).all() and (frame[:, -1] == 1).all()
    assert list(game.snake) == [(3, 3), (4, 3), (5, 3)]
    assert frame[3, 3] == 3 and frame[4, 3] == 2 and frame[5, 3] == 2
    assert (frame == 4).sum() == 1
    assert game.draw().shape == (10, 10, 3)


def _place_fruit(game, cell):
    game._board[game.fruit] = 0
    game.fruit = cell
    game._board[cell] = 4


def test_snake_hits_the_wall_going_up():
    game = Snake(10, 3, seed=0)
    _place_fruit(game, (8, 8))
    for step in range(2):
        game.play(S_UP)
        assert not game.is_over(), step
        assert game.get_score() == 0
    game.play(S_IDLE)  # head at row 1; row 0 is wall
    assert game.is_over() and game.get_score() == -1 and not game.is_won()
    game.play(S_UP)  # a finished game ignores further actions
    assert game.is_over()


def test_snake_reverse_is_ignored_and_idle_goes_straight():
    game = Snake(10, 3, seed=0)
    _place_fruit(game, (8, 8))
    game.play(S_DOWN)  # reversing onto the body: keeps going up
    assert game.snake[0] == (2, 3)
    game.play(S_LEFT)
    game.play(S_IDLE)
    assert game.snake[0] == (2, 1)
    assert not game.is_over()


def test_snake_eats_grows_and_scores_its_length():
    game = Snake(10, 3, seed=0)
    _place_fruit(game, (2, 3))
    game.play(S_UP)
    assert game.get_score() == 4 and len(game.snake) == 4
    assert game.fruit != (2, 3) and game._board[game.fruit] == 4
    game.play(S_LEFT)
    assert game.get_score() == 0 and len(game.snake) == 4
    assert not game.is_won()  # not over yet
    game.play(S_IDLE)
    game.play(S_IDLE)  # into the left wall
    assert game.is_over() and game.is_won() and game.get_score() == -1


def test_snake_bites_itself():
    game = Snake(10, 5, seed=0)
    _place_fruit(game, (8, 8))
    for action in (S_LEFT, S_DOWN, S_RIGHT):
        game.play(action)
    assert game.is_over() and game.get_score() == -1


def test_snake_may_follow_its_tail():
    game = Snake(10, 4, seed=0)
    _place_fruit(game, (8, 8))
    for action in (S_LEFT, S_DOWN, S_RIGHT, S_UP, S_LEFT, S_DOWN):
        game.play(action)
        assert not game.is_over()


def test_snake_filling_the_board_ends_the_game_instead_of_hanging():
    game = Snake(6, 2, seed=0)  # a 4x4 inside
    board = game._board
    board[1:-1, 1:-1] = 2
    path = [(1, 1), (1, 2), (1, 3), (1, 4), (2, 4), (2, 3), (2, 2), (2, 1)]
    path += [(3, 1), (3, 2), (3, 3), (3, 4), (4, 4), (4, 3), (4, 2)]
    game.snake.clear()
    game.snake.extend(reversed(path))  # head at (4, 2), heading left
    board[game.snake[0]] = 3
    game._heading = (0, -1)
    game.fruit = (4, 1)
    board[4, 1] = 4
    game.play(S_IDLE)
    assert game.is_over() and game.is_won() and game.fruit is None
    assert game.get_score() == 16


class _Incomplete(Game):
    pass


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda g: g.nb_actions, "nb_actions"),
        (lambda g: g.reset(), "reset"),
        (lambda g: g.play(0), "play"),
        (lambda g: g.get_state(), "get_state"),
        (lambda g: g.get_score(), "get_score"),
        (lambda g: g.is_over(), "is_over"),
        (lambda g: g.is_won(), "is_won"),
    ],
)
def test_game_contract_says_what_to_implement(call, what):
    with pytest.raises(NotImplementedError, match=f"_Incomplete must .*{what}"):
        call(_Incomplete())


def test_game_defaults():
    class Tiny(Game):
        nb_actions = 2

        def get_state(self):
            return np.array([[0.0, 2.0]])

    game = Tiny(seed=0)
    assert game.name == "Tiny"
    assert game.get_possible_actions() == [0, 1]
    np.testing.assert_array_equal(game.get_frame(), [[0.0, 2.0]])
    picture = game.draw()
    assert picture.dtype == np.uint8 and picture.shape == (1, 2, 3)
    assert picture[0, 1].tolist() == [255, 255, 255]
