"""Pixel games no one here wrote: MinAtar and Atari (ale-py) through Gymnasium."""

import ale_py
import gymnasium
import keras
import minatar.gym
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent
from qlearning4k.games import GymGame, GymVectorGame

minatar.gym.register_envs()
gymnasium.register_envs(ale_py)


def _atari(env_id="ALE/Breakout-v5"):
    """The usual Atari preprocessing: 84x84 grey frames, 4 frames a step, up to 30 no-ops."""
    env = gymnasium.make(env_id, frameskip=1)
    return gymnasium.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, noop_max=30)


def _nature_dqn(nb_actions, nb_frames=4):
    """The Nature DQN convnet on (nb_frames, 84, 84) uint8 stacks."""
    model = keras.Sequential(
        [
            keras.Input((nb_frames, 84, 84)),
            keras.layers.Permute((2, 3, 1)),  # frames become channels
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(32, 8, strides=4, activation="relu"),
            keras.layers.Conv2D(64, 4, strides=2, activation="relu"),
            keras.layers.Conv2D(64, 3, strides=1, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(nb_actions),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-4), keras.losses.Huber())
    return model


@pytest.mark.backend_free
@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: gymnasium.make("MinAtar/Breakout-v1"), (10, 10, 4)),  # bool, channels last
        (_atari, (84, 84)),  # uint8 pixels
    ],
    ids=["minatar", "atari"],
)
def test_pixel_frames_take_one_byte(make, shape):
    frame = GymGame(make(), seed=0).get_frame()
    assert frame.shape == shape and frame.dtype == np.uint8


def test_minatar_breakout_trains_on_channels_last_frames():
    game = GymGame(gymnasium.make("MinAtar/Breakout-v1"), seed=0)
    model = keras.Sequential(
        [
            keras.Input((1, 10, 10, 4)),
            keras.layers.Reshape((10, 10, 4)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile("adam", "huber")
    agent = Agent(model, memory_size=500, seed=0)
    history = agent.train(game, total_timesteps=300, learning_starts=100, batch_size=16,
                          target_update_interval=100, verbose=0)  # fmt: skip
    assert sum(history.history["steps"]) <= 300 and len(agent.memory) > 100
    assert agent.memory._transitions(np.arange(4))[0].dtype == np.uint8
    results = agent.evaluate(GymGame(gymnasium.make("MinAtar/Breakout-v1")), nb_games=3, seed=0)
    assert results["nb_games"] == 3


def test_atari_breakout_with_the_nature_network_and_frames_stacked_by_the_agent():
    game = GymGame(_atari(), seed=0)
    agent = Agent(_nature_dqn(game.nb_actions), memory_size=1_000, seed=0)
    history = agent.train(game, total_timesteps=160, learning_starts=100, batch_size=8,
                          train_freq=4, verbose=0)  # fmt: skip
    n = len(agent.memory)
    states, next_states = agent.memory._transitions(np.arange(n))
    assert states.shape[1:] == (4, 84, 84) and states.dtype == np.uint8
    # Each next state is its state shifted by one new frame, and the next
    # transition of the game starts from it: stacks rebuilt from single frames.
    np.testing.assert_array_equal(next_states[:, :-1], states[:, 1:])
    going_on = ~agent.memory._game_over[: n - 1]
    np.testing.assert_array_equal(states[1:][going_on], next_states[:-1][going_on])
    assert states[:, -1].std() > 0  # real pictures, not blank frames
    assert sum(history.history["steps"]) <= 160
    # The frame-once memory: about one frame a transition, not five.
    assert agent.memory._layout.written <= 1.3 * len(agent.memory)


def test_a_vector_env_of_minatar_games_steps_with_a_vector_game():
    envs = gymnasium.make_vec("MinAtar/Breakout-v1", num_envs=3, vectorization_mode="sync")
    game = GymVectorGame(envs, seed=0)
    assert game.get_frames().shape == (3, 10, 10, 4) and game.get_frames().dtype == np.uint8
    agent = Agent(make_model(frame_shape=(10, 10, 4)), seed=0)
    assert agent.evaluate(game, nb_games=4, seed=0)["nb_games"] == 4
    envs.close()
