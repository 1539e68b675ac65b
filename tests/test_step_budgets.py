"""Budgets and schedules in env steps, as Stable-Baselines3 counts them."""

import math

import gymnasium
import keras
import numpy as np
import pytest

from qlearning4k import Agent, ExperienceReplay, QuantileRegression, from_sb3
from qlearning4k._internals import StepConfig, make_learner
from qlearning4k.games import Catch, GymGame


def _agent(model_factory, memory_size=10_000, seed=0):
    return Agent(model_factory(), memory_size=memory_size, seed=seed)


def _sb3_schedule(steps, nb_copies, train_freq, gradient_steps, learning_starts, interval):
    """Stable-Baselines3's DQN loop, counted: gradient steps, and the gradient steps done
    before each target copy (the copies between two train() calls collapse into one)."""
    done, due, copies = 0, False, []
    period = max(interval // nb_copies, 1) if interval else None
    for step in range(1, steps + 1):  # a step of all copies; env steps: step * nb_copies
        if period and step % period == 0:
            due = True  # DQN._on_step
        if step % train_freq == 0 and step * nb_copies > learning_starts:
            if due:
                copies.append(done)
                due = False
            done += gradient_steps
    return done, copies


class _Recording(ExperienceReplay):
    """Keeps the states, actions and game-over flags of every transition remembered."""

    def __init__(self):
        super().__init__(10_000, seed=0)
        self.states, self.actions, self.flags = [], [], []

    def remember(self, states, actions, rewards, next_states, game_over, **kwargs):
        self.states.append(np.asarray(states))
        self.actions.extend(np.atleast_1d(actions).tolist())
        self.flags.extend(np.broadcast_to(game_over, np.shape(actions)).tolist())
        super().remember(states, actions, rewards, next_states, game_over, **kwargs)


@pytest.mark.parametrize("nb_parallel", [1, 3])
@pytest.mark.parametrize("budget", [1, 50, 251])
def test_total_timesteps_plays_the_budget_rounded_up_to_whole_steps(
    model_factory, budget, nb_parallel
):
    agent = _agent(model_factory)
    history = agent.train(
        Catch(seed=0), total_timesteps=budget, nb_parallel=nb_parallel, batch_size=4, verbose=0
    )
    played = math.ceil(budget / nb_parallel) * nb_parallel
    assert len(agent.memory) == played  # one transition an env step
    assert sum(history.history.get("steps", [])) <= played  # the games that ended
    assert len(history.epoch) >= played // 9 - nb_parallel  # a Catch game is 9 steps


@pytest.mark.parametrize(
    "epsilon, rate, budget",
    [((1.0, 0.04), 0.16, 500), ((0.5, 0.1), 1.0, 300), ((1.0, 0.2), 0.0, 200)],
)
def test_epsilon_decays_over_a_fraction_of_the_env_steps(model_factory, epsilon, rate, budget):
    history = _agent(model_factory).train(
        Catch(seed=0), total_timesteps=budget, epsilon=epsilon, epsilon_rate=rate,
        batch_size=4, verbose=0,
    )  # fmt: skip
    start, end = epsilon
    ended_at = np.cumsum(history.history["steps"])  # env steps when each game ended
    decay = rate * budget
    expected = (
        np.full(len(ended_at), end)
        if decay == 0
        else start + (end - start) * np.minimum(1.0, ended_at / decay)
    )
    np.testing.assert_allclose(history.history["epsilon"], expected)


@pytest.mark.parametrize(
    "budget, nb_copies, train_freq, gradient_steps, learning_starts, interval",
    [
        (300, 1, 1, 1, 0, 25),
        (300, 1, 4, -1, 0, 50),  # Acrobot's and LunarLander's shape
        (600, 1, 64, 32, 100, 5),  # CartPole's: copies while no gradient step runs
        (400, 4, 2, -1, 37, 30),
        (300, 2, 3, 2, 0, 1),
    ],
)
def test_gradient_steps_and_target_copies_follow_stable_baselines3(
    model_factory, monkeypatch, budget, nb_copies, train_freq, gradient_steps, learning_starts,
    interval,
):  # fmt: skip
    agent = _agent(model_factory)
    learner_class = type(make_learner(agent.model, StepConfig()))
    done, copies = [0], []
    step = learner_class.step

    def counting_step(self, buffers, count):
        done[0] += count
        return step(self, buffers, count)

    def recording_copy(self):
        copies.append(done[0])

    monkeypatch.setattr(learner_class, "step", counting_step)
    monkeypatch.setattr(learner_class, "copy_target", recording_copy)
    agent.train(
        Catch(seed=0), total_timesteps=budget, nb_parallel=nb_copies, train_freq=train_freq,
        gradient_steps=gradient_steps, learning_starts=learning_starts,
        target_update_interval=interval, batch_size=4, verbose=0,
    )  # fmt: skip
    per_call = train_freq * nb_copies if gradient_steps == -1 else gradient_steps
    steps = math.ceil(budget / nb_copies)
    expected_done, expected_copies = _sb3_schedule(
        steps, nb_copies, train_freq, per_call, learning_starts, interval
    )
    assert done[0] == expected_done
    assert copies == expected_copies


def test_learning_starts_plays_at_random_and_does_not_learn_before_it(model_factory):
    agent = Agent(model_factory(), memory=_Recording(), seed=0)
    initial = agent.model.get_weights()
    history = agent.train(
        Catch(seed=0), total_timesteps=300, learning_starts=90, epsilon=0.0, batch_size=4,
        verbose=0,
    )  # fmt: skip
    ended_at = np.cumsum(history.history["steps"])
    losses = np.asarray(history.history["loss"])
    assert np.isnan(losses[ended_at <= 90]).all()  # no gradient step in these games
    assert np.isfinite(losses[ended_at > 100]).all()
    # epsilon=0, yet the first 90 moves are random: most are not the greedy ones
    # (of the weights, unchanged until learning starts).
    agent.model.set_weights(initial)
    states, actions = np.concatenate(agent.memory.states), np.asarray(agent.memory.actions)
    greedy = agent.q_values(states[:90]).argmax(axis=1)
    assert (greedy == actions[:90]).mean() < 0.6


def test_copy_target_copies_the_online_weights(model_factory):
    agent = _agent(model_factory)
    agent.train(
        Catch(seed=0), total_timesteps=120, target_update_interval=1000, batch_size=4,
        verbose=0,
    )  # fmt: skip
    (learner,) = [v for k, v in agent._learners.items() if k.target_copied]
    weights = [np.asarray(w) for w in agent.model.get_weights()]
    target = learner.get_target()[:-1]
    assert any(not np.array_equal(t, w) for t, w in zip(target, weights, strict=True))
    learner.copy_target()
    for t, w in zip(learner.get_target()[:-1], weights, strict=True):
        np.testing.assert_array_equal(t, w)


class _Truncations(GymGame):
    """Notes, at the end of each game, whether it was truncated."""

    def reset(self):
        super().reset()
        self.truncations = getattr(self, "truncations", [])

    def play(self, action):
        super().play(action)
        if self.is_over():
            self.truncations.append(self.is_truncated())


def test_a_time_limit_truncates_and_the_last_transition_bootstraps(model_factory):
    model = model_factory(frame_shape=(4,), nb_actions=2)
    agent = Agent(model, memory=_Recording(), seed=0)
    game = _Truncations(gymnasium.make("CartPole-v1", max_episode_steps=15), seed=0)
    history = agent.train(game, nb_epoch=30, batch_size=4, verbose=0)
    truncated = np.asarray(game.truncations)
    ends = np.cumsum(np.asarray(history.history["steps"], dtype=int)) - 1
    flags = np.asarray(agent.memory.flags)
    assert truncated.any() and (~truncated).any()
    # Stopped by the time limit: not a game over, the future counts; the pole fell: over.
    np.testing.assert_array_equal(flags[ends], ~truncated)
    assert flags.sum() == (~truncated).sum()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"nb_epoch": 10, "total_timesteps": 100}, ValueError, "Pass one budget"),
        ({"total_timesteps": 100, "observe": 2}, ValueError, "pass learning_starts"),
        ({"observe": 2, "learning_starts": 10}, ValueError, "one of observe"),
        ({"target_update": 5, "target_update_interval": 50}, ValueError, "one of target_update"),
        ({"total_timesteps": -5}, ValueError, "total_timesteps must be positive"),
        ({"total_timesteps": 0}, ValueError, "total_timesteps must be positive"),
        ({"total_timesteps": "100"}, TypeError, "total_timesteps must be an int"),
        ({"learning_starts": -1}, ValueError, "learning_starts must be an int >= 0"),
        ({"gradient_steps": -2}, ValueError, "gradient_steps must be positive"),
        ({"target_update_interval": 0}, ValueError, "target_update_interval must be positive"),
    ],
)
def test_train_rejects_mixed_or_bad_step_budgets(model_factory, kwargs, error, match):
    with pytest.raises(error, match=match):
        _agent(model_factory).train(Catch(seed=0), verbose=0, **kwargs)


def test_a_step_budget_checkpoints_its_last_step(model_factory, tmp_path):
    agent = _agent(model_factory)
    path = tmp_path / "ckpt"
    agent.train(
        Catch(seed=0), total_timesteps=100, checkpoint=1000, checkpoint_path=path,
        batch_size=4, verbose=0,
    )  # fmt: skip
    loaded = Agent.load(path)
    assert len(loaded.memory) == 100
    for a, b in zip(loaded.model.get_weights(), agent.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


_ZOO_CARTPOLE = {
    "n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3, "batch_size": 64,
    "buffer_size": 100000, "learning_starts": 1000, "gamma": 0.99,
    "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip


def test_from_sb3_ports_a_zoo_config_one_to_one():
    agent, kwargs = from_sb3(_ZOO_CARTPOLE, GymGame("CartPole-v1"), seed=0)
    assert kwargs == {
        "total_timesteps": 50_000, "learning_starts": 1000, "batch_size": 64, "gamma": 0.99,
        "epsilon": (1.0, 0.04), "epsilon_rate": 0.16, "train_freq": 256,
        "gradient_steps": 128, "target_update_interval": 10, "n_step": 1, "nb_parallel": 1,
    }  # fmt: skip
    dense = [layer for layer in agent.model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [256, 256, 2]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "linear"]
    optimizer = agent.model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.global_clipnorm == pytest.approx(10 / 2)  # SB3's max_grad_norm / actions
    assert optimizer.epsilon == pytest.approx(1e-8 / 2)
    assert float(optimizer.learning_rate) == pytest.approx(2.3e-3)
    assert agent.memory_size == 100_000
    assert agent.model.input_shape == (None, 1, 4)
    # PyTorch's nn.Linear initialisation: kernel and bias uniform in +-1/sqrt(fan_in).
    for layer, fan_in in zip(dense, [4, 256, 256], strict=True):
        kernel, bias = layer.get_weights()
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(kernel).max() > 0.9 * bound and np.all(bias != 0)
        assert np.std(kernel) == pytest.approx(bound / np.sqrt(3), rel=0.1)
    twin, _ = from_sb3(_ZOO_CARTPOLE, GymGame("CartPole-v1"), seed=0)  # same initial weights
    for a, b in zip(agent.model.get_weights(), twin.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Stable-Baselines3's defaults fill what a config leaves out.
    again, defaults = from_sb3({"n_timesteps": 1000}, GymGame("CartPole-v1"), seed=0)
    assert defaults["learning_starts"] == 100 and defaults["target_update_interval"] == 10_000
    assert [layer.units for layer in again.model.layers[1:]] == [64, 64, 2]


_ZOO_QRDQN_ACROBOT = {  # the RL Baselines3 Zoo's hyperparams/qrdqn.yml entry
    "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4, "batch_size": 128,
    "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99, "target_update_interval": 250,
    "train_freq": 4, "gradient_steps": -1, "exploration_fraction": 0.12,
    "exploration_final_eps": 0.1, "policy_kwargs": {"net_arch": [256, 256], "n_quantiles": 25},
}  # fmt: skip


def test_from_sb3_ports_a_qrdqn_config_with_its_own_defaults():
    agent, kwargs = from_sb3(_ZOO_QRDQN_ACROBOT, GymGame("Acrobot-v1"), seed=0, algo="qrdqn")
    assert agent.distribution == QuantileRegression(nb_quantiles=25) and agent.nb_actions == 3
    dense = [layer for layer in agent.model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [256, 256, 3 * 25]
    optimizer = agent.model.optimizer
    assert optimizer.epsilon == pytest.approx(0.01 / 128)  # QRDQN's Adam
    assert optimizer.global_clipnorm is None  # QRDQN's max_grad_norm=None
    assert kwargs["gradient_steps"] == -1 and kwargs["target_update_interval"] == 250
    _, defaults = from_sb3({"n_timesteps": 1000}, GymGame("Acrobot-v1"), algo="qrdqn")
    assert defaults["epsilon"] == (1.0, 0.01) and defaults["epsilon_rate"] == 0.005
    with pytest.raises(ValueError, match="algo must be one of"):
        from_sb3(_ZOO_QRDQN_ACROBOT, GymGame("Acrobot-v1"), algo="c51")
    with pytest.raises(ValueError, match="may only set net_arch"):
        from_sb3(_ZOO_QRDQN_ACROBOT, GymGame("Acrobot-v1"))  # n_quantiles is QRDQN's


def test_from_sb3_trains_through_the_step_budget():
    config = {**_ZOO_CARTPOLE, "n_timesteps": 600, "learning_starts": 100, "train_freq": 64}
    agent, kwargs = from_sb3(config, GymGame("CartPole-v1"), seed=0)
    agent.train(GymGame("CartPole-v1", seed=0), verbose=0, **{**kwargs, "gradient_steps": 8})
    assert len(agent.memory) == 600
    learns = [step for step in range(64, 601, 64) if step > 100]  # after learning_starts
    assert int(agent.model.optimizer.iterations) == 8 * len(learns)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"exploration_decay": 0.99}, ValueError, "Unknown Stable-Baselines3 DQN setting"),
        ({"policy": "CnnPolicy"}, ValueError, "MlpPolicy"),
        ({"tau": 0.5}, ValueError, "tau=0.5"),
        ({"train_freq": (1, "episode")}, ValueError, "train_freq must count steps"),
        ({"policy_kwargs": {"activation_fn": "tanh"}}, ValueError, "may only set net_arch"),
        ({"policy_kwargs": {"net_arch": [64, -1]}}, ValueError, "net_arch must be"),
        ({"n_timesteps": -100}, ValueError, "n_timesteps must be a positive int"),
        ({"total_timesteps": 100}, ValueError, "one budget"),
        ({"batch_size": 0.5}, ValueError, "batch_size must be a positive int"),
    ],
)
def test_from_sb3_rejects_what_it_cannot_port(change, error, match):
    with pytest.raises(error, match=match):
        from_sb3({**_ZOO_CARTPOLE, **change}, GymGame("CartPole-v1"))


def test_from_sb3_needs_a_budget_and_a_game():
    with pytest.raises(ValueError, match="neither"):
        from_sb3({"learning_rate": 1e-3}, Catch())
    with pytest.raises(TypeError, match="Expected a qlearning4k Game"):
        from_sb3({"n_timesteps": 100}, "CartPole-v1")
    with pytest.raises(TypeError, match="mapping"):
        from_sb3([("n_timesteps", 100)], Catch())
