"""Agent: argument checks, the training loop's bookkeeping, play and GIFs."""

import os

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay, History, Memory
from qlearning4k._internals import StepConfig
from qlearning4k.games import Catch, Game, Snake


class _BadScore(Catch):
    def __init__(self, score, **kwargs):
        self.score = score
        super().__init__(**kwargs)

    def get_score(self):
        return self.score


class _WrongFrame(Catch):
    def get_frame(self):
        return np.zeros((3, 3), dtype=np.uint8)


def _uncompiled():
    return keras.Sequential(
        [keras.Input((1, 10, 10)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )


def _two_inputs():
    """Two inputs (frames in parts) that disagree on nb_frames."""
    a, b = keras.Input((1, 10, 10)), keras.Input((2, 10))
    flat = [keras.layers.Flatten()(a), keras.layers.Flatten()(b)]
    out = keras.layers.Dense(3)(keras.layers.Concatenate()(flat))
    model = keras.Model([a, b], out)
    model.compile("sgd", "mse")
    return model


def _rank3_output():
    model = keras.Sequential([keras.Input((1, 10, 10)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    return model


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Agent("model"), TypeError, "keras.Model"),
        (lambda: Agent(_uncompiled()), ValueError, "compiled"),
        (lambda: Agent(_two_inputs()), ValueError, "share nb_frames"),
        (lambda: Agent(_rank3_output()), ValueError, r"\(batch, nb_actions\)"),
        (
            lambda: Agent(make_model(nb_frames=4), nb_frames=3),
            ValueError,
            r"nb_frames=3 \(model input has 4\)",
        ),
        (lambda: Agent(make_model(), memory_size=0), ValueError, "memory_size"),
        (lambda: Agent(make_model(), memory=[]), TypeError, "Memory"),
    ],
)
def test_agent_rejects_bad_models_and_memories(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    ("game", "kwargs", "error", "match"),
    [
        (Catch(seed=0), {"nb_epoch": 0}, ValueError, "nb_epoch"),
        (Catch(seed=0), {"nb_epoch": 2.5}, TypeError, "nb_epoch"),
        (Catch(seed=0), {"batch_size": 0}, ValueError, "batch_size"),
        (Catch(seed=0), {"gamma": 1.5}, ValueError, "gamma"),
        (Catch(seed=0), {"gamma": "high"}, TypeError, "gamma"),
        (Catch(seed=0), {"epsilon": -0.1}, ValueError, "epsilon"),
        (Catch(seed=0), {"epsilon": [1.0, 2.0]}, ValueError, r"epsilon\[1\]"),
        (Catch(seed=0), {"epsilon": [1.0, 0.5, 0.1]}, ValueError, "pair"),
        (Catch(seed=0), {"epsilon_rate": 2}, ValueError, "epsilon_rate"),
        (Catch(seed=0), {"observe": -1}, ValueError, "observe"),
        (Catch(seed=0), {"checkpoint": 0}, ValueError, "checkpoint"),
        (Catch(seed=0), {"checkpoint": 1, "checkpoint_path": "w.h5"}, ValueError, r"\.weights\.h5"),
        (Catch(seed=0), {"verbose": 3}, ValueError, "verbose"),
        (Catch(seed=0), {"callbacks": ["csv"]}, TypeError, "Callback"),
        (Snake(seed=0), {}, ValueError, "nb_actions=5"),
        (Catch(grid_size=8, seed=0), {}, ValueError, r"shape \(8, 8\)"),
        (_WrongFrame(seed=0), {}, ValueError, "_WrongFrame.get_frame"),
        ("catch", {}, TypeError, "Game"),
        (_BadScore(float("nan"), seed=0), {}, ValueError, "_BadScore.get_score"),
        (_BadScore("1", seed=0), {}, TypeError, "_BadScore.get_score"),
        (_BadScore(np.array([1.0, 2.0]), seed=0), {}, TypeError, "_BadScore.get_score"),
        (_BadScore(None, seed=0), {}, TypeError, "_BadScore.get_score"),
    ],
)
def test_train_rejects_bad_input_before_training(tmp_path, monkeypatch, game, kwargs, error, match):
    model = make_model()
    before = [w.copy() for w in model.get_weights()]
    agent = Agent(model, seed=0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        agent.train(game, **{"nb_epoch": 2, "verbose": 0, **kwargs})
    for w, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, b)
    assert len(agent.memory) == 0
    assert os.listdir(tmp_path) == []


def test_train_returns_history_with_one_entry_per_game():
    agent = Agent(make_model(), seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=6, batch_size=8, observe=2, verbose=0)
    assert isinstance(history, History)
    assert history.epoch == list(range(6))
    logs = history.history
    assert set(logs) >= {"loss", "epsilon", "win", "win_rate", "score", "steps", "time"}
    assert np.isnan(logs["loss"][:2]).all() and np.isfinite(logs["loss"][2:]).all()
    assert logs["steps"] == [9] * 6
    assert set(logs["score"]) <= {-1.0, 1.0}
    assert logs["win"] == [float(s > 0) for s in logs["score"]]
    assert len(agent.memory) == 54


def test_epsilon_schedule_decays_linearly_after_observe():
    agent = Agent(make_model(), seed=0)
    history = agent.train(
        Catch(seed=0),
        nb_epoch=10,
        epsilon=[1.0, 0.2],
        epsilon_rate=0.4,
        observe=2,
        verbose=0,
        batch_size=4,
    )
    expected = [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2, 0.2]
    np.testing.assert_allclose(history.history["epsilon"], expected)
    history = agent.train(Catch(seed=0), nb_epoch=2, epsilon=0.3, verbose=0, batch_size=4)
    assert history.history["epsilon"] == [0.3, 0.3]


def test_compiled_steps_equal_train_on_batch_on_the_same_batches():
    """One call of two gradient steps fits exactly what get_batch + train_on_batch would."""
    fused, reference = make_model(optimizer="adam"), make_model(optimizer="adam")
    agent = Agent(fused, seed=0)
    agent.train(Catch(seed=0), nb_epoch=2, epsilon=1.0, verbose=0, batch_size=4)
    reference.set_weights(fused.get_weights())
    reference.optimizer.build(reference.trainable_variables)
    for mine, theirs in zip(fused.optimizer.variables, reference.optimizer.variables, strict=True):
        theirs.assign(mine)
    batches = [agent.memory.sample(16) for _ in range(2)]
    learner = agent._learner(StepConfig(batch_size=16, max_steps=3))
    buffers = learner.call_buffers(1, (1, 10, 10), np.uint8)
    for into, batch in zip(buffers.batches, batches, strict=False):
        into.states[...], into.next_states[...] = batch.states, batch.next_states
        into.actions[:], into.rewards[:] = batch.actions, batch.rewards
        into.discounts[:] = 0.9 * ~batch.game_over
    learner.begin()
    losses, _, _ = learner.step(buffers, 2)
    learner.end()
    for batch, loss in zip(batches, losses[:2], strict=True):
        inputs = batch.states.astype(np.float32)
        q = keras.ops.convert_to_numpy(reference(inputs))
        q_next = keras.ops.convert_to_numpy(reference(batch.next_states.astype(np.float32)))
        targets = q.copy()
        for i in range(16):
            best = 0.0 if batch.game_over[i] else q_next[i].max()
            targets[i, batch.actions[i]] = batch.rewards[i] + 0.9 * best
        np.testing.assert_allclose(reference.train_on_batch(inputs, targets), loss, rtol=1e-5)
    assert losses[2] == 0.0
    for w, r in zip(fused.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-5, atol=1e-6)


class _NewestOnly(Memory):
    """A user's own memory without sample(): the agent trains on get_batch()."""

    memory_size = 1

    def __init__(self):
        self.calls = 0
        self.inner = ExperienceReplay(50, seed=0)

    def remember(self, s, a, r, s_prime, game_over):
        self.inner.remember(s, a, r, s_prime, game_over)

    def get_batch(self, model, batch_size, gamma=0.9):
        self.calls += 1
        return self.inner.get_batch(model, batch_size, gamma)

    def reset_memory(self):
        self.inner.reset_memory()

    def __len__(self):
        return len(self.inner)


def test_a_custom_memory_without_sample_is_used_through_get_batch():
    memory = _NewestOnly()
    agent = Agent(make_model(), memory=memory, seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0)
    assert memory.calls == 18
    assert np.isfinite(history.history["loss"]).all()


def test_memory_size_property_and_reset_memory():
    agent = Agent(make_model(), memory_size=20, seed=0)
    agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0)
    assert len(agent.memory) == 20 and agent.memory_size == 20
    agent.memory_size = 5
    assert len(agent.memory) == 5 and agent.memory.memory_size == 5
    agent.reset_memory()
    assert len(agent.memory) == 0
    agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0, reset_memory=True)
    assert len(agent.memory) == 5


def test_checkpoint_writes_weights_that_load(tmp_path):
    path = tmp_path / "catch.weights.h5"
    model = make_model()
    agent = Agent(model, seed=0)
    agent.train(
        Catch(seed=0), nb_epoch=3, batch_size=4, checkpoint=2, checkpoint_path=str(path), verbose=0
    )
    assert path.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    restored = make_model()
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(path)
    for w, r in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(w, r)


def test_verbose_2_prints_one_line_per_epoch_in_the_original_format(capsys):
    Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 001/003 | Loss ")
    assert "| Epsilon 1.00 | Win count" in lines[0]


def test_play_returns_the_win_rate_and_writes_one_gif(tmp_path, capsys):
    agent = Agent(make_model(), seed=0)
    path = tmp_path / "out" / "catch.gif"
    rate = agent.play(Catch(seed=0), nb_epoch=3, path=str(path))
    assert 0.0 <= rate <= 1.0
    assert f"{rate:.2%}" in capsys.readouterr().out
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 3 * 10
    assert os.listdir(tmp_path / "out") == ["catch.gif"]


class _Corridor(Game):
    """Walk right to the end of a corridor; action 0 is only possible at the start."""

    nb_actions = 2

    def reset(self):
        self.position = 0

    def play(self, action):
        self._check_action(action)
        self.position += 1 if action == 1 else -1

    def get_state(self):
        state = np.zeros((4,), dtype=np.float32)
        state[max(0, min(self.position, 3))] = 1
        return state

    def get_score(self):
        return float(self.position == 3)

    def is_over(self):
        return self.position in (-1, 3)

    def is_won(self):
        return self.position == 3

    def get_possible_actions(self):
        return [1]


def test_play_only_takes_possible_actions():
    model = keras.Sequential([keras.Input((1, 4)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.set_weights([np.zeros((4, 2)), np.array([5.0, 0.0])])  # prefers the impossible action
    agent = Agent(model, seed=0)
    assert agent.play(_Corridor(), nb_epoch=2, visualize=False, verbose=0) == 1.0
    agent.train(_Corridor(), nb_epoch=3, batch_size=2, verbose=0)
    assert (agent.memory.sample(50).actions == 1).all()
