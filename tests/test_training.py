"""Training options: parallel games, train_freq, gradient_steps, deferred steps, callbacks."""

import csv

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay, Memory, PrioritizedExperienceReplay
from qlearning4k._internals import settings
from qlearning4k.games import Catch, Snake, VectorCatch


def _train(max_deferred, monkeypatch, **kwargs):
    monkeypatch.setattr(settings, "MAX_DEFERRED", max_deferred)
    keras.utils.set_random_seed(1)
    model = make_model(optimizer="sgd")
    agent = Agent(model, seed=1)
    history = agent.train(Catch(seed=1), verbose=0, **kwargs)
    return model.get_weights(), history


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nb_epoch": 6, "batch_size": 8, "epsilon": 0.6},
        {"nb_epoch": 8, "batch_size": 8, "epsilon": (1.0, 0.0), "nb_parallel": 3},
        {"nb_epoch": 4, "batch_size": 4, "epsilon": 0.5, "gradient_steps": 3, "train_freq": 2},
        {
            "nb_epoch": 6,
            "batch_size": 8,
            "epsilon": 0.6,
            "target_update": 3,
            "double_dqn": True,
            "n_step": 2,
        },
        {
            "nb_epoch": 6,
            "batch_size": 8,
            "epsilon": 0.6,
            "target_update": 0.2,
            "n_step": 3,
            "nb_parallel": 2,
        },
    ],
)
def test_deferred_gradient_steps_change_nothing_but_the_number_of_calls(monkeypatch, kwargs):
    """Gradient steps held back for random moves give exactly the same training."""
    one_by_one, history_a = _train(1, monkeypatch, **kwargs)
    deferred, history_b = _train(8, monkeypatch, **kwargs)
    for a, b in zip(one_by_one, deferred, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history_a.history["loss"], history_b.history["loss"], rtol=1e-4)


def test_parallel_games_each_have_their_own_seed():
    agent = Agent(make_model(), seed=0)
    game = Catch(seed=0)
    history = agent.train(game, nb_epoch=10, batch_size=8, nb_parallel=4, verbose=0)
    assert history.epoch == list(range(10))
    assert history.history["steps"] == [9] * 10
    assert len(agent.memory) == 90
    starts = agent.memory.sample(2000).states[:, 0, 0]  # first rows hold the fruits
    assert len({tuple(row) for row in starts if row.any()}) > 4


def test_more_copies_than_games_plays_each_game_once():
    history = Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=3, batch_size=4, nb_parallel=8, verbose=0
    )
    assert history.epoch == [0, 1, 2]


def test_parallel_snake_games_of_different_lengths():
    model = make_model(nb_actions=5)
    history = Agent(model, seed=0).train(
        Snake(seed=0), nb_epoch=12, batch_size=8, nb_parallel=5, verbose=0
    )
    assert history.epoch == list(range(12))
    assert len(set(history.history["steps"])) > 1


class _Counting(Memory):
    """Counts the batches the agent asks for (a memory without sample())."""

    memory_size = 100

    def __init__(self):
        self.inner = ExperienceReplay(100, seed=0)
        self.batches = 0

    def remember(self, *transition):
        self.inner.remember(*transition)

    def get_batch(self, model, batch_size, gamma=0.9):
        self.batches += 1
        return self.inner.get_batch(model, batch_size, gamma)

    def reset_memory(self):
        self.inner.reset_memory()

    def __len__(self):
        return len(self.inner)


@pytest.mark.parametrize(
    ("train_freq", "gradient_steps", "observe", "expected"),
    [(1, 1, 0, 18), (3, 2, 0, 12), (2, 1, 1, 5), (4, 3, 0, 12)],
)
def test_train_freq_and_gradient_steps_count_updates(train_freq, gradient_steps, observe, expected):
    memory = _Counting()
    Agent(make_model(), memory=memory, seed=0).train(
        Catch(seed=0), nb_epoch=2, batch_size=4, train_freq=train_freq,
        gradient_steps=gradient_steps, observe=observe, verbose=0,
    )  # fmt: skip
    assert memory.batches == expected


def test_max_steps_truncates_games_without_a_game_over():
    agent = Agent(make_model(), seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, max_steps=4, verbose=0)
    assert history.history["steps"] == [4, 4, 4] and history.history["win"] == [0, 0, 0]
    assert len(agent.memory) == 12 and not agent.memory.sample(100).game_over.any()
    assert agent.play(Catch(seed=0), nb_epoch=2, max_steps=3, visualize=False, verbose=0) == 0


@pytest.mark.parametrize("name", ["nb_parallel", "train_freq", "gradient_steps", "max_steps"])
@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (1.5, TypeError)])
def test_new_options_reject_bad_values(name, value, error):
    with pytest.raises(error, match=name):
        Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=1, verbose=0, **{name: value})


# -- Keras callbacks -------------------------------------------------------------


def test_early_stopping_on_win_rate_stops_training():
    stop = keras.callbacks.EarlyStopping(monitor="win_rate", mode="max", patience=2)
    history = Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=60, batch_size=4, epsilon=1.0, verbose=0, callbacks=[stop]
    )
    assert 3 <= len(history.epoch) < 60
    assert stop.stopped_epoch == history.epoch[-1]


def test_csv_logger_writes_one_row_per_game(tmp_path):
    path = tmp_path / "log.csv"
    Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=4, batch_size=4, verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(path))],
    )  # fmt: skip
    rows = list(csv.DictReader(path.open()))
    assert [row["epoch"] for row in rows] == ["0", "1", "2", "3"]
    assert {"loss", "epsilon", "win", "win_rate", "score", "steps"} <= set(rows[0])


def test_terminate_on_nan_stops_a_diverged_run():
    model = make_model(optimizer="sgd")
    weights = model.get_weights()
    weights[-1][:] = np.nan  # the output bias
    model.set_weights(weights)
    agent = Agent(model, seed=0)
    agent.train(
        Catch(seed=0), nb_epoch=5, batch_size=4, verbose=0, epsilon=0.0, on_nan="continue",
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )  # fmt: skip
    assert model.stop_training and len(agent.memory) == 1


def test_model_checkpoint_and_lambda_callback(tmp_path):
    seen = []
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "model-{epoch}.keras")),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["steps"])),
    ]
    Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0, callbacks=callbacks
    )
    assert seen == [9, 9, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model-{i}.keras" for i in (1, 2, 3)]
    keras.models.load_model(tmp_path / "model-3.keras")


def test_tensorboard_writes_event_files(tmp_path):
    Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path))],
    )  # fmt: skip
    assert list(tmp_path.rglob("events.out.tfevents.*"))


def test_custom_callback_sees_train_and_epoch_hooks():
    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_train_begin(self, logs=None):
            self.calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            self.calls.append(f"begin{epoch}")

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append(f"end{epoch}")

        def on_train_end(self, logs=None):
            self.calls.append("train_end")

    recorder = Recorder()
    Agent(make_model(), seed=0).train(
        Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0, callbacks=[recorder]
    )
    assert recorder.calls == ["train_begin", "begin0", "end0", "begin1", "end1", "train_end"]
    assert recorder.model is not None


def test_verbose_1_shows_a_progress_bar(capsys):
    Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in out and "win_rate" in out and "steps/s" in out


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    model = make_model(optimizer="sgd")
    weights = model.get_weights()
    weights[-1][:] = np.inf
    model.set_weights(weights)
    with pytest.raises(
        FloatingPointError, match=r"Non-finite loss .* at epoch 0 \(step 1 of the run"
    ):
        Agent(model, seed=0).train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0)


def test_ctrl_c_stops_after_the_step_checkpoints_and_returns_the_history(tmp_path):
    import os
    import signal

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    path = tmp_path / "ckpt"
    agent = Agent(make_model(), seed=0)
    history = agent.train(
        Catch(seed=0), nb_epoch=50, batch_size=4, verbose=0, checkpoint=100,
        checkpoint_path=str(path), callbacks=[CtrlC()],
    )  # fmt: skip
    assert 2 <= len(history.epoch) <= 3
    assert signal.getsignal(signal.SIGINT) is before
    assert len(Agent.load(path).memory) == len(agent.memory)


class _RememberSubclass(ExperienceReplay):
    """A memory whose `remember()` is its own: training must go through it."""

    def remember(self, *args, **kwargs):
        super().remember(*args, **kwargs)


class _PrioritizedSubclass(PrioritizedExperienceReplay):
    def remember(self, *args, **kwargs):
        super().remember(*args, **kwargs)


class _NoLeftVector(VectorCatch):
    """Vector Catch whose baskets may not move left: masks in every transition."""

    def get_possible_actions(self):
        allowed = np.ones((self.nb_copies, 3), dtype=bool)
        allowed[:, 0] = False
        return allowed


# game, nb_frames, nb_parallel, memory_size, prioritized
_STORE_CASES = [
    (lambda: Catch(seed=0), 1, 1, 100, False),
    (lambda: Catch(seed=0), 2, 1, 100, False),
    (lambda: Catch(seed=0), 2, 3, 100, False),
    (lambda: Catch(seed=0), 1, 3, 100, True),
    (lambda: VectorCatch(8, seed=0), 1, 1, 100, False),
    (lambda: VectorCatch(8, seed=0), 3, 1, -1, False),  # an unbounded memory grows
    (lambda: VectorCatch(8, seed=0), 2, 1, 100, True),
    (lambda: _NoLeftVector(6, seed=0), 1, 1, 100, False),
]


@pytest.mark.parametrize(("make_game", "nb_frames", "nb_parallel", "size", "prioritized"),
                         _STORE_CASES)  # fmt: skip
def test_training_stores_what_remember_stores(make_game, nb_frames, nb_parallel, size, prioritized):
    """The run's transitions skip `remember()`'s checks but store the same."""
    stored = []
    kinds = (
        (PrioritizedExperienceReplay, _PrioritizedSubclass)
        if prioritized
        else (ExperienceReplay, _RememberSubclass)
    )
    for kind in kinds:
        memory = kind(size, seed=0)
        keras.utils.set_random_seed(0)
        agent = Agent(make_model(nb_frames=nb_frames), memory=memory, seed=0)
        # Random moves only: what is stored does not depend on the weights.
        agent.train(make_game(), nb_epoch=24, batch_size=4, epsilon=1.0, verbose=0,
                    nb_parallel=nb_parallel)  # fmt: skip
        stored.append(memory._get_state())
    if size > 0:
        assert int(stored[0]["size"]) == size  # wrapped around the ring
    assert stored[0].keys() == stored[1].keys()
    for name in stored[0]:
        np.testing.assert_array_equal(stored[0][name], stored[1][name], err_msg=name)
