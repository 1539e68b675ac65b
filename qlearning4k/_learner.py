"""Compiled Q-learning steps, one implementation per Keras backend.

A call into a compiled function costs hundreds of microseconds here however
little it computes, so one training step of the agent is exactly one call:
it computes the Q-targets of a sampled batch, applies one gradient step with
the model's own compiled loss and optimizer, and returns the Q-values of the
states the agent acts on next, under the updated weights.

Every step takes two arrays, whatever the batch holds (argument passing is a
large part of a call's cost):

- `frames`: `(2 * batch + n_act,) + state_shape` in the game's dtype: the
  batch's states, its next states, then the states to act on.
- `floats`: `(batch, 4)` `float32`: action, reward, game over, sample weight.
"""

from __future__ import annotations

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
    """Holds the compiled step and action choice of one model and gamma."""

    def __init__(self, model: keras.Model, gamma: float):
        self.model = model
        self.gamma = float(gamma)
        self.nb_actions = int(model.outputs[0].shape[-1])
        self.dtype = model.inputs[0].dtype
        self.jit = bool(model.jit_compile)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    def begin(self) -> None:
        """Called before a run of steps; reads the model's state if needed."""

    def end(self) -> None:
        """Called after a run of steps; writes the state back to the model."""

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Returns `Q(states)` as a NumPy array `(n, nb_actions)`."""
        raise NotImplementedError

    def step(self, frames: np.ndarray, floats: np.ndarray):
        """One gradient step; returns `(loss, q_act)` as NumPy values."""
        raise NotImplementedError


class _TensorFlowLearner(_Learner):
    def __init__(self, model, gamma):
        super().__init__(model, gamma)
        import tensorflow as tf

        self._tf = tf
        self._steps = {}
        self._acts = {}

    def _build_step(self, frames, floats):
        tf, model = self._tf, self.model
        variables = model.trainable_variables
        optimizer = model.optimizer
        batch = floats.shape[0]

        def step(frames, floats):
            x = tf.cast(frames, self.dtype)
            states, next_states, act_states = x[:batch], x[batch : 2 * batch], x[2 * batch :]
            q_next = model(next_states, training=False)
            with tf.GradientTape() as tape:
                q = model(states, training=True)
                y = _targets(q, q_next, floats, self.gamma, self.nb_actions)
                loss = model.compute_loss(
                    x=states, y=y, y_pred=q, sample_weight=floats[:, 3], training=True
                )
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss, model(act_states, training=False)

        specs = (tf.TensorSpec(frames.shape, frames.dtype), tf.TensorSpec(floats.shape, tf.float32))
        return tf.function(step, jit_compile=self.jit).get_concrete_function(*specs)

    def step(self, frames, floats):
        key = (frames.shape, frames.dtype, floats.shape)
        fn = self._steps.get(key)
        if fn is None:
            fn = self._steps[key] = self._build_step(frames, floats)
        tf = self._tf
        loss, q = fn(tf.constant(frames), tf.constant(floats))
        return loss.numpy(), q.numpy()

    def q_values(self, states):
        key = (states.shape, states.dtype)
        fn = self._acts.get(key)
        if fn is None:
            tf, model = self._tf, self.model

            def act(states):
                return model(tf.cast(states, self.dtype), training=False)

            spec = tf.TensorSpec(states.shape, states.dtype)
            fn = self._acts[key] = tf.function(act, jit_compile=self.jit).get_concrete_function(
                spec
            )
        return fn(self._tf.constant(states)).numpy()


class _JaxLearner(_Learner):
    def __init__(self, model, gamma):
        super().__init__(model, gamma)
        import jax

        self._jax = jax
        self._state = None
        self._step = jax.jit(self._pure_step, donate_argnums=0)
        self._act = jax.jit(self._pure_act)

    def begin(self):
        model = self.model
        self._state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
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

    def _pure_step(self, state, frames, floats):
        jax, model = self._jax, self.model
        trainable, non_trainable, optimizer_vars = state
        metrics_vars = [v.value for v in model.metrics_variables]
        batch = floats.shape[0]
        x = frames.astype(self.dtype)
        states, next_states, act_states = x[:batch], x[batch : 2 * batch], x[2 * batch :]
        q_next, _ = model.stateless_call(trainable, non_trainable, next_states, training=False)

        def loss_fn(trainable):
            q, new_non_trainable = model.stateless_call(
                trainable, non_trainable, states, training=True
            )
            y = _targets(q, q_next, floats, self.gamma, self.nb_actions)
            loss, _ = model.stateless_compute_loss(
                trainable,
                new_non_trainable,
                metrics_vars,
                x=states,
                y=y,
                y_pred=q,
                sample_weight=floats[:, 3],
                training=True,
            )
            return loss, new_non_trainable

        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        trainable, optimizer_vars = model.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        q_act = self._pure_act(trainable, non_trainable, act_states)
        return (trainable, non_trainable, optimizer_vars), loss, q_act

    def step(self, frames, floats):
        self._state, loss, q = self._step(self._state, frames, floats)
        return np.asarray(loss), np.asarray(q)

    def q_values(self, states):
        if self._state is None:
            model = self.model
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
        else:
            trainable, non_trainable = self._state[:2]
        return np.asarray(self._act(trainable, non_trainable, states))


class _TorchLearner(_Learner):
    def __init__(self, model, gamma):
        super().__init__(model, gamma)
        import torch

        self._torch = torch
        self._step = torch.compile(self._eager_step) if self.jit else self._eager_step

    def _tensor(self, array):
        from keras.src.backend.torch.core import get_device

        return self._torch.as_tensor(array, device=get_device())

    def _eager_step(self, frames, floats):
        torch, model = self._torch, self.model
        batch = floats.shape[0]
        x = frames.to(getattr(torch, self.dtype))
        states, next_states, act_states = x[:batch], x[batch : 2 * batch], x[2 * batch :]
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
            q_act = model(act_states, training=False)
        return loss.detach(), q_act

    def step(self, frames, floats):
        loss, q = self._step(self._tensor(frames), self._tensor(floats))
        return loss.cpu().numpy(), q.cpu().numpy()

    def q_values(self, states):
        torch = self._torch
        with torch.no_grad():
            x = self._tensor(states).to(getattr(torch, self.dtype))
            return self.model(x, training=False).cpu().numpy()


def _make_learner(model: keras.Model, gamma: float) -> _Learner:
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
    return learners[backend](model, gamma)
