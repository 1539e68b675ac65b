"""`SequenceLearner`: the compiled steps of a recurrent Q-network, on sequences (R2D2).

A gradient step takes a batch of sequences (`SequenceBatch`): it unrolls the
online network (and the target network, with one) from each sequence's
stored state over the burn-in without gradient, then over the learned steps
and the bootstrap frame, and learns each learned step towards its n-step
target, bootstrapped from the column the memory named, with the same rules
(`rules.py`, through `Learner._q_loss`) as a feedforward step. Acting takes
one frame a copy and each copy's state, and returns the Q-values and the
next states, in one compiled call.

Both are pure functions of the weights, the optimizer's variables and the
target network's values, written once in `keras.ops` on `stateless_call`;
each backend only compiles them and takes their gradient (`_BACKENDS`). The
values live in the learner between `begin()` and `end()`, as `JaxLearner`
keeps them.
"""

from __future__ import annotations

import keras
import numpy as np

from qlearning4k._learner.batch import SequenceBuffers, read_rows
from qlearning4k._learner.config import StepConfig
from qlearning4k._learner.learner import Learner
from qlearning4k._learner.rules import updated_target


class SequenceLearner(Learner):
    """The steps of a recurrent model (see the module's docs)."""

    def __init__(self, model: keras.Model, config: StepConfig):
        super().__init__(model, config)
        self.sequences = config.sequences
        self._backend = _BACKENDS[keras.backend.backend()]()
        self._learn = self._backend.compile(self._pure_learn, self.jit, donate=True)
        self._act = self._backend.compile(self._pure_act, self.jit, donate=False)
        self._state = None  # (trainable, non_trainable, optimizer, target, counter) in a run
        self._target = None  # (trainable, non_trainable, counter) between runs
        if self.uses_target:
            copy = self._backend.copy
            self._target = (
                [copy(v.value) for v in model.trainable_variables],
                [copy(v.value) for v in model.non_trainable_variables],
                self._backend.counter(0),
            )
        self._loss = _compiled_loss(model)
        self._calls = {}  # the compiled functions, made at their first call

    # -- the pure functions -------------------------------------------------

    def _unroll(self, trainable, non_trainable, frames, states):
        """The Q-values `(batch, time, outputs)` of `frames` from `states`
        `(batch, state_size)`, and the states after the last frame."""
        ops, sizes = keras.ops, self.sequences.state_sizes
        parts, start = [], 0
        for size in sizes:
            parts.append(states[:, start : start + size])
            start += size
        outputs, _ = self.model.stateless_call(
            trainable, non_trainable, [ops.cast(frames, self.dtype), *parts], training=False
        )
        q, *after = outputs
        after = after[0] if len(after) == 1 else ops.concatenate(after, axis=-1)
        return q, ops.cast(after, "float32")

    def _start_states(self, values, burn, states, fresh):
        """The states after the burn-in frames `burn` (none: `states`); a fresh
        sequence keeps its stored state (its burn-in columns are padding)."""
        ops = keras.ops
        if burn is None:
            return states
        _, after = self._unroll(*values, burn, states)
        keep = ops.expand_dims(fresh, -1)
        return ops.stop_gradient(keep * states + (1.0 - keep) * after)

    def _pure_learn(self, state, frames, states, fresh, rows, bootstrap):
        """One gradient step on a `SequenceBatch`'s arrays: `(state, loss, td_errors)`."""
        ops, sequences = keras.ops, self.sequences
        trainable, non_trainable, optimizer_values, target, counter = state
        size, learned, width = rows.shape
        burn = frames[:, : sequences.burn_in] if sequences.burn_in else None
        rest = frames[:, sequences.burn_in :]  # (batch, learned + 1) + frame_shape
        online_start = self._start_states((trainable, non_trainable), burn, states, fresh)
        q_target = None
        if self.uses_target:
            target_start = self._start_states(target[:2], burn, states, fresh)
            q_target = ops.stop_gradient(self._unroll(*target[:2], rest, target_start)[0])
        flat_rows = read_rows(
            ops.reshape(rows, (size * learned, width)), self.nb_actions, self.config.masked
        )
        index = ops.expand_dims(ops.cast(bootstrap, "int32"), -1)

        def at_bootstrap(values):  # (batch, learned + 1, outputs) -> (batch * learned, outputs)
            taken = ops.take_along_axis(
                values, ops.broadcast_to(index, (size, learned, values.shape[-1])), axis=1
            )
            return ops.reshape(taken, (size * learned, values.shape[-1]))

        def loss_of(trainable):
            q_all, _ = self._unroll(trainable, non_trainable, rest, online_start)
            q = ops.reshape(q_all[:, :learned], (size * learned, q_all.shape[-1]))
            fixed = ops.stop_gradient(q_all)
            q_next = at_bootstrap(q_target if self.uses_target else fixed)
            q_online = at_bootstrap(fixed) if self.uses_online_next else None

            def compute_loss(y, weights):
                return self._loss(y, q, weights)

            return self._q_loss(q, q_next, q_online, flat_rows, compute_loss)

        (loss, td), grads = self._backend.value_and_grad(loss_of)(trainable)
        trainable, optimizer_values = self._backend.apply(
            self.model, optimizer_values, grads, trainable
        )
        if self.updates_target:
            counter = counter + 1
            mix = self._mix(counter)
            nb = len(target[0])
            updated = updated_target(
                list(target[0]) + list(target[1]), list(trainable) + list(non_trainable), mix
            )
            target = (updated[:nb], updated[nb:])
        state = (trainable, non_trainable, optimizer_values, target, counter)
        return state, ops.cast(loss, "float32"), ops.cast(td, "float32")

    def _pure_act(self, trainable, non_trainable, frames, states):
        """Q-values `(n, nb_actions)` of one frame a copy, and the next states."""
        q, after = self._unroll(trainable, non_trainable, keras.ops.expand_dims(frames, 1), states)
        return keras.ops.cast(self._action_values(q[:, 0]), "float32"), after

    # -- the calls ----------------------------------------------------------

    def call_buffers(self, nb_act: int, state_shape: tuple, dtype) -> SequenceBuffers:
        """The arrays of this learner's calls; `state_shape` is `(1,) + frame_shape`."""
        sequences = self.sequences
        return SequenceBuffers(
            self.max_steps, self.batch_size, nb_act, sequences.length, sequences.learned,
            tuple(state_shape[1:]), dtype, sequences.state_size, self.nb_actions,
            self.config.masked,
        )  # fmt: skip

    def step(self, buffers: SequenceBuffers, count: int):
        """Runs `count` gradient steps, then acts; the acting states move on in place.

        Returns `(losses, q_act, td_errors)` as `Learner.step` does;
        `buffers.acting_states` then holds the states after the acting frames.
        """
        losses = np.zeros(self.max_steps, np.float32)
        learned = self.sequences.learned
        td = (
            np.zeros(self.max_steps * self.batch_size * learned, np.float32)
            if self.config.prioritized
            else None
        )
        held = self._state is not None
        if not held:
            self.begin()
        outputs = []
        for i in range(count):
            b = buffers.batches[i]
            arrays = (b.frames, b.states, b.fresh, b.rows, b.bootstrap)
            self._state, loss, errors = self._call(
                self._calls, "learn", lambda: self._learn, self._state, *arrays
            )
            outputs.append((loss, errors))
        to_numpy, size = keras.ops.convert_to_numpy, self.batch_size * learned
        for i, (loss, errors) in enumerate(outputs):  # read once the steps are queued
            losses[i] = float(to_numpy(loss))
            if td is not None:
                td[i * size : (i + 1) * size] = to_numpy(errors)
        buffers.played_states[...] = buffers.acting_states
        q, after = self.act(buffers.acting, buffers.acting_states)
        buffers.acting_states[...] = after
        if not held:
            self.end()
        return losses, q, td

    def act(self, frames: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Q-values `(n, nb_actions)` of frames `(n,) + frame_shape` from the
        states `(n, state_size)`, and the next states, in one compiled call."""
        trainable, non_trainable = self._weights()
        key = ("act", frames.shape, frames.dtype)
        q, after = self._call(
            self._calls, key, lambda: self._act, trainable, non_trainable, frames,
            np.asarray(states, np.float32),
        )  # fmt: skip
        to_numpy = keras.ops.convert_to_numpy
        return np.array(to_numpy(q)), np.array(to_numpy(after))  # writable copies

    def q_values(self, states: np.ndarray) -> np.ndarray:
        raise ValueError(
            "A recurrent model's Q-values depend on its state: use act(frames, states)."
        )

    def _weights(self):
        if self._state is not None:
            return self._state[:2]
        model = self.model
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )

    # -- the values between calls -------------------------------------------

    def begin(self) -> None:
        model, copy = self.model, self._backend.copy
        target = self._target or ((), (), self._backend.counter(0))
        self._state = (
            [copy(v.value) for v in model.trainable_variables],
            [copy(v.value) for v in model.non_trainable_variables],
            [copy(v.value) for v in model.optimizer.variables],
            target[:2],
            target[2],
        )

    def end(self) -> None:
        if self._state is None:
            return
        trainable, non_trainable, optimizer_values, target, counter = self._state
        self._assign(trainable, non_trainable, optimizer_values)
        if self._target is not None:
            self._target = (list(target[0]), list(target[1]), counter)
        self._state = None

    def get_target(self):
        if self._target is None:
            return None
        held = self._state is not None
        if held:
            self.end()
        to_numpy = keras.ops.convert_to_numpy
        values = [to_numpy(v) for v in self._target[0] + self._target[1]]
        values.append(to_numpy(self._target[2]))
        if held:
            self.begin()
        return values

    def set_target(self, values) -> None:
        if self._target is None or values is None:
            return
        held = self._state is not None
        if held:
            self.end()
        convert, nb = self._backend.convert, len(self._target[0])
        self._target = (
            [convert(v) for v in values[:nb]],
            [convert(v) for v in values[nb:-1]],
            self._backend.counter(int(values[-1])),
        )
        if held:
            self.begin()

    def copy_target(self) -> None:
        held = self._state is not None
        if held:
            self.end()
        copy = self._backend.copy
        model = self.model
        self._target = (
            [copy(v.value) for v in model.trainable_variables],
            [copy(v.value) for v in model.non_trainable_variables],
            self._target[2],
        )
        if held:
            self.begin()


def _compiled_loss(model: keras.Model):
    """`loss(y, q, weights)`: the model's compiled loss on the flat Q-values,
    reduced as Keras reduces it (a weighted sum over the batch's size)."""
    loss = model.loss
    if isinstance(loss, (list, tuple)):
        loss = loss[0]
    elif isinstance(loss, dict):
        loss = next(iter(loss.values()))
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return lambda y, q, weights: loss(y, q, sample_weight=weights)
    ops = keras.ops

    def reduced(y, q, weights):
        values = loss(y, q)
        return ops.sum(values * ops.cast(weights, values.dtype)) / ops.cast(
            ops.shape(values)[0], values.dtype
        )

    return reduced


class _Stateless:
    """What the backends share: the optimizer's stateless update."""

    def apply(self, model, optimizer_values, grads, trainable):
        """The trainable and optimizer values after one update of `grads`."""
        return model.optimizer.stateless_apply(optimizer_values, grads, trainable)


class _Jax(_Stateless):
    def __init__(self):
        import jax

        self.jax = jax

    def compile(self, function, jit: bool, donate: bool):
        return self.jax.jit(function, donate_argnums=0 if donate else ())

    def value_and_grad(self, function):
        return self.jax.value_and_grad(function, has_aux=True)

    def copy(self, value):
        return self.jax.numpy.array(value)

    def convert(self, value):
        return self.jax.numpy.asarray(value)

    def counter(self, value: int):
        return self.jax.numpy.asarray(value, "int32")


class _TensorFlow:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def apply(self, model, optimizer_values, grads, trainable):
        # Keras' TensorFlow optimizer has no stateless update: it updates
        # the model's variables (whose values `trainable` holds) in place.
        variables = model.trainable_variables
        model.optimizer.apply(grads, variables)
        return [v.value for v in variables], [v.value for v in model.optimizer.variables]

    def compile(self, function, jit: bool, donate: bool):
        return self.tf.function(function, jit_compile=jit, autograph=False, reduce_retracing=True)

    def value_and_grad(self, function):
        tf = self.tf

        def both(trainable):
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                loss, aux = function(trainable)
            zero = tf.UnconnectedGradients.ZERO
            grads = tape.gradient(loss, trainable, unconnected_gradients=zero)
            return (loss, aux), grads

        return both

    def copy(self, value):
        return self.tf.identity(value)

    def convert(self, value):
        return self.tf.convert_to_tensor(value)

    def counter(self, value: int):
        return self.tf.constant(value, self.tf.int32)


class _Torch(_Stateless):
    def __init__(self):
        import torch

        self.torch = torch

    def compile(self, function, jit: bool, donate: bool):
        torch = self.torch

        def run(*args):
            with torch.no_grad():
                args = [torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args]
                return function(*args)

        return run

    def value_and_grad(self, function):
        grad_and_value = self.torch.func.grad_and_value(function, has_aux=True)

        def both(trainable):
            grads, (loss, aux) = grad_and_value(list(trainable))
            return (loss, aux), grads

        return both

    def copy(self, value):
        return self.torch.as_tensor(value).detach().clone()

    def convert(self, value):
        return self.torch.as_tensor(value)

    def counter(self, value: int):
        return self.torch.tensor(value, dtype=self.torch.int32)


_BACKENDS = {"jax": _Jax, "tensorflow": _TensorFlow, "torch": _Torch}
