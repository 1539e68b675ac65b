"""Compiled Q-learning steps, one implementation per Keras backend.

A call into a compiled function costs hundreds of microseconds here however
little it computes, so the agent makes as few calls as it can: one call runs
`count` gradient steps in a row (each on its own sampled batch, with the
model's own compiled loss and optimizer) and then returns the Q-values of the
states the agent acts on next, under the updated weights. `count` may be 0
(acting only).

Every call takes two arrays and returns one, whatever the batches hold
(passing arrays in and out is a large part of a call's cost):

- `frames`: `(max_steps * 2 * batch + n_act,) + state_shape` in the game's
  dtype: for each gradient step its states then its next states, then the
  states to act on. Rows of unused steps are ignored.
- `floats`: `(max_steps * batch + 1, 4)` `float32`: action, reward, game over
  and sample weight of each transition; the last row holds the number of
  gradient steps to run in its first column.
- returned: `(max_steps + n_act * nb_actions,)`: the loss of each gradient
  step (0 for those not run), then the Q-values of the acting states.
"""

from __future__ import annotations

import time

import keras
import numpy as np


def _targets(q, q_next, floats, gamma, nb_actions):
    """TD targets at the taken actions, `q` itself elsewhere: `(batch, nb_actions)`."""
    ops = keras.ops
    actions = ops.cast(floats[:, 0], "int32")
    rewards, game_over = floats[:, 1], floats[:, 2]
    best_next = ops.max(q_next, axis=1)  # (batch,)
    td = rewards + gamma * (1.0 - game_over) * best_next  # (batch,)
    taken = ops.one_hot(actions, nb_actions, dtype=q.dtype)  # (batch, nb_actions)
    return ops.stop_gradient(q * (1.0 - taken) + taken * td[:, None])


class _Learner:
    """The compiled steps of one model, discount factor and batch layout."""

    def __init__(self, model: keras.Model, gamma: float, batch_size: int, max_steps: int):
        self.model = model
        self.gamma = float(gamma)
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.nb_actions = int(model.outputs[0].shape[-1])
        self.dtype = model.inputs[0].dtype
        self.jit = bool(model.jit_compile)
        self.first_call_seconds = None
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    def _split(self, x, i):
        """States and next states of gradient step `i` in the cast frames."""
        start = i * 2 * self.batch_size
        return x[start : start + self.batch_size], x[
            start + self.batch_size : start + 2 * self.batch_size
        ]

    def begin(self) -> None:
        """Called before a run of steps; reads the model's state if needed."""

    def end(self) -> None:
        """Called after a run of steps; writes the state back to the model."""

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Returns `Q(states)` as a NumPy array `(n, nb_actions)`."""
        raise NotImplementedError

    def step(self, frames: np.ndarray, floats: np.ndarray, count: int):
        """Runs `count` gradient steps; returns `(losses (max_steps,), q_act)`."""
        floats[-1, 0] = count
        if self.first_call_seconds is None:
            start = time.perf_counter()
            out = self._step(frames, floats)
            self.first_call_seconds = time.perf_counter() - start  # tracing and compiling
        else:
            out = self._step(frames, floats)
        return out[: self.max_steps], out[self.max_steps :].reshape(-1, self.nb_actions)

    def _step(self, frames: np.ndarray, floats: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _TensorFlowLearner(_Learner):
    def __init__(self, *args):
        super().__init__(*args)
        import tensorflow as tf

        self._tf = tf
        self._steps = {}
        self._acts = {}

    def _build_step(self, frames, floats):
        tf, model = self._tf, self.model
        variables = model.trainable_variables
        optimizer = model.optimizer
        batch, max_steps = self.batch_size, self.max_steps
        state_shape = tuple(frames.shape[1:])

        def gradient_step(pairs, floats, i):
            states, next_states = pairs[i, :batch], pairs[i, batch:]
            batch_floats = floats[i]
            q_next = model(next_states, training=False)
            with tf.GradientTape() as tape:
                q = model(states, training=True)
                y = _targets(q, q_next, batch_floats, self.gamma, self.nb_actions)
                loss = model.compute_loss(
                    x=states, y=y, y_pred=q, sample_weight=batch_floats[:, 3], training=True
                )
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        def step(frames, floats):
            x = tf.cast(frames, self.dtype)
            count = tf.cast(floats[-1, 0], tf.int32)
            # Static shapes per gradient step, which XLA needs inside the loop.
            pairs = tf.reshape(x[: max_steps * 2 * batch], (max_steps, 2 * batch) + state_shape)
            floats = tf.reshape(floats[:-1], (max_steps, batch, 4))

            def body(i, losses):
                loss = gradient_step(pairs, floats, i)
                return i + 1, tf.tensor_scatter_nd_update(losses, [[i]], [loss])

            _, losses = tf.while_loop(
                lambda i, _: i < count,
                body,
                (tf.constant(0), tf.zeros((max_steps,), tf.float32)),
                maximum_iterations=max_steps,
            )
            q = model(x[max_steps * 2 * batch :], training=False)
            return tf.concat([losses, tf.reshape(tf.cast(q, tf.float32), [-1])], axis=0)

        specs = (
            tf.TensorSpec(frames.shape, frames.dtype),
            tf.TensorSpec(floats.shape, tf.float32),
        )
        return tf.function(step, jit_compile=self.jit).get_concrete_function(*specs)

    def _step(self, frames, floats):
        key = (frames.shape, frames.dtype)
        fn = self._steps.get(key)
        if fn is None:
            fn = self._steps[key] = self._build_step(frames, floats)
        return fn(self._tf.constant(frames), self._tf.constant(floats)).numpy()

    def q_values(self, states):
        key = (states.shape, states.dtype)
        fn = self._acts.get(key)
        if fn is None:
            tf, model = self._tf, self.model

            def act(states):
                return model(tf.cast(states, self.dtype), training=False)

            spec = tf.TensorSpec(states.shape, states.dtype)
            fn = tf.function(act, jit_compile=self.jit).get_concrete_function(spec)
            self._acts[key] = fn
        return fn(self._tf.constant(states)).numpy()


class _JaxLearner(_Learner):
    def __init__(self, *args):
        super().__init__(*args)
        import jax

        self._jax = jax
        self._state = None
        self._jit_step = jax.jit(self._pure_step, donate_argnums=0)
        self._act = jax.jit(self._pure_act)

    def begin(self):
        # Copies: the step donates its state's buffers, which must not be
        # buffers that a variable (of this or another model) still holds.
        model, copy = self.model, self._jax.numpy.array
        self._state = (
            [copy(v.value) for v in model.trainable_variables],
            [copy(v.value) for v in model.non_trainable_variables],
            [copy(v.value) for v in model.optimizer.variables],
        )

    def end(self):
        if self._state is None:
            return
        model = self.model
        trainable, non_trainable, optimizer = self._state
        for variables, values in (
            (model.trainable_variables, trainable),
            (model.non_trainable_variables, non_trainable),
            (model.optimizer.variables, optimizer),
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        self._state = None

    def _pure_act(self, trainable, non_trainable, states):
        q, _ = self.model.stateless_call(
            trainable, non_trainable, states.astype(self.dtype), training=False
        )
        return q

    def _gradient_step(self, state, x, floats, i):
        jax, model, batch = self._jax, self.model, self.batch_size
        trainable, non_trainable, optimizer_vars = state
        metrics_vars = [v.value for v in model.metrics_variables]
        start = i * 2 * batch
        states = jax.lax.dynamic_slice_in_dim(x, start, batch)
        next_states = jax.lax.dynamic_slice_in_dim(x, start + batch, batch)
        batch_floats = jax.lax.dynamic_slice_in_dim(floats, i * batch, batch)
        q_next, _ = model.stateless_call(trainable, non_trainable, next_states, training=False)

        def loss_fn(trainable):
            q, new_non_trainable = model.stateless_call(
                trainable, non_trainable, states, training=True
            )
            y = _targets(q, q_next, batch_floats, self.gamma, self.nb_actions)
            loss, _ = model.stateless_compute_loss(
                trainable,
                new_non_trainable,
                metrics_vars,
                x=states,
                y=y,
                y_pred=q,
                sample_weight=batch_floats[:, 3],
                training=True,
            )
            return loss, new_non_trainable

        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        trainable, optimizer_vars = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        return (trainable, non_trainable, optimizer_vars), loss

    def _pure_step(self, state, frames, floats):
        jax = self._jax
        x = frames.astype(self.dtype)
        count = floats[-1, 0].astype("int32")

        def body(i, carry):
            state, losses = carry
            state, loss = self._gradient_step(state, x, floats, i)
            return state, losses.at[i].set(loss.astype(losses.dtype))

        losses = jax.numpy.zeros((self.max_steps,), "float32")
        state, losses = jax.lax.fori_loop(0, count, body, (state, losses))
        trainable, non_trainable, _ = state
        act_states = x[self.max_steps * 2 * self.batch_size :]
        q = self._pure_act(trainable, non_trainable, act_states)
        return state, jax.numpy.concatenate([losses, q.reshape(-1).astype("float32")])

    def _step(self, frames, floats):
        self._state, out = self._jit_step(self._state, frames, floats)
        return np.asarray(out)

    def q_values(self, states):
        if self._state is None:
            model = self.model
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
        else:
            trainable, non_trainable = self._state[:2]
        return np.asarray(self._act(trainable, non_trainable, states))


class _TorchLearner(_Learner):
    def __init__(self, *args):
        super().__init__(*args)
        import torch

        self._torch = torch
        self._gradient_step = (
            torch.compile(self._eager_gradient_step) if self.jit else self._eager_gradient_step
        )

    def _tensor(self, array):
        from keras.src.backend.torch.core import get_device

        return self._torch.as_tensor(array, device=get_device())

    def _eager_gradient_step(self, states, next_states, floats):
        torch, model = self._torch, self.model
        with torch.no_grad():
            q_next = model(next_states, training=False)
        q = model(states, training=True)
        y = _targets(q, q_next, floats, self.gamma, self.nb_actions)
        loss = model.compute_loss(
            x=states, y=y, y_pred=q, sample_weight=floats[:, 3], training=True
        )
        model.zero_grad()
        loss.backward()
        variables = model.trainable_variables
        with torch.no_grad():
            model.optimizer.apply([v.value.grad for v in variables], variables)
        return loss.detach()

    def _step(self, frames, floats):
        torch, batch = self._torch, self.batch_size
        count = int(floats[-1, 0])
        x = self._tensor(frames).to(getattr(torch, self.dtype))
        floats = self._tensor(floats)
        losses = np.zeros(self.max_steps, dtype=np.float32)
        for i in range(count):
            states, next_states = self._split(x, i)
            loss = self._gradient_step(states, next_states, floats[i * batch : (i + 1) * batch])
            losses[i] = float(loss)
        with torch.no_grad():
            q = self.model(x[self.max_steps * 2 * batch :], training=False)
        return np.concatenate([losses, q.cpu().numpy().reshape(-1)])

    def q_values(self, states):
        torch = self._torch
        with torch.no_grad():
            x = self._tensor(states).to(getattr(torch, self.dtype))
            return self.model(x, training=False).cpu().numpy()


def _make_learner(model: keras.Model, gamma: float, batch_size: int, max_steps: int) -> _Learner:
    """Returns the learner of the current Keras backend."""
    backend = keras.backend.backend()
    learners = {
        "tensorflow": _TensorFlowLearner,
        "jax": _JaxLearner,
        "torch": _TorchLearner,
    }
    if backend not in learners:
        raise ValueError(
            "qlearning4k runs on the tensorflow, jax and torch Keras backends. "
            f"Received: KERAS_BACKEND={backend!r}"
        )
    return learners[backend](model, gamma, batch_size, max_steps)
