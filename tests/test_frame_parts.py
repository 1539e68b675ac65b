"""Frames in parts: games that show a dict (or tuple) of arrays, models of one named input each."""

import keras
import numpy as np
import pytest

from qlearning4k import Agent, FrameStack, PrioritizedExperienceReplay
from qlearning4k.games import Catch, VectorCatch

GRID = 10


class PartsCatch(Catch):
    """Catch whose frame comes in two parts: the fruit's grid without the basket
    (float32) and the basket's column, one-hot (uint8). A policy needs both."""

    def get_frame(self):
        fruit = np.zeros((GRID, GRID), dtype=np.float32)
        fruit[self.fruit_row, self.fruit_col] = 1.0
        return {"fruit": fruit, "basket": np.eye(GRID, dtype=np.uint8)[self.basket]}


class TuplePartsCatch(PartsCatch):
    """The same parts as a tuple, in the order of a model built on a list of inputs."""

    def get_frame(self):
        parts = super().get_frame()
        return parts["fruit"], parts["basket"]


class VectorPartsCatch(VectorCatch):
    """`PartsCatch` as a vector game: each part with the copies first."""

    def get_frames(self):
        grid = super().get_frames()
        basket = np.eye(GRID, dtype=np.uint8)[self.basket]
        return {"fruit": grid[:, :-1].astype(np.float32), "basket": basket}


def _model(nb_frames=1, fruit_shape=(GRID, GRID), hidden=100, nb_actions=3, as_list=False):
    fruit = keras.Input((nb_frames, *fruit_shape), name="fruit")
    basket = keras.Input((nb_frames, GRID), name="basket")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(fruit), keras.layers.Flatten()(basket)])
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    inputs = [fruit, basket] if as_list else {"fruit": fruit, "basket": basket}
    model = keras.Model(inputs, keras.layers.Dense(nb_actions)(x))
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    return model


# Untrained, the greedy policy wins 0.2 to 0.3 of Catch(10) games, and no
# trivial policy more than 0.39 (tests/test_learning.py): 0.9 is well clear.
# With every option the greedy policy swings more at 250 games (as in
# tests/test_learning.py), so that row trains 400.
@pytest.mark.parametrize(
    "memory, options, games",
    [
        (None, {}, 250),
        (
            lambda: PrioritizedExperienceReplay(1000, seed=0),
            {"target_update": 50, "double_dqn": True, "n_step": 3},
            400,
        ),
    ],
    ids=["plain", "prioritized-n-step-target"],
)
def test_an_agent_learns_catch_from_frames_in_parts(memory, options, games):
    agent = Agent(_model(), memory=memory() if memory else None, seed=0)
    agent.train(PartsCatch(seed=0), nb_epoch=games, batch_size=32, verbose=0, **options)
    assert agent.play(PartsCatch(seed=12345), nb_epoch=200, visualize=False, verbose=0) >= 0.9


def test_a_vector_game_in_parts_learns_catch_and_stacks_frames():
    fruit_shape = (GRID - 1, GRID)
    model = _model(nb_frames=2, fruit_shape=fruit_shape)
    agent = Agent(model, seed=0)
    assert agent.frame_shape == {"fruit": fruit_shape, "basket": (GRID,)}
    # One gradient step a move of each copy, as tests/test_vector_games.py trains.
    agent.train(VectorPartsCatch(8, seed=0), nb_epoch=600, gradient_steps=8, verbose=0)
    assert agent.evaluate(VectorPartsCatch(50, seed=1), nb_games=200)["win_rate"] >= 0.9


def test_tuple_frames_follow_the_inputs_order():
    agent = Agent(_model(as_list=True), seed=0)
    agent.train(TuplePartsCatch(seed=0), nb_epoch=3, batch_size=8, verbose=0)
    game = TuplePartsCatch(seed=3)
    as_dict = PartsCatch.get_frame(game)
    np.testing.assert_array_equal(agent.q_values(game.get_frame()), agent.q_values(as_dict))


def test_act_and_q_values_take_a_frame_a_state_or_a_batch_of_parts():
    agent = Agent(_model(nb_frames=2), seed=0)
    game = PartsCatch(seed=0)
    stack = FrameStack(2)
    state = stack.reset(game.get_frame())
    assert state["fruit"].shape == (2, GRID, GRID) and state["basket"].shape == (2, GRID)
    game.play(0)
    state = stack.push(game.get_frame())
    np.testing.assert_array_equal(state["basket"][0], np.eye(GRID)[PartsCatch(seed=0).basket])
    one = agent.q_values(state)
    batch = agent.q_values({key: np.stack([part, part]) for key, part in state.items()})
    assert one.shape == (3,) and batch.shape == (2, 3)
    np.testing.assert_allclose(batch[0], one, rtol=1e-6)
    np.testing.assert_allclose(batch[1], one, rtol=1e-6)
    assert agent.act(state) == int(np.argmax(one))
    assert agent.act(state, mask=np.array([False, True, False])) == 1


def test_a_saved_agent_plays_the_same_after_loading(tmp_path):
    agent = Agent(_model(), seed=0)
    agent.train(PartsCatch(seed=0), nb_epoch=5, batch_size=8, verbose=0)
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    frame = PartsCatch(seed=7).get_frame()
    np.testing.assert_allclose(loaded.q_values(frame), agent.q_values(frame), rtol=1e-6)


@pytest.mark.parametrize(
    "frame, message",
    [
        ({"fruit": np.zeros((GRID, GRID))}, "keys \\['basket', 'fruit'\\]"),
        ({"fruit": np.zeros((GRID, GRID)), "basket": np.zeros(GRID + 1)}, "part 'basket'"),
        (np.zeros((GRID, GRID)), "a dict keyed by their names or a tuple of 2"),
        ((np.zeros((GRID, GRID)),), "Received: 1 parts"),
    ],
    ids=["missing key", "wrong shape", "one array", "short tuple"],
)
def test_frames_that_do_not_fit_the_inputs_are_named(frame, message):
    class Wrong(Catch):
        def get_frame(self):
            return frame

    with pytest.raises(ValueError, match=message):
        Agent(_model(), seed=0).train(Wrong(seed=0), nb_epoch=1, verbose=0)


def test_a_dict_frame_for_a_model_of_one_input_says_what_to_do():
    model = keras.Sequential([keras.Input((1, GRID, GRID)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])  # fmt: skip
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"one keras.Input per part"):
        Agent(model, seed=0).train(PartsCatch(seed=0), nb_epoch=1, verbose=0)


def test_inputs_must_share_nb_frames():
    a, b = keras.Input((2, 3), name="a"), keras.Input((1, 3), name="b")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(a), keras.layers.Flatten()(b)])
    model = keras.Model([a, b], keras.layers.Dense(2)(x))
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"share nb_frames.*'a': 2, 'b': 1"):
        Agent(model)


# -- Gymnasium's Dict and Tuple spaces ---------------------------------------------


def _sampling_env_class(parts, length: int):
    """A Gymnasium env class observing a Dict of `parts` (name: space, given the spaces
    module), each observation drawn from the space; rewards the action; ends after
    `length` steps."""
    gymnasium = pytest.importorskip("gymnasium")
    spaces = gymnasium.spaces

    class SamplingEnv(gymnasium.Env):
        observation_space = spaces.Dict(parts(spaces))
        action_space = spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.observation_space.seed(seed)
            self.t = 0
            return self.observation_space.sample(), {}

        def step(self, action):
            self.t += 1
            return self.observation_space.sample(), float(action), self.t == length, False, {}

    return SamplingEnv


def _parts_env_class():
    """Every kind of part; ends after 5 steps."""
    return _sampling_env_class(
        lambda spaces: {
            "pixels": spaces.Box(0, 255, (3, 4), np.uint8),
            "sensors": spaces.Box(-1.0, 1.0, (2,), np.float64),
            "room": spaces.Discrete(3, start=1),
            "keys": spaces.MultiDiscrete([2, 3]),
            "flags": spaces.MultiBinary(4),
        },
        length=5,
    )


def _expected(observation):
    """What GymGame makes of a PartsEnv observation, written out by hand."""
    room = np.zeros(3, np.uint8)
    room[observation["room"] - 1] = 1
    keys = np.zeros(5, np.uint8)
    keys[observation["keys"][0]] = 1
    keys[2 + observation["keys"][1]] = 1
    return {
        "pixels": observation["pixels"],
        "sensors": observation["sensors"].astype(np.float32),
        "room": room,
        "keys": keys,
        "flags": observation["flags"].astype(np.uint8),
    }


def _assert_frames_equal(frame, expected):
    assert set(frame) == set(expected)
    for key, part in expected.items():
        assert frame[key].dtype == part.dtype, key
        np.testing.assert_array_equal(frame[key], part, err_msg=key)


def test_gym_game_turns_each_kind_of_part_into_an_array():
    from qlearning4k.games import GymGame

    env = _parts_env_class()()
    game = GymGame(env, seed=0)
    env_observation = env.observation_space.sample()  # the conversion, on a value of ours
    _assert_frames_equal(game._frame(env_observation), _expected(env_observation))
    frame = game.get_frame()
    assert {k: v.shape for k, v in frame.items()} == {
        "pixels": (3, 4), "sensors": (2,), "room": (3,), "keys": (5,), "flags": (4,)
    }  # fmt: skip


def test_a_gym_vector_game_of_dict_observations_matches_its_sub_environments():
    gymnasium = pytest.importorskip("gymnasium")
    from qlearning4k.games import GymVectorGame

    env_class = _parts_env_class()
    envs = gymnasium.vector.SyncVectorEnv([env_class for _ in range(3)])
    game = GymVectorGame(envs, seed=0)
    observations, _ = envs.reset(seed=5)
    frames = game._as_frames(observations)
    for k in range(3):
        one = {key: observations[key][k] for key in observations}
        _assert_frames_equal({key: part[k] for key, part in frames.items()}, _expected(one))
    game.reset(seed=0)
    for _ in range(6):  # across an episode's end (5 steps)
        game.play(np.zeros(3, dtype=np.int64))
        assert game.get_frames()["keys"].shape == (3, 5)
        game.reset(game.is_over())


def _grid_model(nb_frames=1):
    image = keras.Input((nb_frames, 7, 7, 3), name="image")
    direction = keras.Input((nb_frames, 4), name="direction")
    x = keras.layers.Concatenate()(
        [keras.layers.Flatten()(image), keras.layers.Flatten()(direction)]
    )
    x = keras.layers.Dense(32, activation="relu")(x)
    model = keras.Model({"image": image, "direction": direction}, keras.layers.Dense(7)(x))
    model.compile("adam", "huber")
    return model


def test_minigrid_with_its_dict_observation_trains_and_evaluates():
    gymnasium = pytest.importorskip("gymnasium")
    pytest.importorskip("minigrid")
    from gymnasium.wrappers import FilterObservation

    from qlearning4k.games import GymGame

    def make():
        env = gymnasium.make("MiniGrid-Empty-5x5-v0")
        return GymGame(FilterObservation(env, ["image", "direction"]), seed=0)

    agent = Agent(_grid_model(), seed=0)
    game = make()
    frame = game.get_frame()
    assert frame["image"].dtype == np.uint8 and frame["direction"].dtype == np.uint8
    history = agent.train(game, nb_epoch=3, batch_size=16, verbose=0, max_steps=40)
    assert len(history.history["loss"]) == 3
    result = agent.evaluate(make(), nb_games=2, max_steps=20)
    assert result["nb_games"] == 2 and len(result["scores"]) == 2


def test_a_part_that_is_not_an_array_names_itself_and_the_wrapper_that_drops_it():
    gymnasium = pytest.importorskip("gymnasium")
    pytest.importorskip("minigrid")
    from qlearning4k.games import GymGame

    with pytest.raises(ValueError, match=r"part 'mission'.*FilterObservation"):
        GymGame(gymnasium.make("MiniGrid-Empty-5x5-v0"))


def test_check_game_takes_frames_in_parts_and_names_a_part_that_changes():
    from qlearning4k.testing import check_game

    check_game(PartsCatch(seed=0))
    check_game(TuplePartsCatch(seed=0))
    check_game(VectorPartsCatch(4, seed=0))

    class Growing(PartsCatch):
        def get_frame(self):
            frame = super().get_frame()
            if self.fruit_row == 3:
                frame["basket"] = np.zeros(GRID + 1, np.uint8)
            return frame

    with pytest.raises(ValueError, match=r"part 'basket'.*changed shape or dtype at step 3"):
        check_game(Growing(seed=0))

    class VectorGrowing(VectorPartsCatch):
        def get_frames(self):
            frames = super().get_frames()
            if (self.fruit_row == 3).any():
                frames["basket"] = frames["basket"].astype(np.float32)
            return frames

    with pytest.raises(ValueError, match=r"get_frames\(\) changed shape or dtype at step 3"):
        check_game(VectorGrowing(4, seed=0))


class _StopAt(keras.callbacks.Callback):
    """Raises at the end of game `games`: a run killed right after its checkpoint there."""

    def __init__(self, games):
        super().__init__()
        self.games = games

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.games - 1:
            raise KeyboardInterrupt


def _run_with_checkpoints(path, resume=False, stop_at=None):
    keras.utils.set_random_seed(0)  # the same model in each run
    agent = Agent(_model(nb_frames=2), memory=PrioritizedExperienceReplay(200, seed=0), seed=0)
    agent.train(
        PartsCatch(seed=0), nb_epoch=12, batch_size=8, n_step=2, target_update=10,
        checkpoint=4, checkpoint_path=str(path), resume=resume, verbose=0,
        callbacks=[_StopAt(stop_at)] if stop_at else None,
    )  # fmt: skip
    return agent


def test_a_killed_run_in_parts_resumes_to_the_same_weights(tmp_path):
    whole = _run_with_checkpoints(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _run_with_checkpoints(tmp_path / "cut", stop_at=8)
    resumed = _run_with_checkpoints(tmp_path / "cut", resume=True)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.xdist_group("ray")  # the session's Ray cluster
def test_ray_actors_play_games_in_parts(ray_cluster):
    from qlearning4k.actors import RayActors

    agent = Agent(_model(), seed=0)
    history = agent.train(
        PartsCatch(seed=0), total_timesteps=400, learning_starts=40, batch_size=16, verbose=0,
        actors=RayActors(nb_actors=2, nb_copies=2, steps_per_batch=20),
    )  # fmt: skip
    assert history.env_steps == 400 and history.actor_failures == 0
    assert history.gradient_steps > 0 and np.isfinite(history.history["loss"]).any()
    assert len(agent.memory) == 400
    assert agent.evaluate(PartsCatch(seed=1), nb_games=5)["nb_games"] == 5


def test_game_env_shows_a_dict_space_and_gym_game_reads_it_back():
    gymnasium = pytest.importorskip("gymnasium")
    from qlearning4k.games import GymGame

    env = PartsCatch(seed=0).to_gym()
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.Dict)
    assert space["fruit"].shape == (GRID, GRID) and space["basket"].dtype == np.uint8
    observation, _ = env.reset(seed=1)
    assert space.contains(observation)
    observation, *_ = env.step(1)
    assert space.contains(observation)
    back = GymGame(PartsCatch(seed=0).to_gym(), seed=0)
    _assert_frames_equal(back.get_frame(), back.env.unwrapped.game.get_frame())


# -- from_sb3's MultiInputPolicy -------------------------------------------------


def _camera_game(seed=0):
    """A GymGame of a 36x36 picture and two sensors; ends after 20 steps."""
    from qlearning4k.games import GymGame

    camera_env = _sampling_env_class(
        lambda spaces: {
            "camera": spaces.Box(0, 255, (36, 36, 3), np.uint8),
            "sensors": spaces.Box(-1.0, 1.0, (2,), np.float32),
        },
        length=20,
    )
    return GymGame(camera_env(), seed=seed)


def test_from_sb3_builds_the_combined_extractor_of_multi_input_policy():
    from qlearning4k import from_sb3

    config = {"policy": "MultiInputPolicy", "total_timesteps": 200, "learning_starts": 50,
              "batch_size": 8, "frame_stack": 2, "policy_kwargs": {"net_arch": [64]}}  # fmt: skip
    agent, train_kwargs = from_sb3(config, _camera_game(), seed=0)
    model = agent.model
    assert sorted(x.name for x in model.inputs) == ["camera", "sensors"]
    assert agent.frame_shape == {"camera": (36, 36, 3), "sensors": (2,)}
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # NatureCNN on 36x36 pictures of 2 stacked frames of 3 channels, as PyTorch counts it.
    expected = (6 * 8 * 8 * 32 + 32) + (32 * 4 * 4 * 64 + 64) + (64 * 3 * 3 * 64 + 64)
    assert sum(layer.count_params() for layer in convolutions) == expected
    agent.train(_camera_game(), verbose=0, **train_kwargs)
    state = FrameStack(2).reset(_camera_game(seed=1).get_frame())
    assert np.isfinite(agent.q_values(state)).all()


def test_multi_input_policy_says_what_it_needs():
    from qlearning4k import from_sb3

    config = {"policy": "MultiInputPolicy", "total_timesteps": 100}
    with pytest.raises(ValueError, match="frames are dicts"):
        from_sb3(config, Catch(seed=0))

    class SmallPictures(PartsCatch):
        def get_frame(self):
            return {"picture": np.zeros((7, 7, 3), np.uint8), "basket": np.zeros(GRID)}

    with pytest.raises(ValueError, match="NatureCNN needs images of at least 8x8"):
        from_sb3(config, SmallPictures(seed=0))


def test_the_compiled_step_sees_each_part_as_the_model_would():
    """The flat frame of bytes, unpacked in the compiled call, gives the model's own
    Q-values on the parts (a float32 part viewed from bytes, a uint8 part cast)."""
    agent = Agent(_model(nb_frames=2), seed=0)
    rng = np.random.default_rng(0)
    state = {
        "fruit": rng.normal(size=(3, 2, GRID, GRID)).astype(np.float32),
        "basket": rng.integers(0, 2, (3, 2, GRID)).astype(np.uint8),
    }
    expected = keras.ops.convert_to_numpy(agent.model(state))
    np.testing.assert_allclose(agent.q_values(state), expected, rtol=1e-5, atol=1e-6)
