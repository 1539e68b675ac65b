"""Games of several action parts and branching Q-networks (BDQ, `qlearning4k.branching`)."""

import keras
import numpy as np
import pytest
from test_frame_parts import _StopAt

from qlearning4k import C51, Agent, PrioritizedExperienceReplay, branching, from_sb3
from qlearning4k._internals import StepConfig, make_learner
from qlearning4k.games import Catch, Game, VectorGame
from qlearning4k.testing import check_game

GRID = 5
PARTS = (3, 3)


class TwinCatch(Game):
    """Two games of Catch side by side, a basket each: the action's two parts
    move the two baskets. Won when both fruits are caught."""

    nb_actions = PARTS

    def __init__(self, grid_size=GRID, seed=None):
        super().__init__(seed)
        self.games = [Catch(grid_size), Catch(grid_size)]
        self.reset()

    def reset(self):
        for game in self.games:
            game.rng = np.random.default_rng(self.rng.integers(2**63))
            game.reset()

    def play(self, action):
        action = self._check_action(action)
        for game, part in zip(self.games, action, strict=True):
            game.play(int(part))

    def get_state(self):
        return np.concatenate([game.get_state() for game in self.games], axis=1)

    def get_score(self):
        return sum(game.get_score() for game in self.games)

    def is_over(self):
        return self.games[0].is_over()

    def is_won(self):
        return all(game.is_won() for game in self.games)


class LeftOnlyTwinCatch(TwinCatch):
    """The second basket can only stay or move left (actions 0 and 1 of part 1)."""

    def get_possible_actions(self):
        return [[0, 1, 2], [0, 1]]


class VectorTwinCatch(VectorGame):
    """Copies of `TwinCatch` as a vector game, played one by one (a test's game)."""

    nb_actions = PARTS

    def __init__(self, nb_copies, seed=None):
        super().__init__(nb_copies, seed)
        self.games = [TwinCatch() for _ in range(nb_copies)]
        self.reset()

    def reset(self, mask=None, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mask = self._mask(mask)
        for k in np.flatnonzero(mask):
            self.games[k].rng = np.random.default_rng(self.rng.integers(2**63))
            self.games[k].reset()
        if not hasattr(self, "scores"):
            self.scores = np.zeros(self.nb_copies, dtype=np.float32)
        self.scores[mask] = 0.0

    def play(self, actions):
        actions = self._check_actions(actions)
        for k, game in enumerate(self.games):
            over = game.is_over()
            if not over:
                game.play(actions[k])
            self.scores[k] = 0.0 if over else game.get_score()

    def get_frames(self):
        return np.stack([game.get_frame() for game in self.games])

    def get_scores(self):
        return self.scores

    def is_over(self):
        return np.array([game.is_over() for game in self.games])

    def is_won(self):
        return np.array([game.is_won() for game in self.games])


def _body(nb_frames=1, width=2 * GRID):
    return keras.Sequential(
        [
            keras.Input((nb_frames, GRID, width)),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
        ]
    )


def _model(parts=PARTS, units=None, lr=1e-3, seed=0):
    keras.utils.set_random_seed(seed)
    model = branching(_body(), parts, units=units)
    model.compile(keras.optimizers.Adam(learning_rate=lr), "mse")
    return model


def test_the_model_has_a_value_and_an_advantage_stream_per_branch():
    model = branching(_body(), (3, 4), units=16)
    assert model.output.shape == (None, 7)
    x = np.random.default_rng(0).random((2, 1, GRID, 2 * GRID)).astype(np.float32)
    q = keras.ops.convert_to_numpy(model(x))
    # Q_d = V + A_d - mean(A_d): each branch's Q-values average to V.
    value = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer("value").output)(x))
    np.testing.assert_allclose(q[:, :3].mean(axis=1), value[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q[:, 3:].mean(axis=1), value[:, 0], rtol=1e-5, atol=1e-6)


# Untrained, the greedy policy wins 0.34 to 0.59 of these 200 games (model seeds
# 0 to 2); trained as below, 0.98 to 1.0 in both rows (seeds 0 to 2).
@pytest.mark.parametrize(
    "memory, options",
    [
        (None, {}),
        (
            lambda: PrioritizedExperienceReplay(1000, seed=0),
            {"target_update": 50, "double_dqn": True, "n_step": 3},
        ),
    ],
    ids=["plain", "prioritized-n-step-double-target"],
)
def test_an_agent_learns_twin_catch_with_one_branch_a_basket(memory, options):
    agent = Agent(_model(), memory=memory() if memory else None, seed=0)
    assert agent.nb_actions == PARTS
    agent.train(TwinCatch(seed=0), nb_epoch=300, batch_size=32, verbose=0, **options)
    assert agent.play(TwinCatch(seed=12345), nb_epoch=200, visualize=False, verbose=0) >= 0.9


def test_a_vector_game_of_action_parts_learns_and_stores_one_index_per_part():
    agent = Agent(_model(), seed=0)
    agent.train(VectorTwinCatch(8, seed=0), nb_epoch=400, gradient_steps=8, verbose=0)
    assert agent.memory.sample(64).actions.shape == (64, 2)
    assert agent.evaluate(TwinCatch(seed=1), nb_games=200)["win_rate"] >= 0.9


def test_masks_per_part_keep_moves_and_targets_among_the_possible_actions():
    agent = Agent(_model(), seed=0)
    agent.train(LeftOnlyTwinCatch(seed=0), nb_epoch=30, batch_size=16, epsilon=1.0, verbose=0)
    actions = agent.memory.sample(500).actions
    assert set(actions[:, 0]) == {0, 1, 2} and set(actions[:, 1]) == {0, 1}
    assert agent.memory.sample(8).next_mask.shape == (8, 6)
    frame = TwinCatch(seed=0).get_frame()
    mask = np.array([True, False, False, False, False, True])
    np.testing.assert_array_equal(agent.act(frame, mask=mask), [0, 2])
    with pytest.raises(ValueError, match="at least one action per state and part"):
        agent.act(frame, mask=np.array([True, True, True, False, False, False]))


@pytest.mark.parametrize("double_dqn", [False, True], ids=["dqn", "double"])
def test_the_compiled_step_learns_towards_the_bdq_targets(double_dqn):
    """One step's TD errors and loss against NumPy: per branch, the greedy next
    action (picked online with Double DQN, the target network evaluating it,
    among the part's possible ones), the target from the mean over branches,
    and the loss the mean of the branches' squared errors."""
    batch, parts = 16, (3, 4)
    model = branching(_body(), parts, units=None)
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    config = StepConfig(
        batch_size=batch, target_update=1000, double_dqn=double_dqn, masked=True,
        prioritized=True, action_parts=parts,
    )  # fmt: skip
    learner = make_learner(model, config)
    rng = np.random.default_rng(0)
    buffers = learner.call_buffers(1, (1, GRID, 2 * GRID), np.float32)
    into = buffers.batches[0]
    into.states[...] = rng.random(into.states.shape)
    into.next_states[...] = rng.random(into.next_states.shape)
    actions = np.stack([rng.integers(n, size=batch) for n in parts], axis=1)
    into.actions[...] = actions
    into.rewards[:] = rng.normal(size=batch)
    into.discounts[:] = 0.9 * (rng.random(batch) < 0.8)
    into.next_mask[...] = rng.random((batch, 7)) < 0.6
    into.next_mask[0, :3] = False  # a part with no possible action adds 0
    learner.begin()
    losses, _, td = learner.step(buffers, 1)
    learner.end()

    q = keras.ops.convert_to_numpy(model(into.states))
    q_next = keras.ops.convert_to_numpy(model(into.next_states))
    mask = into.next_mask > 0.5
    values, errors, start = [], [], 0
    for n in parts:
        part = slice(start, start + n)
        # Without a change of weights (learning rate 0), online and target agree.
        pick = np.where(mask[:, part], q_next[:, part], -np.inf)
        chosen = pick.argmax(axis=1)
        value = q_next[np.arange(batch), start + chosen]
        values.append(np.where(mask[:, part].any(axis=1), value, 0.0))
        start += n
    target = into.rewards + into.discounts * np.mean(values, axis=0)
    start = 0
    for d, n in enumerate(parts):
        errors.append(target - q[np.arange(batch), start + actions[:, d]])
        start += n
    errors = np.stack(errors, axis=1)  # (batch, nb_parts)
    np.testing.assert_allclose(td, np.abs(errors).sum(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses[0], np.mean(errors**2), rtol=1e-4)


def test_a_saved_branching_agent_acts_the_same_after_loading(tmp_path):
    agent = Agent(_model(), seed=0)
    agent.train(TwinCatch(seed=0), nb_epoch=5, batch_size=16, verbose=0)
    agent.save(tmp_path / "twin")
    loaded = Agent.load(tmp_path / "twin")
    assert loaded.nb_actions == PARTS
    states = np.random.default_rng(0).random((6, 1, GRID, 2 * GRID)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(states), agent.act(states))
    assert agent.act(states).shape == (6, 2)


def test_check_game_plays_random_actions_of_each_part():
    check_game(TwinCatch(seed=0))
    check_game(LeftOnlyTwinCatch(seed=0))
    check_game(VectorTwinCatch(3, seed=0))


def test_game_env_shows_a_multi_discrete_space_and_checks_the_action_length():
    pytest.importorskip("gymnasium")
    env = TwinCatch(seed=0).to_gym()
    assert list(env.action_space.nvec) == [3, 3]
    env.reset(seed=0)
    env.step(np.array([0, 2]))
    with pytest.raises(ValueError, match=r"array of 2 action indices.*Received"):
        env.step(np.array([0, 1, 2]))


def _flat_model(outputs):
    model = keras.Sequential([_body(), keras.layers.Dense(outputs)])
    model.compile("adam", "mse")
    return model


@pytest.mark.parametrize(
    "make, game, error, message",
    [
        (lambda: Agent(_flat_model(9)), TwinCatch, ValueError, r"several action parts.*branching"),
        (lambda: Agent(_model(parts=(3, 2))), TwinCatch, ValueError, r"\(3, 2\).*\(3, 3\)"),
        (lambda: Agent(_model()), lambda seed: Catch(GRID, seed=seed), ValueError,
         r"branches have nb_actions=\(3, 3\) but Catch has nb_actions=3"),
    ],
    ids=["flat-model", "other-branches", "one-part-game"],
)  # fmt: skip
def test_a_model_whose_heads_do_not_match_the_parts_is_named(make, game, error, message):
    with pytest.raises(error, match=message):
        make().train(game(seed=0), nb_epoch=1, verbose=0)


def test_options_that_do_not_combine_with_branches_say_which():
    with pytest.raises(ValueError, match="do not combine with C51"):
        Agent(_model(), distribution=C51(nb_atoms=11))
    with pytest.raises(ValueError, match=r"several action parts.*qlearning4k.branching"):
        from_sb3({"policy": "MlpPolicy", "n_timesteps": 100}, TwinCatch(seed=0))
    agent = Agent(_model(), seed=0)
    agent.train(TwinCatch(seed=0), nb_epoch=2, verbose=0)
    with pytest.raises(ValueError, match=r"get_batch.*2 parts"):
        agent.memory.get_batch(agent.model, 4)


@pytest.mark.parametrize(
    "action, message",
    [
        (1, r"one index per action part"),
        (np.array([0, 1, 2]), r"one index per action part"),
        (np.array([0, 3]), r"part d of an action in range"),
    ],
)
def test_a_game_of_parts_checks_its_actions(action, message):
    with pytest.raises(ValueError, match=message):
        TwinCatch(seed=0).play(action)


def test_branching_checks_its_arguments():
    with pytest.raises(TypeError, match="sequence of ints"):
        branching(_body(), 9)
    with pytest.raises(ValueError, match="at least one action part"):
        branching(_body(), ())
    with pytest.raises(TypeError, match="noisy must be a bool"):
        branching(_body(), PARTS, noisy=1)


def test_discretized_actions_cut_a_box_into_evenly_spaced_bins():
    gymnasium = pytest.importorskip("gymnasium")
    from qlearning4k.games import DiscretizedActions, GymGame, GymVectorGame

    env = DiscretizedActions(gymnasium.make("Pendulum-v1"), bins=5)
    assert list(env.action_space.nvec) == [5]
    np.testing.assert_allclose(env.action(np.array([0])), [-2.0])
    np.testing.assert_allclose(env.action(np.array([3])), [1.0])
    game = GymGame(env, seed=0)
    assert game.nb_actions == (5,)
    game.play(np.array([4]))
    walker = DiscretizedActions(gymnasium.make("BipedalWalker-v3"), bins=[25, 25, 3, 3])
    assert GymGame(walker).nb_actions == (25, 25, 3, 3)
    # A vector env of them is a vector game of action parts, and trains.
    envs = gymnasium.vector.SyncVectorEnv(
        [lambda: DiscretizedActions(gymnasium.make("Pendulum-v1"), bins=5) for _ in range(2)]
    )
    vector = GymVectorGame(envs, seed=0)
    assert vector.nb_actions == (5,)
    keras.utils.set_random_seed(0)
    body = keras.Sequential([keras.Input((1, 3)), keras.layers.Flatten()])
    model = branching(body, (5,), units=16)
    model.compile("adam", "mse")
    agent = Agent(model, seed=0)
    agent.train(vector, total_timesteps=200, batch_size=16, verbose=0)
    assert agent.memory.sample(4).actions.shape == (4, 1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"bins": 1}, ValueError, "at least 2"),
        ({"bins": [5, 5]}, ValueError, "one count per action dimension"),
        ({"bins": 2.5}, TypeError, "int or a sequence of ints"),
    ],
)
def test_discretized_actions_check_their_bins(kwargs, error, message):
    gymnasium = pytest.importorskip("gymnasium")
    from qlearning4k.games import DiscretizedActions

    with pytest.raises(error, match=message):
        DiscretizedActions(gymnasium.make("Pendulum-v1"), **kwargs)


def test_discretized_actions_need_a_bounded_box():
    gymnasium = pytest.importorskip("gymnasium")
    from qlearning4k.games import DiscretizedActions

    with pytest.raises(ValueError, match="one-axis Box action space with finite bounds"):
        DiscretizedActions(gymnasium.make("CartPole-v1"))


def _run_with_checkpoints(path, resume=False, stop_at=None):
    agent = Agent(_model(), memory=PrioritizedExperienceReplay(200, seed=0), seed=0)
    agent.train(
        TwinCatch(seed=0), nb_epoch=12, batch_size=8, n_step=2, target_update=10,
        double_dqn=True, checkpoint=4, checkpoint_path=str(path), resume=resume, verbose=0,
        callbacks=[_StopAt(stop_at)] if stop_at else None,
    )  # fmt: skip
    return agent


def test_a_killed_branching_run_resumes_to_the_same_weights(tmp_path):
    whole = _run_with_checkpoints(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _run_with_checkpoints(tmp_path / "cut", stop_at=6)
    resumed = _run_with_checkpoints(tmp_path / "cut", resume=True)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.xdist_group("ray")  # the session's Ray cluster
def test_ray_actors_say_they_take_no_branching_model(ray_cluster):
    from qlearning4k.actors import RayActors

    with pytest.raises(ValueError, match=r"actors=.*branching model.*one process"):
        Agent(_model(), seed=0).train(
            TwinCatch(seed=0), total_timesteps=100, verbose=0,
            actors=RayActors(nb_actors=1, nb_copies=1, steps_per_batch=10),
        )  # fmt: skip
