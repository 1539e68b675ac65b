"""Gymnasium both ways: GymGame (env -> Game) and GameEnv (Game -> env)."""

import sys
import warnings

import gymnasium
import keras
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import qlearning4k  # noqa: F401  (registers the qlearning4k/ ids)
from qlearning4k import Agent
from qlearning4k.games import Catch, GameEnv, GymGame, Snake
from qlearning4k.testing import check_game


@pytest.mark.parametrize("env_id", ["qlearning4k/Catch-v0", "qlearning4k/Snake-v0"])
def test_registered_games_pass_check_env_without_warnings(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=0)
    assert env.render().shape[-1] == 3


def test_make_passes_game_arguments():
    env = gymnasium.make("qlearning4k/Catch-v0", grid_size=6)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (6, 6) and observation.dtype == np.uint8
    assert env.action_space.n == 3


@pytest.mark.parametrize("game_class", [Catch, Snake])
def test_game_to_env_and_back_plays_identically(game_class):
    wrapped = GymGame(game_class(seed=1).to_gym(), seed=7)
    seeds = np.random.default_rng(7)
    actions = np.random.default_rng(0)
    for _ in range(3):
        direct = game_class(seed=int(seeds.integers(2**31)))  # what GymGame's reset asks for
        if _:
            wrapped.reset()
        np.testing.assert_array_equal(wrapped.get_frame(), direct.get_frame())
        while not direct.is_over():
            action = int(actions.integers(direct.nb_actions))
            direct.play(action)
            wrapped.play(action)
            np.testing.assert_array_equal(wrapped.get_frame(), direct.get_frame())
            assert wrapped.get_score() == direct.get_score()
        assert wrapped.is_over() and wrapped.is_won() == direct.is_won()


def test_env_reset_seed_and_step_five_tuple():
    env = GameEnv(Catch(seed=0))
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    observation, reward, terminated, truncated, info = env.step(1)
    assert observation in env.observation_space and reward == 0.0
    assert (terminated, truncated) == (False, False) and info == {"won": False}


def test_discrete_and_box_observations_become_float32_frames():
    lake = GymGame("FrozenLake-v1", is_slippery=False, seed=0)
    assert lake.get_frame().dtype == np.float32 and lake.get_frame().tolist() == [1.0] + [0.0] * 15
    pole = GymGame("CartPole-v1", seed=0)
    assert pole.get_frame().shape == (4,) and pole.get_frame().dtype == np.float32


def test_draw_renders_only_with_a_render_mode():
    plain = GymGame("CartPole-v1", seed=0)
    assert plain.env.render_mode is None  # as gymnasium.make makes it: nothing rendered
    with pytest.warns(UserWarning, match="render_mode='rgb_array'"):
        assert plain.draw().shape == (1, 4, 3)  # grey levels of the frame
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per game
        plain.draw()
    pole = GymGame("CartPole-v1", seed=0, render_mode="rgb_array")
    try:  # Gymnasium renders CartPole with pygame (gymnasium[classic-control] or [box2d])
        import pygame  # noqa: F401

        picture = (400, 600, 3)
    except ImportError:  # the default drawing: grey levels of the frame
        picture = (1, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pole.draw().shape == picture


@pytest.mark.parametrize(
    ("win", "expected"),
    [(None, True), (1.0, True), (2.0, False), (lambda total, terminated, truncated: False, False)],
)
def test_win_rules(win, expected):
    game = GymGame("FrozenLake-v1", is_slippery=False, win=win, seed=0)
    for action in (2, 2, 1, 1, 1, 2):  # right, right, down, down, down, right: the goal
        game.play(action)
    assert game.is_over() and game.total_reward == 1.0
    assert game.is_won() is expected


def test_truncation_is_not_a_win_by_default():
    game = GymGame("FrozenLake-v1", is_slippery=False, max_episode_steps=3, seed=0)
    for _ in range(3):
        game.play(0)  # left, against the wall
    assert game.is_over() and not game.is_won()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: GymGame("MountainCarContinuous-v0"), ValueError, "Discrete action space"),
        (lambda: GymGame(Catch()), TypeError, "gymnasium.Env"),
        (lambda: GymGame("FrozenLake-v1", win="goal"), TypeError, "win"),
        (lambda: GymGame(gymnasium.make("FrozenLake-v1"), is_slippery=False), TypeError, "id"),
        (lambda: GameEnv("catch"), TypeError, "Game"),
        (lambda: GameEnv(Catch(), render_mode="human"), ValueError, "rgb_array"),
    ],
)
def test_bad_wrapping_is_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "make", [lambda: GymGame("CartPole-v1"), lambda: GameEnv(Catch())], ids=["GymGame", "GameEnv"]
)
def test_missing_gymnasium_says_how_to_install(monkeypatch, make):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r'pip install "qlearning4k\[gym\]"'):
        make()


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [("FrozenLake-v1", {"is_slippery": False}), ("CartPole-v1", {})]
)
def test_gym_games_pass_check_game(env_id, kwargs):
    check_game(GymGame(env_id, seed=0, **kwargs), nb_games=3, max_steps=600)


def test_agent_learns_non_slippery_frozen_lake():
    model = keras.Sequential([keras.Input((1, 16)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(0.02), "mse")
    agent = Agent(model, memory_size=2000, seed=0)
    agent.train(
        GymGame("FrozenLake-v1", is_slippery=False, win=1.0, seed=0),
        nb_epoch=300, batch_size=32, epsilon=(1.0, 0.1), epsilon_rate=0.6, nb_parallel=4,
        verbose=0,
    )  # fmt: skip
    lake = GymGame("FrozenLake-v1", is_slippery=False, win=1.0, seed=1)
    assert agent.play(lake, nb_epoch=20, visualize=False, verbose=0, max_steps=100) == 1.0


def test_a_time_limit_reaches_both_adapters_as_truncation():
    game = GymGame(gymnasium.make("CartPole-v1", max_episode_steps=3), seed=0)
    env = game.to_gym()
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(3)]  # (terminated, truncated)
    assert ends == [(False, False), (False, False), (False, True)]
    assert game.is_over() and game.is_truncated() and not game.is_won()
