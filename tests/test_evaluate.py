"""Agent.evaluate, act, q_values, FrameStack and EvalCallback, against plain one-game references."""

import time

import keras
import numpy as np
import pytest
from conftest import make_model
from PIL import Image

from qlearning4k import Agent, EvalCallback, FrameStack
from qlearning4k.games import Catch, GymGame, Snake, VectorCatch


class _LeftHalfNoRight(Catch):
    """Catch where moving right is impossible while the fruit is in the left half."""

    def get_possible_actions(self):
        return [0, 1] if self.fruit_col < 5 else [0, 1, 2]


def _agent(game, nb_frames=1, seed=0):
    game.reset()
    frame_shape = np.asarray(game.get_frame()).shape
    keras.utils.set_random_seed(seed)
    return Agent(make_model(nb_frames, frame_shape, game.nb_actions), seed=seed)


def _reference_scores(agent, make_game, nb_games, seed, max_steps):
    """One game after the other, one eager model call a move, frames stacked by FrameStack."""
    scores, won = [], []
    for i in range(nb_games):
        game = make_game(seed + i)
        stack = FrameStack(agent.nb_frames)
        state = stack.reset(game.get_frame())
        score, steps = 0.0, 0
        while not game.is_over() and steps != max_steps:
            q = keras.ops.convert_to_numpy(agent.model(state[None].astype("float32")))[0]
            possible = game.get_possible_actions()
            action = possible[int(np.argmax(q[possible]))]
            game.play(action)
            score += game.get_score()
            steps += 1
            state = stack.push(game.get_frame())
        scores.append(score)
        won.append(game.is_over() and game.is_won())
    return np.array(scores), np.mean(won)


GAMES = {
    "catch": (lambda seed=None: Catch(seed=seed), 1, 100),
    "snake, 2 frames": (lambda seed=None: Snake(seed=seed), 2, 30),
    "masked catch": (lambda seed=None: _LeftHalfNoRight(seed=seed), 1, 100),
    "cartpole": (lambda seed=None: GymGame("CartPole-v1", seed=seed), 1, 100),
}


@pytest.mark.parametrize("name", GAMES)
def test_evaluate_plays_the_games_a_one_game_loop_plays(name):
    make_game, nb_frames, max_steps = GAMES[name]
    agent = _agent(make_game(), nb_frames)
    results = agent.evaluate(make_game(), nb_games=7, seed=50, max_steps=max_steps)
    scores, win_rate = _reference_scores(agent, make_game, 7, 50, max_steps)
    np.testing.assert_allclose(results["scores"], scores, rtol=1e-6)
    assert results["nb_games"] == 7
    assert results["mean_score"] == pytest.approx(scores.mean())
    assert results["std_score"] == pytest.approx(scores.std())
    assert (results["min_score"], results["max_score"]) == (scores.min(), scores.max())
    assert results["win_rate"] == pytest.approx(win_rate)
    assert 1 <= results["mean_steps"] <= max_steps


def test_evaluate_with_a_seed_repeats_itself_and_leaves_the_agent_generator_alone():
    agent = _agent(Catch())
    agent.train(Catch(seed=0), nb_epoch=30, batch_size=8, verbose=0)
    before = agent.rng.bit_generator.state
    first = agent.evaluate(Catch(), nb_games=20, seed=3, epsilon=0.3)
    second = agent.evaluate(Catch(), nb_games=20, seed=3, epsilon=0.3)
    np.testing.assert_array_equal(first["scores"], second["scores"])
    assert agent.rng.bit_generator.state == before
    other = agent.evaluate(Catch(), nb_games=20, seed=4, epsilon=0.3)
    assert not np.array_equal(first["scores"], other["scores"])


@pytest.mark.parametrize("nb_parallel", [1, 3, 7])
def test_evaluate_in_rounds_plays_the_same_games(nb_parallel):
    agent = _agent(Snake(), nb_frames=2)
    everyone = agent.evaluate(Snake(), nb_games=7, seed=1, max_steps=40)
    rounds = agent.evaluate(Snake(), nb_games=7, seed=1, max_steps=40, nb_parallel=nb_parallel)
    np.testing.assert_array_equal(everyone["scores"], rounds["scores"])


def test_random_moves_of_evaluate_are_possible_actions_and_games_stop_at_max_steps():
    agent = _agent(_LeftHalfNoRight())
    seen = []

    class Watched(_LeftHalfNoRight):
        def play(self, action):
            seen.append((action, self.get_possible_actions()))
            super().play(action)

    agent.evaluate(Watched(), nb_games=30, seed=0, epsilon=1.0)
    assert seen and all(action in possible for action, possible in seen)
    stopped = agent.evaluate(Catch(), nb_games=5, seed=0, max_steps=3)
    assert stopped["mean_steps"] == 3 and stopped["win_rate"] == 0.0


def test_on_game_end_sees_every_finished_game():
    agent = _agent(Snake())
    lengths = []
    results = agent.evaluate(
        Snake(),
        nb_games=6,
        seed=0,
        max_steps=25,
        on_game_end=lambda g: lengths.append(len(g.snake)),
    )
    assert len(lengths) == 6 and results["nb_games"] == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nb_games": 0}, ValueError, "nb_games"),
        ({"epsilon": 1.5}, ValueError, "epsilon"),
        ({"seed": -1}, ValueError, "seed"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"nb_parallel": 0}, ValueError, "nb_parallel"),
        ({"on_game_end": 3}, TypeError, "on_game_end"),
        ({"game": Catch(grid_size=8)}, ValueError, "frames of shape"),
        ({"game": Snake()}, ValueError, "nb_actions=5"),
    ],
)
def test_bad_evaluate_arguments_are_clear_errors(kwargs, error, match):
    agent = _agent(Catch())
    kwargs = {"game": Catch(), **kwargs}
    with pytest.raises(error, match=match):
        agent.evaluate(**kwargs)


def test_play_writes_every_game_into_one_gif(tmp_path):
    agent = _agent(Catch())
    path = tmp_path / "catch.gif"
    assert 0.0 <= agent.play(Catch(seed=0), nb_epoch=3, path=str(path), verbose=0) <= 1.0
    with Image.open(path) as gif:
        assert gif.n_frames == 3 * 10  # each Catch game: its first picture and 9 moves


def _mp4_frames(path) -> tuple[int, tuple[int, int]]:
    """An MP4's number of pictures and its size, read back through ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return sum(1 for _ in reader), tuple(meta["size"])


@pytest.mark.parametrize(
    "make_game, games, pictures",
    [
        (lambda: Catch(seed=0), 3, 3 * 10),  # each game: its first picture and 9 moves
        (lambda: GymGame("CartPole-v1", seed=0, render_mode="rgb_array"), 1, range(2, 22)),
    ],
    ids=["catch", "gymnasium-cartpole"],
)
def test_play_writes_an_mp4_of_every_game(tmp_path, make_game, games, pictures):
    game = make_game()
    agent = _agent(game)
    path = tmp_path / "videos" / "play.mp4"
    agent.play(game, nb_epoch=games, path=str(path), verbose=0, max_steps=20)
    count, (width, height) = _mp4_frames(path)
    assert count in pictures if isinstance(pictures, range) else count == pictures
    assert width % 2 == 0 and height % 2 == 0 and width >= 240


def test_evaluate_films_its_games_and_checks_the_video_first(tmp_path):
    agent = _agent(Catch())
    path = tmp_path / "evaluate.mp4"
    results = agent.evaluate(Catch(), nb_games=2, seed=0, video=str(path))
    assert _mp4_frames(path)[0] == 2 * 10  # each game: its first picture and 9 moves
    unfilmed = agent.evaluate(Catch(), nb_games=2, seed=0)  # filming changes nothing
    np.testing.assert_array_equal(results["scores"], unfilmed["scores"])
    with pytest.raises(ValueError, match=r"writes \.mp4 and \.gif files"):
        agent.evaluate(Catch(), nb_games=2, video=str(tmp_path / "x.avi"))
    with pytest.raises(ValueError, match="films a Game's copies"):
        agent.evaluate(VectorCatch(nb_copies=2, seed=0), nb_games=2, video=str(path))


# -- deployment ----------------------------------------------------------------


def test_act_and_q_values_take_a_frame_a_state_or_a_batch():
    agent = _agent(Catch())
    game = Catch(seed=0)
    frame = game.get_frame()
    q = keras.ops.convert_to_numpy(agent.model(frame[None, None].astype("float32")))[0]
    np.testing.assert_allclose(agent.q_values(frame), q, rtol=1e-6)
    np.testing.assert_allclose(agent.q_values(frame[None]), q, rtol=1e-6)
    batch = np.stack([frame[None]] * 4)
    assert agent.q_values(batch).shape == (4, 3)
    assert agent.act(frame) == int(np.argmax(q))
    np.testing.assert_array_equal(agent.act(batch), [int(np.argmax(q))] * 4)
    mask = np.ones(3, dtype=bool)
    mask[int(np.argmax(q))] = False
    assert agent.act(frame, mask=mask) != int(np.argmax(q))
    assert agent.act(batch, mask=np.tile(mask, (4, 1))).shape == (4,)


@pytest.mark.parametrize(
    ("observation", "kwargs", "match"),
    [
        (np.zeros((8, 8)), {}, r"expects a state \(1, 10, 10\)"),
        (np.zeros((2, 2, 10, 10)), {}, "Received: shape"),
        (np.zeros((10, 10)), {"mask": np.ones(4, dtype=bool)}, "mask of shape"),
        (np.zeros((10, 10)), {"mask": np.zeros(3, dtype=bool)}, "at least one action"),
    ],
)
def test_bad_observations_and_masks_are_clear_errors(observation, kwargs, match):
    agent = _agent(Catch())
    with pytest.raises(ValueError, match=match):
        agent.act(observation, **kwargs)


def test_a_loaded_agent_fed_one_frame_at_a_time_plays_as_evaluate_does(tmp_path):
    agent = _agent(Snake(), nb_frames=3)
    agent.train(Snake(seed=0), nb_epoch=5, batch_size=8, verbose=0)
    agent.save(tmp_path / "snake")
    loaded = Agent.load(tmp_path / "snake")
    expected = agent.evaluate(Snake(), nb_games=3, seed=9, max_steps=50)["scores"]
    for i, score in enumerate(expected):
        game, stack, total, steps = Snake(seed=9 + i), FrameStack(loaded.nb_frames), 0.0, 0
        state = stack.reset(game.get_frame())
        while not game.is_over() and steps < 50:
            game.play(loaded.act(state))
            total, steps = total + game.get_score(), steps + 1
            state = stack.push(game.get_frame())
        assert total == pytest.approx(score)


def test_frame_stack_keeps_the_newest_frames_oldest_first():
    stack = FrameStack(3)
    with pytest.raises(ValueError, match="reset"):
        stack.push(np.zeros(2))
    np.testing.assert_array_equal(stack.reset([1, 1]), [[1, 1]] * 3)
    first = stack.push([2, 2])
    np.testing.assert_array_equal(stack.push([3, 3]), [[1, 1], [2, 2], [3, 3]])
    np.testing.assert_array_equal(first, [[1, 1], [1, 1], [2, 2]])  # earlier states unchanged
    with pytest.raises(ValueError, match=r"frames of shape \(2,\)"):
        stack.push([1, 2, 3])
    with pytest.raises(ValueError, match="nb_frames"):
        FrameStack(0)


# -- EvalCallback --------------------------------------------------------------


def _train(callbacks, nb_epoch=40, seed=0):
    agent = _agent(Catch(), seed=seed)
    history = agent.train(
        Catch(seed=seed), nb_epoch=nb_epoch, batch_size=8, verbose=0, callbacks=callbacks
    )
    return agent, history


def test_eval_callback_logs_for_keras_callbacks_and_leaves_the_run_as_it_was(tmp_path):
    evaluation = EvalCallback(Catch(), every_games=10, nb_games=20, seed=5)
    seen = []
    watcher = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(dict(logs)))
    start = time.perf_counter()
    agent, history = _train([watcher, evaluation])  # evaluation runs first anyway
    wall = time.perf_counter() - start
    assert [r["games"] for r in evaluation.results] == [0, 10, 20, 30, 40]
    assert seen[0]["eval_score"] == evaluation.results[0]["mean_score"]
    assert seen[9]["eval_score"] == seen[18]["eval_score"] == evaluation.results[1]["mean_score"]
    assert seen[-1]["eval_score"] == evaluation.results[-1]["mean_score"]
    assert seen[-1]["eval_win_rate"] == evaluation.results[-1]["win_rate"]
    assert len(history.history["eval_score"]) == 40
    plain, _ = _train([])
    for mine, theirs in zip(agent.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)
    # The `time` log leaves the evaluations out (all of them came before the end of train()).
    assert history.history["time"][-1] <= wall - evaluation.seconds


def test_eval_callback_every_steps_threshold_and_best_path(tmp_path):
    best = tmp_path / "best"
    evaluation = EvalCallback(Catch(), every_steps=45, nb_games=10, seed=0, best_path=best)
    _train([evaluation], nb_epoch=20)  # 45 env steps: 5 games of 9
    assert [r["env_steps"] for r in evaluation.results] == [0, 45, 90, 135, 180]
    assert evaluation.best_score == max(r["mean_score"] for r in evaluation.results)
    loaded = Agent.load(best)
    assert loaded.evaluate(Catch(), nb_games=10, seed=0)["mean_score"] == evaluation.best_score
    first = evaluation.results[0]["mean_score"]
    stop = EvalCallback(Catch(), every_games=5, nb_games=10, seed=0, threshold=first + 0.2)
    _, history = _train([stop], nb_epoch=400)
    assert len(history.epoch) < 400 and stop.results[-1]["mean_score"] >= first + 0.2
    assert all(r["mean_score"] < first + 0.2 for r in stop.results[:-1])


def test_early_stopping_and_csv_logger_work_on_eval_score(tmp_path):
    evaluation = EvalCallback(Catch(), every_games=5, nb_games=10, seed=0)
    stop = keras.callbacks.EarlyStopping(monitor="eval_score", mode="max", patience=10)
    csv = tmp_path / "log.csv"
    _, history = _train([stop, keras.callbacks.CSVLogger(str(csv)), evaluation], nb_epoch=400)
    assert len(history.epoch) < 400
    assert "eval_score" in csv.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one"),
        ({"every_games": 5, "every_steps": 5}, ValueError, "exactly one"),
        ({"every_games": 0}, ValueError, "every_games"),
        ({"every_steps": -3}, ValueError, "every_steps"),
        ({"every_games": 5, "nb_games": 0}, ValueError, "nb_games"),
        ({"every_games": 5, "threshold": "high"}, TypeError, "threshold"),
        ({"game": "catch", "every_games": 5}, TypeError, "Game"),
    ],
)
def test_bad_eval_callback_arguments_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        EvalCallback(**{"game": Catch(), **kwargs})


def test_an_evaluation_game_that_does_not_fit_the_model_fails_before_training():
    agent = _agent(Catch())
    evaluation = EvalCallback(Catch(grid_size=6), every_games=5)
    with pytest.raises(ValueError, match="frames of shape"):
        agent.train(Catch(seed=0), nb_epoch=10, verbose=0, callbacks=[evaluation])
    assert len(agent.memory) == 0
