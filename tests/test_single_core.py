"""Agent.train(single_core=True): every thread on one core during training, then back."""

import contextlib
import os
import threading

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, PrioritizedExperienceReplay
from qlearning4k._internals import affinity
from qlearning4k.games import Catch

linux_with_two_cores = pytest.mark.skipif(
    not affinity._supported() or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux thread affinity and at least two usable cores",
)


def _affinities() -> dict:
    """Thread id -> the cores it may run on, for every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            out[int(tid)] = os.sched_getaffinity(int(tid))
    return out


def _torch_threads():
    if keras.backend.backend() != "torch":
        return None
    import torch

    return torch.get_num_threads()


class _Probe(keras.callbacks.Callback):
    """Records every thread's cores at each game's end; may start a thread or fail."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.seen, self.torch_threads, self.fail_at, self.started = [], [], fail_at, None

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(_affinities())
        self.torch_threads.append(_torch_threads())
        if self.started is None:  # a thread the training run starts, pinned like its parent
            self.started = threading.Thread(target=threading.Event().wait, args=(60,))
            self.started.daemon = True
            self.started.start()
            self.started_id = self.started.native_id
        if epoch == self.fail_at:
            raise RuntimeError("stop here")


@linux_with_two_cores
@pytest.mark.parametrize("fail_at", [None, 1])
def test_every_thread_shares_one_core_while_training_then_gets_its_cores_back(monkeypatch, fail_at):
    user_thread = threading.Thread(target=threading.Event().wait, args=(60,), daemon=True)
    user_thread.start()
    main = threading.get_native_id()
    os.sched_setaffinity(user_thread.native_id, {0})  # a thread with cores of its own
    before = _affinities()
    compiled_on = []  # the cores of the first (compiling) calls
    paused = affinity._OneCore.paused

    @contextlib.contextmanager
    def recording_paused(self):
        with paused(self):
            compiled_on.append(os.sched_getaffinity(0))
            yield

    monkeypatch.setattr(affinity._OneCore, "paused", recording_paused)
    threads_before = _torch_threads()
    probe = _Probe(fail_at)
    agent = Agent(make_model(), seed=0)
    train = lambda: agent.train(  # noqa: E731
        Catch(seed=0), nb_epoch=3, batch_size=8, verbose=0, callbacks=[probe], single_core=True
    )
    if fail_at is None:
        train()
    else:
        with pytest.raises(RuntimeError, match="stop here"):
            train()

    for seen in probe.seen:
        cores = set(map(frozenset, seen.values()))
        assert len(cores) == 1 and len(next(iter(cores))) == 1, seen
    assert compiled_on and all(cores == before[main] for cores in compiled_on)
    after = _affinities()
    for tid, cores in before.items():
        if tid in after:
            assert after[tid] == cores, tid
    assert after[probe.started_id] == before[main]
    assert after[user_thread.native_id] == {0}
    if threads_before is not None:  # torch computes with one thread meanwhile
        assert set(probe.torch_threads) == {1} and _torch_threads() == threads_before


@pytest.mark.parametrize(
    ("prioritized", "jit_compile", "kwargs"),
    [
        (False, "auto", {"nb_epoch": 4, "batch_size": 8, "epsilon": 0.5}),
        (False, "auto", {"nb_epoch": 6, "batch_size": 8, "epsilon": (1.0, 0.1), "nb_parallel": 3}),
        (False, "auto", {"nb_epoch": 4, "batch_size": 8, "target_update": 3, "double_dqn": True}),
        (True, "auto", {"nb_epoch": 4, "batch_size": 8, "target_update": 0.2, "n_step": 2}),
        pytest.param(
            False,
            True,
            {"nb_epoch": 4, "batch_size": 8, "epsilon": 0.5},
            marks=pytest.mark.skipif(
                keras.backend.backend() != "tensorflow", reason="XLA through TensorFlow's executor"
            ),
        ),
    ],
)
def test_single_core_trains_exactly_as_on_every_core(prioritized, jit_compile, kwargs):
    """Same weights and losses: loops, target copies, priorities and XLA included."""
    results = []
    for single_core in (False, True):
        keras.utils.set_random_seed(3)
        model = make_model(optimizer="sgd", jit_compile=jit_compile)
        memory = PrioritizedExperienceReplay(200, seed=3) if prioritized else None
        history = Agent(model, memory=memory, seed=3).train(
            Catch(seed=3), verbose=0, single_core=single_core, **kwargs
        )
        results.append((model.get_weights(), history.history["loss"]))
    (weights_a, loss_a), (weights_b, loss_b) = results
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)


def test_single_core_without_thread_affinity_warns_and_trains(monkeypatch):
    monkeypatch.setattr(affinity, "_supported", lambda: False)
    agent = Agent(make_model(), seed=0)
    with pytest.warns(UserWarning, match="single_core=True needs Linux"):
        history = agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0, single_core=True)
    assert len(history.epoch) == 2


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_single_core_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"single_core must be a bool\. Received: single_core="):
        Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=1, verbose=0, single_core=value)
