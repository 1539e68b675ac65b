"""`JaxLearner`: the compiled steps as jitted pure functions of the weights.

Importing this module (which `qlearning4k._learner` does on the JAX backend
only) makes JAX run CPU computations on the calling thread: see
`_dispatch_inline`.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from qlearning4k._learner.batch import _COUNT, _SLOT
from qlearning4k._learner.learner import Learner
from qlearning4k._learner.rules import has_convolution, narrow_kernels, updated_target


class JaxLearner(Learner):
    """JAX: each call runs one jitted pure function of the weights, which it donates."""

    def __init__(self, *args):
        super().__init__(*args)
        self._jax = jax
        self._state = None
        # The step: `count` gradient steps in a loop; or one, straight, on a slot.
        self._jit_step = jax.jit(self._pure_step, donate_argnums=0)
        self._run_loop = functools.partial(self._run_step, self._jit_step)
        self._run_one = functools.partial(
            self._run_step, jax.jit(self._pure_one_step, donate_argnums=0)
        )
        cpu = jax.default_backend() == "cpu"
        self.one_call_a_step = cpu and has_convolution(self.model)
        self._act = jax.jit(self._pure_act)
        # Trainable values whose gradients `_narrow_apart` computes apart (on the CPU).
        self._narrow = narrow_kernels(self.model) if cpu else frozenset()
        self._calls = {}  # what the jitted functions were called with
        self._target = None  # (trainable, non_trainable, counter) between runs
        if self.uses_target:
            model, copy = self.model, jax.numpy.array
            self._target = (
                [copy(v.value) for v in model.trainable_variables],
                [copy(v.value) for v in model.non_trainable_variables],
                jax.numpy.zeros((), "int32"),
            )

    def get_target(self):
        if self._target is None:
            return None
        trainable, non_trainable, counter = self._target
        return [np.asarray(v) for v in trainable + non_trainable] + [np.asarray(counter)]

    def set_target(self, values):
        if self._target is None or values is None:
            return
        as_array = self._jax.numpy.array
        nb_trainable = len(self._target[0])
        self._target = (
            [as_array(v) for v in values[:nb_trainable]],
            [as_array(v) for v in values[nb_trainable:-1]],
            as_array(values[-1], dtype="int32"),
        )

    def copy_target(self):
        # Copies: the step donates its state's buffers, and the target's must
        # be its own.
        copy = self._jax.numpy.array
        trainable, non_trainable = self._weights()
        target = (
            updated_target(self._target[0], [copy(v) for v in trainable]),
            updated_target(self._target[1], [copy(v) for v in non_trainable]),
            self._target[2] if self._state is None else self._state[3][2],
        )
        if self._state is None:
            self._target = target
        else:
            self._state = self._state[:3] + (target,)

    def begin(self):
        # Copies: the step donates its state's buffers, which must not be
        # buffers that a variable (of this or another model) still holds.
        model, copy = self.model, self._jax.numpy.array
        self._state = (
            [copy(v.value) for v in model.trainable_variables],
            [copy(v.value) for v in model.non_trainable_variables],
            [copy(v.value) for v in model.optimizer.variables],
            self._target if self._target is not None else (),
        )

    def end(self):
        if self._state is None:
            return
        trainable, non_trainable, optimizer, target = self._state
        self._assign(trainable, non_trainable, optimizer)
        if self._target is not None:
            self._target = target  # only the step holds these: no copy needed
        self._state = None

    def _pure_outputs(self, trainable, non_trainable, states):
        outputs, _ = self.model.stateless_call(
            trainable, non_trainable, states.astype(self.dtype), training=False
        )
        return outputs

    def _pure_act(self, trainable, non_trainable, states):
        """The acting Q-values; with `noisy`, also the non-trainable values after the call
        (its noise layers' generators moved on)."""
        if not self.config.noisy:
            return self._action_values(self._pure_outputs(trainable, non_trainable, states))
        outputs, non_trainable = self.model.stateless_call(
            trainable, non_trainable, states.astype(self.dtype), training=True
        )
        return self._action_values(outputs), non_trainable

    def _gradient_step(self, state, x, floats, i):
        jax, model, batch, config = self._jax, self.model, self.batch_size, self.config
        trainable, non_trainable, optimizer_vars, target = state
        both = jax.lax.dynamic_slice_in_dim(x, i * 2 * batch, 2 * batch).astype(self.dtype)
        states, next_states = both[:batch], both[batch:]
        batch_floats = jax.lax.dynamic_slice_in_dim(floats, i * batch, batch)
        loss_fn = self._loss_function(
            trainable, non_trainable, target[:2], states, next_states, batch_floats
        )
        value_and_grad = jax.value_and_grad(self._narrow_apart(loss_fn), has_aux=True)
        (loss, (non_trainable, td)), grads = value_and_grad(trainable)
        trainable, optimizer_vars = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        if self.updates_target:
            target_trainable, target_non_trainable, counter = target
            counter = counter + 1
            mix = self._mix(counter)
            weights = (target_trainable + target_non_trainable, trainable + non_trainable)
            if isinstance(config.target_update, float):
                updated = updated_target(*weights, mix)
            else:  # an exact copy every N steps, and nothing in between
                updated = jax.lax.cond(
                    mix > 0, lambda w: updated_target(*w), lambda w: list(w[0]), weights
                )
            nb_trainable = len(target_trainable)
            target = (updated[:nb_trainable], updated[nb_trainable:], counter)
        return (trainable, non_trainable, optimizer_vars, target), loss, td

    def _narrow_apart(self, loss_fn):
        """`loss_fn` with the gradients of the narrow kernels (`rules.narrow_kernels`)
        computed as XLA's CPU compiler computes them fast.

        JAX differentiates `y = x @ w`, `w` of shape `(k, m)`, into the product
        `g.T @ x` of shape `(m, k)` and its transpose. XLA folds the two into one
        product of shape `(k, m)` that contracts the batch, and on the CPU
        such a product with few columns runs in its generic loops: 42 µs for
        the Zoo's Acrobot output layer (256 x 3, batch 128), 4 GFLOP/s, where
        the unfolded `(m, k)` product takes 7 µs. An optimization barrier
        between the product and its transpose keeps them apart. The trained
        weights came out the same to the last bit here.
        """
        if not self._narrow:
            return loss_fn
        apart, narrow = _transposed_gradient(self._jax), self._narrow

        def loss(trainable):
            return loss_fn([apart(v) if i in narrow else v for i, v in enumerate(trainable)])

        return loss

    def _pure_step(self, state, frames, floats):
        jax, batch = self._jax, self.batch_size
        count = floats[-1, _COUNT].astype("int32")
        prioritized = self.config.prioritized

        def body(i, carry):
            state, losses, errors = carry
            state, loss, td = self._gradient_step(state, frames, floats, i)
            if prioritized:
                errors = jax.lax.dynamic_update_slice_in_dim(errors, td, i * batch, 0)
            return state, losses.at[i].set(loss.astype(losses.dtype)), errors

        state, losses, errors = jax.lax.fori_loop(0, count, body, (state, *self._no_losses()))
        return self._act_after(state, losses, errors, frames)

    def _pure_one_step(self, state, frames, floats):
        """One gradient step, straight, on the slot that `floats[-1, _SLOT]` names."""
        jax = self._jax
        slot = floats[-1, _SLOT].astype("int32")
        state, loss, td = self._gradient_step(state, frames, floats, slot)
        losses, errors = self._no_losses()
        losses = losses.at[slot].set(loss.astype(losses.dtype))
        if self.config.prioritized:
            errors = jax.lax.dynamic_update_slice_in_dim(errors, td, slot * self.batch_size, 0)
        return self._act_after(state, losses, errors, frames)

    def _no_losses(self):
        """Zeroed losses `(max_steps,)` and TD errors (none without `prioritized`)."""
        zeros, steps = self._jax.numpy.zeros, self.max_steps
        errors = (steps * self.batch_size if self.config.prioritized else 0,)
        return zeros((steps,), "float32"), zeros(errors, "float32")

    def _act_after(self, state, losses, errors, frames):
        """The step's outputs: its state, and the losses, TD errors and acting Q-values."""
        jax = self._jax
        trainable, non_trainable = state[:2]
        act_states = frames[self.max_steps * 2 * self.batch_size :]
        q = self._pure_act(trainable, non_trainable, act_states)
        if self.config.noisy:
            q, non_trainable = q
            state = (trainable, non_trainable) + tuple(state[2:])
        return state, jax.numpy.concatenate([losses, errors, q.reshape(-1).astype("float32")])

    def _step(self, frames, floats):
        # Acting alone runs the small graph of `q_values`: the whole step's
        # graph with no gradient step took 78 µs a call in the Zoo's Acrobot
        # run (one core), `q_values` of its one state 13 µs.
        count = int(floats[-1, _COUNT])
        if count == 0:
            return self._acting_only(frames)
        key = (frames.shape, frames.dtype, floats.shape)  # jax.jit compiles once for each
        if not self.one_call_a_step:
            return self._call(self._calls, key, lambda: self._run_loop, frames, floats)
        run = functools.partial(self._call, self._calls, ("one", *key), lambda: self._run_one)
        return self._one_call_a_step(run, frames, floats, count)

    def _alias(self, array):
        # On the CPU, device_put wraps an aligned array without copying it;
        # elsewhere it copies, and buffer() leaves the array unbound.
        return self._jax.device_put(array)

    def _run_step(self, jitted, frames, floats):
        # np.asarray() waits for the outputs: the call has read its inputs
        # before the agent writes the buffers again.
        self._state, out = jitted(self._state, self._value(frames), self._value(floats))
        return np.asarray(out)

    def _weights(self):
        """The online `(trainable, non_trainable)` values: the step's while it runs."""
        if self._state is not None:
            return self._state[:2]
        model = self.model
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )

    def q_values(self, states):
        trainable, non_trainable = self._weights()
        key = ("act", states.shape, states.dtype)
        act = self._call(self._calls, key, lambda: self._act, trainable, non_trainable, states)
        if self.config.noisy:
            act, non_trainable = act
            self._keep_non_trainable(non_trainable)
        return np.asarray(act)

    def _keep_non_trainable(self, values):
        """Keeps the non-trainable values a noisy acting call returned: in the
        step's state while a run holds it, else in the model's variables."""
        if self._state is not None:
            self._state = (self._state[0], list(values)) + tuple(self._state[2:])
            return
        for variable, value in zip(self.model.non_trainable_variables, values, strict=True):
            variable.assign(value)


@functools.cache
def _transposed_gradient(jax):
    """The identity whose gradient goes through an optimization barrier
    between its transposes (see `JaxLearner._narrow_apart`)."""

    @jax.custom_vjp
    def apart(value):
        return value

    def backward(_, gradient):
        return (jax.lax.optimization_barrier(gradient.T).T,)

    apart.defvjp(lambda value: (value, None), backward)
    return apart


def _dispatch_inline() -> None:
    """Makes JAX run CPU computations on the calling thread, if it is not too late.

    By default JAX hands each CPU computation to a worker thread and the
    caller then waits for its result. A Q-learning step is so small that
    the two thread switches cost more than the step: the README model's
    call took 154 to 258 µs inline against 259 to 425 µs handed over here
    (one gradient step of batch 32, SGD), and the README example trained
    in 3.1 to 3.9 s instead of 4.2 to 5.0 s. The setting only matters when
    JAX creates its CPU client, at its first computation, so it is made when
    qlearning4k is imported, on the JAX backend, and only if JAX has not
    computed anything yet (see `qlearning4k._learner`, which imports this
    module on the JAX backend only). Results are the same either way.
    `jax.config.update("jax_cpu_enable_async_dispatch", True)` after the
    import (and before any computation) gives JAX its default back.
    """
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return  # too late: the client keeps the mode it started with
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except (ImportError, AttributeError):  # a JAX without these: its default stays
        pass


_dispatch_inline()
