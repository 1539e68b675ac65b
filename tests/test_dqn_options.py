"""Target network, Double DQN, action masks, n-step returns and TD errors for priorities.

The compiled step of every backend is checked against a plain reference
written with `train_on_batch` on a twin model and NumPy targets.
"""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay, dueling
from qlearning4k._internals import StepConfig, narrow_kernels
from qlearning4k.games import Catch, Game

NB_ACTIONS, BATCH, STEPS = 3, 8, 4


def _twins(optimizer="adam", jit_compile="auto", fused=None):
    """Two models with the same weights and optimizer state: `fused` (by default
    `make_model`'s) and a copy of it compiled without XLA."""
    if fused is None:
        fused = make_model(optimizer=optimizer, jit_compile=jit_compile)
    reference = keras.models.clone_model(fused)
    reference.compile(optimizer, "mse")
    reference.set_weights(fused.get_weights())
    for model in (fused, reference):
        model.optimizer.build(model.trainable_variables)
    return fused, reference


def _one_call_a_step(learner, extra_calls):
    """Sets how `learner` runs several gradient steps: `extra_calls=0`, in its
    compiled loop; more, as one call of its one-step graph each (TensorFlow
    while it has extra one-step calls left, JAX as for convolutions on the CPU)."""
    learner.extra_calls_left = extra_calls
    if keras.backend.backend() == "jax":
        learner.one_call_a_step = extra_calls > 0


def _random_batches(rng, count, masked):
    """`count` batches of Catch-like transitions, with bootstrap discounts and masks."""
    batches = []
    for _ in range(count):
        states = rng.integers(0, 2, size=(BATCH, 1, 10, 10)).astype(np.uint8)
        next_states = rng.integers(0, 2, size=(BATCH, 1, 10, 10)).astype(np.uint8)
        actions = rng.integers(NB_ACTIONS, size=BATCH)
        rewards = rng.normal(size=BATCH).astype(np.float32)
        discount = np.where(rng.random(BATCH) < 0.3, 0.0, 0.9 ** rng.integers(1, 4, BATCH))
        weights = rng.uniform(0.2, 1.0, BATCH).astype(np.float32)
        mask = rng.random((BATCH, NB_ACTIONS)) < 0.6 if masked else np.ones((BATCH, 3), bool)
        mask[0] = False  # a next state with no possible action
        batches.append((states, next_states, actions, rewards, discount, weights, mask))
    return batches


def _call_buffers(learner, batches, buffers=None):
    """`learner`'s call buffers (two states to act on, zeros) with `batches` in
    their first slots, written through the named batch."""
    if buffers is None:
        buffers = learner.call_buffers(2, (1, 10, 10), np.uint8)
    for into, (s, s2, a, r, discount, w, mask) in zip(buffers.batches, batches, strict=False):
        into.states[...], into.next_states[...] = s, s2
        into.actions[:], into.rewards[:], into.discounts[:], into.weights[:] = a, r, discount, w
        if into.next_mask is not None:
            into.next_mask[...] = mask
    return buffers


def _three_steps_match(learner, fused, reference, config):
    """Runs three gradient steps in one call of `learner` and checks their losses
    and the weights against the reference; returns the call's outputs, its
    arrays, and the reference's TD errors and target weights."""
    batches = _random_batches(np.random.default_rng(0), 3, config.masked)
    buffers = _call_buffers(learner, batches)
    learner.begin()
    losses, q_act, td = learner.step(buffers, 3)
    learner.end()
    ref_losses, ref_errors, ref_target = _reference_steps(reference, batches, config)
    np.testing.assert_allclose(losses[:3], ref_losses, rtol=2e-4, atol=1e-6)
    for mine, theirs in zip(fused.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    return (losses, q_act, td), buffers, ref_errors, ref_target


def _reference_steps(reference, batches, config):
    """Plain DQN updates, one `train_on_batch` each; returns losses, TD errors, target weights."""
    target = [w.copy() for w in reference.get_weights()]
    target_model = keras.models.clone_model(reference)
    losses, errors = [], []
    for counter, (s, s2, a, r, discount, w, mask) in enumerate(batches, start=1):
        x, x2 = s.astype(np.float32), s2.astype(np.float32)
        q = keras.ops.convert_to_numpy(reference(x))
        q_online_next = keras.ops.convert_to_numpy(reference(x2))
        if config.target_update is None:
            q_next = q_online_next
        else:
            target_model.set_weights(target)
            q_next = keras.ops.convert_to_numpy(target_model(x2))
        if not config.masked:
            mask = np.ones_like(mask)
        chooser = q_online_next if config.double_dqn and config.target_update else q_next
        chosen = np.argmax(np.where(mask, chooser, -np.inf), axis=1)
        best = np.where(mask.any(axis=1), q_next[np.arange(BATCH), chosen], 0.0)
        y = q.copy()
        y[np.arange(BATCH), a] = r + discount * best
        errors.append(y[np.arange(BATCH), a] - q[np.arange(BATCH), a])
        losses.append(float(reference.train_on_batch(x, y, sample_weight=w)))
        update = config.target_update
        if isinstance(update, float):
            weights = reference.get_weights()
            target = [t + update * (v - t) for t, v in zip(target, weights, strict=True)]
        elif update is not None and counter % update == 0:
            target = [v.copy() for v in reference.get_weights()]
    return np.array(losses), np.concatenate(errors), target


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"target_update": 2},
        {"target_update": 0.3},
        {"target_update": 1, "double_dqn": True},
        {"target_update": 3, "double_dqn": True, "masked": True},
        {"masked": True, "prioritized": True},
        {"target_update": 0.5, "double_dqn": True, "masked": True, "prioritized": True},
    ],
    ids=lambda options: "-".join(f"{k}={v}" for k, v in options.items()) or "plain",
)
@pytest.mark.parametrize("extra_calls", [0, 2], ids=["loop", "one-call-a-step"])
def test_compiled_step_equals_a_plain_reference(options, extra_calls):
    """Three gradient steps in one call match three train_on_batch steps done by hand.

    With 2 extra calls left the three run as three one-step calls on
    TensorFlow and JAX.
    """
    fused, reference = _twins()
    agent = Agent(fused, seed=0)
    config = StepConfig(batch_size=BATCH, max_steps=STEPS, **options)
    learner = agent._learner(config)
    _one_call_a_step(learner, extra_calls)
    outputs, buffers, ref_errors, ref_target = _three_steps_match(learner, fused, reference, config)
    losses, q_act, td = outputs
    assert losses[3] == 0.0
    expected_q = keras.ops.convert_to_numpy(reference(buffers.acting.astype(np.float32)))
    np.testing.assert_allclose(q_act, expected_q, rtol=1e-4, atol=1e-5)
    if config.prioritized:
        np.testing.assert_allclose(td[: 3 * BATCH], ref_errors, rtol=1e-4, atol=1e-4)
    else:
        assert td is None
    if config.target_update is not None:
        saved = learner.get_target()
        assert int(saved[-1]) == 3  # gradient steps counted
        for mine, theirs in zip(saved[:-1], ref_target, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    else:
        assert learner.get_target() is None


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="jit_compile=True means XLA on TensorFlow"
)
@pytest.mark.parametrize("extra_calls", [0, 2], ids=["loop", "one-call-a-step"])
def test_xla_step_equals_the_reference_and_compiles_once(extra_calls):
    """With XLA the step matches the reference, and later calls do not compile again.

    A slice whose start comes from the call's arguments makes XLA compile
    anew for every value (about 0.5 s a call here); 20 more calls of three
    steps take milliseconds when nothing recompiles.
    """
    fused, reference = _twins(jit_compile=True)
    agent = Agent(fused, seed=0)
    config = StepConfig(batch_size=BATCH, max_steps=STEPS, target_update=2, double_dqn=True)
    learner = agent._learner(config)
    _one_call_a_step(learner, extra_calls)
    rng = np.random.default_rng(0)
    batches = _random_batches(rng, 3, masked=False)
    learner.begin()
    losses, _, _ = learner.step(_call_buffers(learner, batches), 3)
    ref_losses, _, _ = _reference_steps(reference, batches, config)
    np.testing.assert_allclose(losses[:3], ref_losses, rtol=2e-4, atol=1e-6)
    learner.extra_calls_left = extra_calls + 2 * 20  # the same kind of calls again
    calls = [_call_buffers(learner, _random_batches(rng, 3, False)) for _ in range(20)]
    start = time.perf_counter()
    for buffers in calls:  # new batches each call, as in training
        learner.step(buffers, 3)
    assert time.perf_counter() - start < 10.0
    learner.end()


def _conv_model(nested: bool, jit_compile) -> keras.Model:
    """A small convnet on `(1, 10, 10)` frames; `nested`: its convolution in an inner model."""
    conv = keras.layers.Conv2D(4, 3, activation="relu")
    if nested:
        conv = keras.Sequential([keras.Input((10, 10, 1)), conv])
    model = keras.Sequential([
        keras.Input((1, 10, 10)), keras.layers.Permute((2, 3, 1)), conv,
        keras.layers.Flatten(), keras.layers.Dense(NB_ACTIONS),
    ])  # fmt: skip
    model.compile("adam", "mse", jit_compile=jit_compile)
    return model


@pytest.mark.parametrize(
    "model, jit_compile, expected",
    [  # expected on TensorFlow, JAX, PyTorch
        ("dense", False, (False, False, False)),
        ("dense", True, (False, False, False)),
        ("conv", False, (False, True, False)),
        ("conv", True, (True, True, False)),
        ("nested conv", True, (True, True, False)),
    ],
)
def test_convolutions_under_xla_on_the_cpu_run_one_call_a_step(model, jit_compile, expected):
    """XLA's CPU compiler gives a convolution its fast kernel only outside loops.

    So a model with a convolution runs queued gradient steps one call each
    where XLA compiles the step (TensorFlow with `jit_compile=True`, JAX),
    and its three steps still match the reference.
    """
    if keras.backend.backend() == "torch" and jit_compile:
        pytest.skip("jit_compile=True means torch.compile on PyTorch")
    if model == "dense":
        fused = make_model(jit_compile=jit_compile)
    else:
        fused = _conv_model(nested=model == "nested conv", jit_compile=jit_compile)
    fused, reference = _twins(fused=fused)
    config = StepConfig(batch_size=BATCH, max_steps=STEPS, target_update=2)
    learner = Agent(fused, seed=0)._learner(config)
    backend = ("tensorflow", "jax", "torch").index(keras.backend.backend())
    assert learner.one_call_a_step is expected[backend]
    learner.extra_calls_left = 0  # TensorFlow: the loop, unless one call a step
    _three_steps_match(learner, fused, reference, config)


@pytest.mark.parametrize(
    "layers, expected",
    [  # Dense layers after an input of 6 values; the narrow kernels' positions
        ((256, 3), {2}),  # the Zoo's Acrobot network: its output layer (256, 3)
        ((256, 256, 3), {4}),
        ((3,), {0}),  # (6, 3)
        ((4, 40), {0}),  # (6, 4); (4, 40) has more columns than rows
        ((32, 32), {2}),  # (6, 32) has more columns than rows; (32, 32) is narrow
        ((64, 33), set()),  # 33 columns
    ],
)
def test_narrow_kernels_are_the_matrices_with_at_most_32_columns(layers, expected):
    model = keras.Sequential([keras.Input((6,))] + [keras.layers.Dense(units) for units in layers])
    assert narrow_kernels(model) == expected


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's gradients on the CPU")
def test_narrow_kernel_gradients_kept_apart_train_as_the_plain_gradients():
    """The step keeps the narrow kernels' gradients apart (an optimization barrier
    in the compiled step) and trains exactly as without."""
    fused, twin = make_model(), make_model()
    twin.set_weights(fused.get_weights())
    config = StepConfig(batch_size=BATCH, max_steps=STEPS, target_update=2)
    apart, plain = Agent(fused, seed=0)._learner(config), Agent(twin, seed=0)._learner(config)
    assert apart._narrow == {0, 2}  # (100, 32) and (32, 3)
    plain._narrow = frozenset()
    batches = _random_batches(np.random.default_rng(0), 3, False)
    for learner in (apart, plain):
        buffers = _call_buffers(learner, batches)
        learner.begin()
        hlo = learner._jit_step.lower(learner._state, buffers.frames, buffers.floats).as_text()
        assert ("optimization_barrier" in hlo) is (learner is apart)
        for _ in range(3):
            learner.step(buffers, 3)
        learner.end()
    for mine, theirs in zip(fused.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("extra_calls", [0, 2], ids=["loop", "one-call-a-step"])
def test_call_buffers_refilled_in_place_give_every_call_its_new_batches(extra_calls):
    """The learner's own call buffers, refilled between calls, match the reference each time.

    On TensorFlow and JAX each buffer is bound once to a tensor (an array)
    that shares its memory; a call that read what an earlier fill left would
    fail here.
    """
    fused, reference = _twins()
    agent = Agent(fused, seed=0)
    config = StepConfig(batch_size=BATCH, max_steps=STEPS)
    learner = agent._learner(config)
    _one_call_a_step(learner, extra_calls)
    buffers = learner.call_buffers(2, (1, 10, 10), np.uint8)
    if keras.backend.backend() in ("tensorflow", "jax"):
        assert {id(buffers.frames), id(buffers.floats)} <= set(learner._bound)
    rng = np.random.default_rng(1)
    learner.begin()
    for count in (2, 0, 1, 2):
        batches = _random_batches(rng, count, masked=False)
        _call_buffers(learner, batches, buffers)
        buffers.acting[...] = rng.integers(0, 2, size=(2, 1, 10, 10))  # new states to act on
        losses, q_act, _ = learner.step(buffers, count)
        if count:  # else acting only
            ref_losses, _, _ = _reference_steps(reference, batches, config)
            np.testing.assert_allclose(losses[:count], ref_losses, rtol=2e-4, atol=1e-6)
        expected_q = keras.ops.convert_to_numpy(reference(buffers.acting.astype(np.float32)))
        np.testing.assert_allclose(q_act, expected_q, rtol=1e-4, atol=1e-5)
    learner.end()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's executor")
def test_asynchronous_tensorflow_converts_the_call_buffers_at_each_call():
    """With asynchronous execution a call may still read its inputs after it returns.

    So no buffer is bound to a tensor, and training still works.
    """
    import tensorflow as tf

    tf.config.experimental.set_synchronous_execution(False)
    try:
        agent = Agent(make_model(), seed=0)
        history = agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0)
        (learner,) = agent._learners.values()
        assert not learner._bound
        assert np.isfinite(history.history["loss"]).all()
    finally:
        tf.config.experimental.set_synchronous_execution(True)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's eager tensors")
def test_eager_tensors_are_made_directly_even_before_any_tensorflow_op():
    """In a fresh process the direct `EagerTensor` maker starts the eager context itself.

    Before it did, making the maker ahead of any TensorFlow op raised a
    `SystemError` from inside the constructor.
    """
    code = (
        "import numpy as np, tensorflow as tf\n"
        "from qlearning4k._learner.tensorflow import _eager_tensor_maker\n"
        "make = _eager_tensor_maker(tf)\n"
        "x = np.arange(6, dtype=np.uint8).reshape(2, 3)\n"
        "t = make(x)\n"
        "print(make is tf.constant, t.dtype.name, t.numpy().tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.split("\n")[-2] == "False uint8 [[0, 1, 2], [3, 4, 5]]"


_STARTS_JAX = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()\n"


@pytest.mark.parametrize(
    "backend, before, inline",
    [
        ("jax", "", True),  # the usual order: imports first, JAX computes later
        ("jax", _STARTS_JAX, False),  # JAX already computed: its client stays as it is
        ("tensorflow", "", False),  # other backends leave JAX alone
    ],
)
def test_importing_qlearning4k_makes_jax_dispatch_inline_only_before_jax_starts(
    backend, before, inline
):
    pytest.importorskip("jax")
    code = (
        f"{before}import jax, qlearning4k\n"
        "print(jax.config.read('jax_cpu_enable_async_dispatch'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": backend},
    ).stdout
    assert out.split("\n")[-2] == str(not inline)


def test_target_network_persists_across_train_calls_and_set_target_restores_it():
    agent = Agent(make_model(), seed=0)
    agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, verbose=0, target_update=1000)
    (learner,) = agent._learners.values()
    before = learner.get_target()
    assert int(before[-1]) == 27  # one gradient step per game step, 3 games of 9 steps
    agent.train(Catch(seed=0), nb_epoch=1, batch_size=4, verbose=0, target_update=1000)
    assert int(learner.get_target()[-1]) == 36 and len(agent._learners) == 1
    learner.set_target(before)
    for a, b in zip(learner.get_target(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_hard_update_copies_the_online_weights_exactly():
    agent = Agent(make_model(), seed=0)
    agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0, target_update=1)
    (learner,) = agent._learners.values()
    for target, online in zip(learner.get_target()[:-1], agent.model.get_weights(), strict=True):
        np.testing.assert_array_equal(target, online)


class _Countdown(Game):
    """Frame `[t]`, reward `t + 1` at step t, over after `length` steps, whatever the action."""

    nb_actions = 2

    def __init__(self, length=5, seed=None):
        super().__init__(seed)
        self.length = length

    def reset(self):
        self.t = 0

    def play(self, action):
        self.t += 1

    def get_state(self):
        return np.array([self.t], dtype=np.float32)

    def get_score(self):
        return float(self.t)  # the reward of step t - 1 is t

    def is_over(self):
        return self.t >= self.length

    def is_won(self):
        return self.is_over()


def _chronological(memory):
    order = memory._chronological()
    states, next_states = memory._transitions(order)
    return (
        states[:, -1, 0],
        memory._rewards[order],
        next_states[:, -1, 0],
        memory._game_over[order],
        memory._steps[order],
    )


@pytest.mark.parametrize(
    "n, length, max_steps, nb_parallel",
    [(3, 5, None, 1), (3, 5, None, 2), (2, 2, None, 1), (4, 3, None, 3), (3, 20, 4, 2)],
)
def test_n_step_transitions_are_discounted_sums_cut_at_the_end_of_a_game(
    n, length, max_steps, nb_parallel
):
    gamma, games = 0.5, 4
    agent = Agent(make_model(frame_shape=(1,), nb_actions=2), memory_size=-1, seed=0)
    agent.train(_Countdown(length), nb_epoch=games, gamma=gamma, n_step=n, batch_size=2,
                max_steps=max_steps, nb_parallel=nb_parallel, verbose=0)  # fmt: skip
    end = min(length, max_steps or length)
    expected = []
    for t in range(end):
        k = min(n, end - t)
        ret = sum(gamma**i * (t + 1 + i) for i in range(k))
        expected.append((t, ret, t + k, t + k == length, k))
    got = sorted(zip(*_chronological(agent.memory), strict=True))
    want = sorted(expected * games)
    assert len(got) == len(want) == games * end
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0] and g[2] == w[2] and bool(g[3]) == w[3] and g[4] == w[4]
        assert g[1] == pytest.approx(w[1])


def test_n_step_one_stores_no_step_counts():
    agent = Agent(make_model(), seed=0)
    agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0)
    assert agent.memory._steps is None and agent.memory._next_mask is None


class _LeftOnlyAtEdge(Catch):
    """Catch where moving right is impossible whenever the fruit is in the left half."""

    def get_possible_actions(self):
        return [0, 1] if self.fruit_col < 5 else [0, 1, 2]


def test_action_masks_are_respected_in_play_memory_and_targets():
    agent = Agent(make_model(), seed=0)
    agent.train(_LeftOnlyAtEdge(seed=0), nb_epoch=30, batch_size=8, verbose=0, nb_parallel=2)
    memory = agent.memory
    states = memory._transitions(np.arange(len(memory)))[0]
    fruits = states[:, 0, :-1].any(axis=1)  # (n, columns)
    left_half = fruits[:, :5].any(axis=1)
    assert left_half.any() and not (memory._actions[: len(memory)][left_half] == 2).any()
    assert (memory._actions[: len(memory)][~left_half] == 2).any()
    assert memory._next_mask is not None and (~memory._next_mask[: len(memory), 2]).any()
    batch = memory.sample(64)
    assert batch.next_mask.shape == (64, 3)


def test_get_batch_uses_step_counts_and_masks():
    model = make_model(frame_shape=(3,), nb_actions=3)
    memory = ExperienceReplay(50, seed=0)
    rng = np.random.default_rng(1)
    s = rng.random((20, 1, 3)).astype(np.float32)
    s2 = rng.random((20, 1, 3)).astype(np.float32)
    mask = rng.random((20, 3)) < 0.5
    steps = rng.integers(1, 4, 20)
    over = rng.random(20) < 0.3
    memory.remember(s, rng.integers(3, size=20), rng.normal(size=20), s2, over, steps, mask)
    _, targets = memory.get_batch(model, 32, gamma=0.8)
    memory.rng = np.random.default_rng(0)
    batch = memory.sample(32)
    q = keras.ops.convert_to_numpy(model(batch.states))
    q_next = keras.ops.convert_to_numpy(model(batch.next_states))
    for i in range(32):
        possible = np.flatnonzero(batch.next_mask[i])
        best = q_next[i, possible].max() if len(possible) and not batch.game_over[i] else 0.0
        q[i, batch.actions[i]] = batch.rewards[i] + 0.8 ** batch.steps[i] * best
    np.testing.assert_allclose(targets, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"steps": 0}, "steps in \\[1, 255\\]"),
        ({"steps": 256}, "steps in \\[1, 255\\]"),
        ({"steps": 1.5}, "steps in \\[1, 255\\]"),
        ({"next_mask": np.ones((2, 3), bool)}, "next_mask of shape \\(n, nb_actions\\)"),
        ({"next_mask": np.ones(3, bool)}, "next_mask of shape \\(n, nb_actions\\)"),
    ],
)
def test_remember_rejects_bad_step_counts_and_masks(kwargs, error):
    s = np.zeros((1, 1, 3), np.float32)
    with pytest.raises(ValueError, match=error):
        ExperienceReplay(10).remember(s, 0, 0.0, s, False, **kwargs)


def test_dueling_model_combines_value_and_advantage_and_saves(tmp_path):
    body = keras.Sequential(
        [keras.Input((2, 4, 4)), keras.layers.Permute((2, 3, 1)), keras.layers.Conv2D(4, 2)]
    )
    model = dueling(body, 5, units=8)
    x = np.random.default_rng(0).random((6, 2, 4, 4)).astype(np.float32)
    features = keras.ops.convert_to_numpy(body(x)).reshape(6, -1)

    def stream(name):
        hidden = model.get_layer(f"{name}_hidden")
        h = np.maximum(features @ hidden.kernel.numpy() + hidden.bias.numpy(), 0)
        head = model.get_layer(name)
        return h @ head.kernel.numpy() + head.bias.numpy()

    value, advantage = stream("value"), stream("advantage")
    expected = value + advantage - advantage.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    model.compile("adam", keras.losses.Huber())
    agent = Agent(model, seed=0)
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.model(x)), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "args, error, kind",
    [
        (("not a model", 3), "expects a keras.Model body", TypeError),
        ((None, 3), "expects a keras.Model body", TypeError),
        (("body", 0), "nb_actions must be positive", ValueError),
        (("body", 3.0), "nb_actions must be an int", TypeError),
    ],
)
def test_dueling_rejects_bad_arguments(args, error, kind):
    body = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    args = tuple(body if a == "body" else a for a in args)
    with pytest.raises(kind, match=error):
        dueling(*args)


@pytest.mark.parametrize(
    "kwargs, error, kind",
    [
        ({"target_update": 0}, "target_update must be an int >= 1", ValueError),
        ({"target_update": 1.0}, "float in \\(0, 1\\)", ValueError),
        ({"target_update": -0.5}, "float in \\(0, 1\\)", ValueError),
        ({"target_update": "100"}, "target_update must be None, an int or a float", TypeError),
        ({"double_dqn": 1}, "double_dqn must be a bool", TypeError),
        ({"n_step": 0}, "n_step must be positive", ValueError),
        ({"n_step": 256}, "n_step must be at most 255", ValueError),
        ({"n_step": 2.0}, "n_step must be an int", TypeError),
    ],
)
def test_train_rejects_bad_dqn_options(kwargs, error, kind):
    with pytest.raises(kind, match=error):
        Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=1, verbose=0, **kwargs)


class _GetBatchOnly(ExperienceReplay):
    """A memory without sample(): the agent trains through get_batch()."""

    sample = ExperienceReplay.__base__.sample


@pytest.mark.parametrize("kwargs", [{"target_update": 10}, {"double_dqn": True}, {"n_step": 3}])
def test_options_that_need_sample_are_refused_for_get_batch_memories(kwargs):
    agent = Agent(make_model(), memory=_GetBatchOnly(10), seed=0)
    with pytest.raises(ValueError, match="needs a memory that implements sample"):
        agent.train(Catch(seed=0), nb_epoch=1, verbose=0, **kwargs)
