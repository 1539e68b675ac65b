"""Vector games: VectorCatch, VectorSnake and Gymnasium vector envs in training and evaluation."""

import gymnasium
import keras
import numpy as np
import pytest
from conftest import StopAfter, make_model
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from qlearning4k import Agent, ExperienceReplay
from qlearning4k._internals import SNAKE_EMPTY, SNAKE_FRUIT
from qlearning4k.callbacks import EvalCallback
from qlearning4k.games import Catch, GymVectorGame, Snake, VectorCatch, VectorGame, VectorSnake
from qlearning4k.testing import check_game


class _Recording(ExperienceReplay):
    """Remembers as ExperienceReplay does, and keeps a copy of every transition."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def remember(self, s, a, r, s_prime, game_over, steps=1, next_mask=None):
        steps = np.broadcast_to(steps, np.shape(a))
        self.seen += zip(np.array(s), np.array(s_prime), np.broadcast_to(game_over, np.shape(a)),
                         steps, strict=True)  # fmt: skip
        super().remember(s, a, r, s_prime, game_over, steps=steps, next_mask=next_mask)


def _fruit_rows(stack):
    """The fruit's row in each frame of a Catch state `(nb_frames, 10, 10)`."""
    return np.array([np.flatnonzero(frame.any(axis=1))[0] for frame in stack])


def _catch_envs(kind, mode, n):
    make = [lambda: gymnasium.make("qlearning4k/Catch-v0")] * n
    if kind == "async":
        return AsyncVectorEnv(make, autoreset_mode=mode)
    return SyncVectorEnv(make, autoreset_mode=mode)


# -- the games ----------------------------------------------------------------


@pytest.mark.backend_free
def test_vector_catch_plays_as_catch_in_every_copy():
    game, rng = VectorCatch(50, seed=3), np.random.default_rng(0)
    singles = []
    for k in range(50):
        single = Catch(seed=0)
        single.fruit_col, single.basket = int(game.fruit_col[k]), int(game.basket[k])
        singles.append(single)
    for _ in range(12):  # past the end: copies that are over stay over
        actions = rng.integers(3, size=50)
        game.play(actions)
        for k, single in enumerate(singles):
            scored = single.is_over()
            single.play(int(actions[k]))
            np.testing.assert_array_equal(game.get_frames()[k], single.get_frame())
            assert game.get_scores()[k] == (0 if scored else single.get_score())
            assert game.is_over()[k] == single.is_over()
            assert game.is_won()[k] == single.is_won()


@pytest.mark.backend_free
def test_vector_snake_plays_as_snake_in_every_copy():
    n = 24
    game = VectorSnake(n, grid_size=7, snake_length=2, seed=1)
    singles = [Snake(grid_size=7, snake_length=2, seed=0) for _ in range(n)]

    def same_fruit(k):  # fruits are random: put each single one where the copy's is
        single, board = singles[k], game.get_frames()[k]
        if single.fruit is not None:
            single._board[single.fruit] = SNAKE_EMPTY
        where = np.argwhere(board == SNAKE_FRUIT)
        single.fruit = tuple(int(x) for x in where[0]) if len(where) else None
        if single.fruit is not None:
            single._board[single.fruit] = SNAKE_FRUIT

    for k in range(n):
        same_fruit(k)
    rng, longest, ended = np.random.default_rng(0), 0, 0
    for _ in range(400):
        # Mostly towards the fruit, so that snakes grow long.
        heads = np.array([s.snake[0] for s in singles])
        fruits = np.array([s.fruit or (3, 3) for s in singles])
        dr, dc = (fruits - heads).T
        towards = np.where(dc < 0, 0, np.where(dc > 0, 1, np.where(dr < 0, 2, 3)))
        actions = np.where(rng.random(n) < 0.3, rng.integers(5, size=n), towards)
        game.play(actions)
        for k, single in enumerate(singles):
            was_over = single.is_over()
            single.play(int(actions[k]))
            if single._scored:
                same_fruit(k)
            np.testing.assert_array_equal(game.get_frames()[k], single.get_state())
            assert game.get_scores()[k] == (0 if was_over else single.get_score())
            assert game.is_over()[k] == single.is_over()
            assert game.is_won()[k] == single.is_won()
        longest = max(longest, game.length.max())
        over = game.is_over()
        if over.any():
            ended += int(over.sum())
            game.reset(over)
            for k in np.flatnonzero(over):
                singles[k].reset()
                same_fruit(k)
    assert longest >= 6 and ended > 50


@pytest.mark.parametrize(
    "game",
    [VectorCatch(6, seed=0), VectorCatch(1, grid_size=5), VectorSnake(5, seed=0)],
    ids=["catch", "catch-one", "snake"],
)
@pytest.mark.backend_free
def test_built_in_vector_games_pass_check_game(game):
    check_game(game, nb_games=20, max_steps=2000)


class _RestartsByItself(VectorCatch):
    def play(self, actions):
        super().play(actions)
        self.fruit_row[self.is_over()] = 0  # begins again without reset()


class _WrongScores(VectorCatch):
    def get_scores(self):
        return np.zeros(self.nb_copies + 1)


class _Unseeded(VectorCatch):
    def reset(self, mask=None, seed=None):
        super().reset(mask, None)


class _ResetsEveryone(VectorCatch):
    def reset(self, mask=None, seed=None):
        super().reset(None, seed)


@pytest.mark.parametrize(
    ("game", "match"),
    [
        (_RestartsByItself(4, seed=0), "did not end"),
        (_WrongScores(4, seed=0), r"get_scores\(\) must return an array of shape \(4,\)"),
        (_Unseeded(4, seed=0), "not deterministic"),
        (_ResetsEveryone(4, seed=0), "outside the mask"),
    ],
    ids=["restarts", "scores", "unseeded", "reset-all"],
)
@pytest.mark.backend_free
def test_check_game_names_what_a_vector_game_breaks(game, match):
    with pytest.raises(ValueError, match=match):
        check_game(game, nb_games=8, max_steps=50)


# -- training -----------------------------------------------------------------


_SOURCES = {
    "vector-catch": lambda n: VectorCatch(n, seed=0),
    "sync-same-step": lambda n: _catch_envs("sync", AutoresetMode.SAME_STEP, n),
    "sync-next-step": lambda n: _catch_envs("sync", AutoresetMode.NEXT_STEP, n),
    "sync-disabled": lambda n: _catch_envs("sync", AutoresetMode.DISABLED, n),
    "async-same-step": lambda n: _catch_envs("async", AutoresetMode.SAME_STEP, n),
    "async-next-step": lambda n: _catch_envs("async", AutoresetMode.NEXT_STEP, n),
}


_EVERY_BACKEND = ("vector-catch", "sync-same-step")  # the others' logic is the same Python


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize(
    "source",
    [s if s in _EVERY_BACKEND else pytest.param(s, marks=pytest.mark.backend_free)
     for s in _SOURCES],
)  # fmt: skip
def test_no_transition_joins_two_games_and_memory_holds_what_was_seen(source, n_step):
    game = _SOURCES[source](4)
    memory = _Recording(memory_size=400, seed=0)
    agent = Agent(make_model(nb_frames=3), memory=memory, seed=0)
    history = agent.train(game, nb_epoch=30, batch_size=8, n_step=n_step, verbose=0)
    if hasattr(game, "close"):
        game.close()
    assert len(history.history["win"]) == 30
    assert all(steps == 9 for steps in history.history["steps"])  # every Catch game is 9 moves
    for state, next_state, over, steps in memory.seen:
        rows, next_rows = _fruit_rows(state), _fruit_rows(next_state)
        # Within a state: the first frame repeated, then one row a move.
        repeats = np.diff(rows) == 0
        assert set(np.diff(rows)) <= {0, 1} and repeats.sum() == 2 - np.ptp(rows)
        assert not repeats.any() or rows[0] == 0
        # The next state is `steps` moves later in the same game: the fruit never jumps back.
        assert next_rows[-1] == rows[-1] + steps
        assert over == (next_rows[-1] == 9)
    assert len(memory.seen) == 30 * 9
    # Whatever the layout keeps, sampling gives back exactly what was remembered.
    stored = memory._transitions(np.arange(len(memory)))
    np.testing.assert_array_equal(stored[0], np.stack([s for s, *_ in memory.seen]))


def test_a_vector_game_learns_catch_as_its_copies_would():
    hidden = [keras.layers.Dense(100, activation="relu") for _ in range(2)]
    model = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Flatten(), *hidden,
                              keras.layers.Dense(3)])  # fmt: skip
    model.compile(keras.optimizers.SGD(learning_rate=0.2), "mse")  # the README's
    agent = Agent(model, seed=0)
    # One gradient step a move of each copy, as the README example takes.
    # 600 games left JAX at 0.88 on this machine; 800 gave 1.0 on all three.
    history = agent.train(VectorCatch(8, seed=0), nb_epoch=800, gradient_steps=8, verbose=0)
    assert len(history.history["win"]) == 800
    plain = agent.evaluate(Catch(), nb_games=200, seed=0)
    vector = agent.evaluate(VectorCatch(32), nb_games=200, seed=0)
    assert plain["win_rate"] >= 0.9 and vector["win_rate"] >= 0.9


def test_step_budget_counts_the_env_steps_of_all_copies():
    agent = Agent(make_model(), seed=0)
    history = agent.train(VectorCatch(16, seed=0), total_timesteps=16 * 30, learning_starts=50,
                          batch_size=8, train_freq=2, gradient_steps=-1, verbose=0)  # fmt: skip
    assert sum(history.history["steps"]) <= 16 * 30
    assert len(history.history["win"]) == 16 * 3  # 30 moves of 16 copies: 3 games each


def test_fewer_games_than_copies_leave_the_others_unplayed():
    agent = Agent(make_model(), seed=0)
    history = agent.train(VectorCatch(16, seed=0), nb_epoch=5, batch_size=4, verbose=0)
    assert len(history.history["win"]) == 5
    assert len(agent.memory) == 5 * 9


@pytest.mark.parametrize(
    "copies, budget",
    [
        (256, {"nb_epoch": 700}),  # 256 games end at once, more than the win window
        (64, {"nb_epoch": 150, "learning_starts": 500}),  # games without gradient steps
        (48, {"total_timesteps": 48 * 25}),
    ],
)
def test_games_ended_together_log_as_one_by_one(copies, budget):
    """With `History` alone, a step's ended games are logged in one go: the same logs."""
    runs = []
    logs = []  # of the run with a listener
    listener = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, log: logs.append(log))
    for listen in (False, True):
        keras.utils.set_random_seed(0)
        agent = Agent(make_model(), seed=0)
        history = agent.train(VectorCatch(copies, seed=0), batch_size=8, verbose=0,
                              callbacks=[listener] if listen else [], **budget)  # fmt: skip
        runs.append((history.epoch, dict(history.history), logs))
    (epochs, together, _), (one_by_one_epochs, one_by_one, logs) = runs
    assert epochs == one_by_one_epochs == list(range(len(epochs)))
    assert sorted(together) == sorted(one_by_one)
    for key in together.keys() - {"time"}:
        np.testing.assert_array_equal(together[key], one_by_one[key], err_msg=key)
        assert all(type(value) is float for value in together[key])
    assert [log["win_rate"] for log in logs] == together["win_rate"]


def test_same_seed_same_vector_run():
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        agent = Agent(make_model(), seed=0)
        history = agent.train(VectorCatch(4, seed=0), nb_epoch=20, batch_size=8, verbose=0)
        results.append((history.history["score"], agent.model.get_weights()[0]))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


class _NoLeft(VectorCatch):
    """Catch whose baskets may not move left: action masking for vector games."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.played = []

    def get_possible_actions(self):
        allowed = np.ones((self.nb_copies, 3), dtype=bool)
        allowed[:, 0] = False
        return allowed

    def play(self, actions):
        self.played.append(np.array(actions))
        super().play(actions)


def test_masked_vector_games_never_play_a_forbidden_action():
    game = _NoLeft(6, seed=0)
    agent = Agent(make_model(), seed=0)
    agent.train(game, nb_epoch=30, batch_size=8, epsilon=0.5, verbose=0)
    agent.evaluate(game, nb_games=12, seed=0, epsilon=0.3)
    assert len(game.played) > 50 and not any((a == 0).any() for a in game.played)
    masks = agent.memory._next_mask[: len(agent.memory)]
    assert masks.any() and not masks[:, 0].any()


def test_checkpoint_and_resume_of_a_vector_game_is_exact(tmp_path):
    def run(**kwargs):
        keras.utils.set_random_seed(0)
        agent = Agent(make_model(), seed=0)
        history = agent.train(VectorCatch(4, seed=0), batch_size=8, verbose=0, **kwargs)
        return agent, history

    whole, _ = run(nb_epoch=24)
    path = tmp_path / "checkpoint"
    run(nb_epoch=24, checkpoint=12, checkpoint_path=path, callbacks=[StopAfter(12)])
    resumed = Agent.load(path)
    resumed.train(VectorCatch(4, seed=0), nb_epoch=24, batch_size=8, verbose=0, resume=True,
                  checkpoint_path=path)  # fmt: skip
    for x, y in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


# -- evaluation ---------------------------------------------------------------


@pytest.mark.parametrize("source", ["vector-catch", "sync-same-step", "sync-next-step"])
def test_evaluate_a_vector_game(source):
    agent = Agent(make_model(), seed=0)
    results = [agent.evaluate(_SOURCES[source](5), nb_games=13, seed=4) for _ in range(2)]
    assert results[0]["nb_games"] == 13 and results[0]["mean_steps"] == 9
    np.testing.assert_array_equal(results[0]["scores"], results[1]["scores"])
    short = agent.evaluate(_SOURCES[source](5), nb_games=7, seed=4, max_steps=4)
    assert short["mean_steps"] == 4 and short["win_rate"] == 0
    ends = []
    agent.evaluate(VectorCatch(3), nb_games=5, on_game_end=lambda g, k: ends.append(k))
    assert len(ends) == 5


@pytest.mark.parametrize("source", ["vector-catch", "sync-same-step"])
def test_eval_callback_evaluates_on_a_vector_game(source):
    if source == "vector-catch":
        evaluation_game = VectorCatch(16)
    else:
        evaluation_game = _catch_envs("sync", AutoresetMode.SAME_STEP, 4)
    evaluation = EvalCallback(evaluation_game, every_games=40, nb_games=20, seed=3)
    agent = Agent(make_model(), seed=0)
    history = agent.train(VectorCatch(8, seed=0), nb_epoch=80, batch_size=8, verbose=0,
                          callbacks=[evaluation])  # fmt: skip
    assert [r["games"] for r in evaluation.results] == [0, 40, 80]
    assert history.history["eval_score"][-1] == evaluation.results[-1]["mean_score"]
    again = agent.evaluate(evaluation.game, nb_games=20, seed=3)  # the weights it evaluated
    assert again["mean_score"] == evaluation.results[-1]["mean_score"]
    assert evaluation.results[-1]["nb_games"] == 20


def test_a_gymnasium_vector_env_of_cartpole_trains_with_truncation():
    envs = gymnasium.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync",
                              wrappers=[lambda e: gymnasium.wrappers.TimeLimit(e, 20)])  # fmt: skip
    agent = Agent(make_model(frame_shape=(4,), nb_actions=2), seed=0)
    game = GymVectorGame(envs, seed=0, win=20)
    history = agent.train(game, total_timesteps=400, batch_size=8, verbose=0)
    assert max(history.history["steps"]) <= 20
    truncated = [w for w, s in zip(history.history["win"], history.history["steps"], strict=True)
                 if s == 20]  # fmt: skip
    assert truncated and all(truncated)
    over = agent.memory._game_over[: len(agent.memory)]
    # Time limits bootstrap: only the games that fell (before the limit, or on
    # its very step) end in a game over.
    fell = sum(1 for s in history.history["steps"] if s < 20)
    assert fell <= over.sum() <= fell + (len(truncated) - 1)
    envs.close()


# -- bad input ----------------------------------------------------------------


class _Lopsided(VectorCatch):
    def get_frames(self):
        return [frame[: 9 + k % 2] for k, frame in enumerate(super().get_frames())]


def _different_copies():
    return SyncVectorEnv(
        [lambda: gymnasium.make("FrozenLake-v1"),
         lambda: gymnasium.make("FrozenLake-v1", map_name="8x8")],
        observation_mode="different",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda a: a.train(gymnasium.make_vec("Pendulum-v1", num_envs=2), nb_epoch=1),
         ValueError, "Discrete action space"),
        (lambda a: a.train(_different_copies(), nb_epoch=1), ValueError, "agree"),
        (lambda a: a.train(_Lopsided(3), nb_epoch=1), ValueError, "get_frames"),
        (lambda a: a.train(VectorCatch(3, grid_size=8), nb_epoch=1), ValueError,
         r"\(3,\) \+ \(10, 10\)"),
        (lambda a: a.train(VectorCatch(3), nb_epoch=2, nb_parallel=2), ValueError, "nb_parallel"),
        (lambda a: a.evaluate(VectorCatch(3), nb_games=6, nb_parallel=2), ValueError,
         "nb_parallel"),
        (lambda a: a.play(VectorCatch(3)), TypeError, "evaluate"),
        (lambda a: a.train(_catch_envs("sync", AutoresetMode.SAME_STEP, 2), nb_epoch=2,
                           resume=True), ValueError, "cannot be saved"),
        (lambda a: a.train(VectorSnake(2), nb_epoch=1), ValueError, "outputs"),
        (lambda a: VectorCatch(0), ValueError, "nb_copies >= 1"),
        (lambda a: VectorCatch(2.0), TypeError, "integer nb_copies"),
        (lambda a: VectorCatch(2).play(np.array([0, 3])), ValueError, r"range\(3\)"),
        (lambda a: VectorCatch(2).reset(np.array([1, 0])), ValueError, "bool array"),
        (lambda a: GymVectorGame(gymnasium.make("CartPole-v1")), TypeError, "VectorEnv"),
    ],
    ids=["box-actions", "copies-disagree", "frame-per-copy", "frame-shape", "train-parallel",
         "evaluate-parallel", "play", "resume-gym", "actions", "no-copies", "float-copies",
         "bad-action", "bad-mask", "not-vector"],
)  # fmt: skip
def test_bad_vector_input_is_a_clear_error_before_training(call, error, match):
    agent = Agent(make_model(), seed=0)
    weights = agent.model.get_weights()
    with pytest.raises(error, match=match):
        call(agent)
    for x, y in zip(weights, agent.model.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.backend_free
def test_vector_game_is_a_documented_contract():
    with pytest.raises(NotImplementedError, match="play"):
        VectorGame(2).play(np.zeros(2, dtype=np.int64))
    assert VectorGame(3).is_truncated().shape == (3,)


@pytest.mark.parametrize("mode", [None, "sync"], ids=["native", "sync"])
@pytest.mark.backend_free
def test_gymnasium_vector_envs_pass_check_game(mode):
    envs = gymnasium.make_vec("CartPole-v1", num_envs=3, vectorization_mode=mode)
    check_game(GymVectorGame(envs, seed=0), nb_games=10, max_steps=600)
    envs.close()
