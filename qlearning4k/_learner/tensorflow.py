"""`TensorFlowLearner`: the compiled steps as traced `tf.function`s, run lean."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import tensorflow as tf

from qlearning4k._learner.batch import _COUNT, _SLOT
from qlearning4k._learner.learner import Learner
from qlearning4k._learner.rules import has_convolution, updated_target

EXTRA_CALLS = 300  # one-step calls beyond one a call before tracing the loop


class TensorFlowLearner(Learner):
    """TensorFlow: each call runs one traced `tf.function` (a loop of gradient steps, or one)."""

    def __init__(self, *args):
        super().__init__(*args)
        self._tf = tf
        self._to_tensor = _eager_tensor_maker(tf)
        self._execute = _function_executor(tf)
        self._may_bind = not tf.config.list_logical_devices("GPU")
        self.one_call_a_step = self.jit and self._may_bind and has_convolution(self.model)
        self._act_buffers = {}
        self._learn = {}  # one gradient step, traced once for the one-step graph and the loop
        self._steps = {}
        # One-step calls that calls asking for several steps may still make,
        # beyond one a call, before the step's loop is traced (see `_step`).
        self.extra_calls_left = EXTRA_CALLS
        self._acts = {}
        self._target = None
        if self.uses_target:
            model = self.model
            self._target = [
                tf.Variable(v.value, trainable=False)
                for v in model.trainable_variables + model.non_trainable_variables
            ]
            self._counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _alias(self, array):
        # With a GPU visible nothing is bound: its copies of the inputs may
        # run late; so may everything without synchronous execution.
        synchronous = self._tf.config.experimental.get_synchronous_execution()
        if not self._may_bind or not synchronous:
            return None
        return self._to_tensor(array)

    def _convert(self, array):
        return self._to_tensor(array)

    def get_target(self):
        if self._target is None:
            return None
        return [v.numpy() for v in self._target] + [self._counter.numpy()]

    def set_target(self, values):
        if self._target is None or values is None:
            return
        for variable, value in zip(self._target + [self._counter], values, strict=True):
            variable.assign(value)

    def copy_target(self):
        self._assign_target()

    def _assign_target(self, tau=None):
        """One update of the target network's variables (`rules.updated_target`)."""
        model = self.model
        online = [v.value for v in model.trainable_variables + model.non_trainable_variables]
        current = [t.value() for t in self._target]
        for target, value in zip(self._target, updated_target(current, online, tau), strict=True):
            target.assign(value)

    def _q_next(self, next_states):
        """`Q(S')` to evaluate (the target network's with one) and, with Double
        DQN, the online `Q(S')` that picks the action."""
        model = self.model
        if not self.uses_target:
            return model(next_states, training=False), None
        nb_trainable = len(model.trainable_variables)
        values = [v.read_value() for v in self._target]
        q_next, _ = model.stateless_call(
            values[:nb_trainable], values[nb_trainable:], next_states, training=False
        )
        q_online = model(next_states, training=False) if self.uses_online_next else None
        return q_next, q_online

    def _update_target(self):
        """The target network's update after a gradient step, in the graph."""
        tf = self._tf

        def copy():
            self._assign_target()
            return tf.constant(True)

        counter = self._counter.assign_add(1)
        mix = self._mix(counter)
        if isinstance(self.config.target_update, float):
            self._assign_target(mix)
        else:  # an exact copy every N steps, and nothing in between
            tf.cond(mix > 0, copy, lambda: tf.constant(False))

    def _gradient_step(self, both, batch_floats):
        """One gradient step on a batch's states and next states (`both`) and
        its rows of `floats`; returns `(loss, td_errors)`. Traced once for
        both graphs of `_build_step`."""
        tf, model, batch = self._tf, self.model, self.batch_size
        variables = model.trainable_variables
        both = tf.cast(both, self.dtype)  # only the rows of this step
        states, next_states = both[:batch], both[batch:]
        q_next, q_online = self._q_next(next_states)
        with tf.GradientTape() as tape:
            q = model(states, training=True)

            def compute_loss(y, weights):
                return model.compute_loss(
                    x=states, y=y, y_pred=q, sample_weight=weights, training=True
                )

            loss, td = self._q_loss(q, q_next, q_online, self._rows(batch_floats), compute_loss)
        model.optimizer.apply(tape.gradient(loss, variables), variables)
        if self.updates_target:
            self._update_target()
        return loss, td

    def _build_step(self, frames, floats, loop: bool):
        """Traces the step for arrays like `frames` and `floats`.

        With `loop`, a `tf.while_loop` runs the number of gradient steps the
        call asks for. Without, the step runs exactly one, straight, on the
        batch in the slot that `floats[-1, _SLOT]` names. Both graphs call one
        traced gradient step (a nested `tf.function`, which TensorFlow inlines
        when it runs a graph): the second graph to be traced reuses it, which
        halves its first call (0.34 s down to 0.17 s with Adam here) and
        leaves the cost of a call unchanged.
        """
        tf, model, config = self._tf, self.model, self.config
        batch, max_steps, width = self.batch_size, self.max_steps, self.width
        state_shape = tuple(frames.shape[1:])
        key = (state_shape, frames.dtype)
        if key not in self._learn:
            self._learn[key] = tf.function(self._gradient_step, autograph=False)
        learn = self._learn[key]

        def gradient_step(pairs, floats, i):
            # tf.gather, not pairs[i]: with XLA, a slice whose start comes
            # from the call's arguments is compiled anew for each value.
            return learn(tf.gather(pairs, i), tf.gather(floats, i))

        def step(frames, floats):
            count = tf.cast(floats[-1, _COUNT], tf.int32)
            slot = tf.cast(floats[-1, _SLOT], tf.int32)
            # Static shapes per gradient step, which XLA needs inside the loop.
            pairs = tf.reshape(
                frames[: max_steps * 2 * batch], (max_steps, 2 * batch) + state_shape
            )
            floats = tf.reshape(floats[:-1], (max_steps, batch, width))

            def body(i, losses, errors):
                loss, td = gradient_step(pairs, floats, i)
                losses = tf.tensor_scatter_nd_update(losses, [[i]], [tf.cast(loss, tf.float32)])
                if config.prioritized:
                    errors = tf.tensor_scatter_nd_update(errors, [[i]], [td])
                return i + 1, losses, errors

            initial = (
                tf.constant(0),
                tf.zeros((max_steps,), tf.float32),
                tf.zeros((max_steps, batch) if config.prioritized else (0,), tf.float32),
            )
            if loop:
                _, losses, errors = tf.while_loop(
                    lambda i, *_: i < count, body, initial, maximum_iterations=max_steps
                )
            else:
                _, losses, errors = body(slot, *initial[1:])
            act_states = tf.cast(frames[max_steps * 2 * batch :], self.dtype)
            q = self._action_values(model(act_states, training=config.noisy))
            out = [losses, tf.reshape(errors, [-1]), tf.reshape(tf.cast(q, tf.float32), [-1])]
            return tf.concat(out, axis=0)

        specs = (
            tf.TensorSpec(frames.shape, frames.dtype),
            tf.TensorSpec(floats.shape, tf.float32),
        )
        # TensorFlow's single-threaded executor runs no control flow (not the
        # loop, nor the tf.cond of a hard target copy), and only CPU devices.
        straight = not loop and not isinstance(config.target_update, int)
        return self._compile(step, specs, straight)

    def _compile(self, fn, specs, straight=True):
        """Traces `fn` once for `specs`; returns a lean caller of the result.

        `straight`: the graph has no control flow, so on one core (see
        `Agent.train(single_core=True)`) it may run on the calling thread.
        Autograph is off: the step's loop is an explicit `tf.while_loop` and
        Keras calls its layers unconverted anyway, while converting the
        optimizer's update code cost the first trace of a process about 0.4 s
        here. The caller goes straight to the traced function with its
        captured variables, skipping the argument binding and gradient tape
        checks of `ConcreteFunction.__call__` (a fifth of a call's cost here);
        nothing records gradients through the step.
        """
        tf = self._tf
        concrete = tf.function(fn, jit_compile=self.jit, autograph=False).get_concrete_function(
            *specs
        )
        inference, captured = concrete.inference_fn, list(concrete.captured_inputs)
        run = self._execute(inference)
        tensor = self._value
        straight = straight and self._may_bind  # no GPU visible

        def call(*arrays):
            # On one core, a graph without control flow runs all its ops on
            # the calling thread (a fifth less a call here), not handed to
            # the inter-op threads, which would take turns on that core.
            inline = straight and self.single_core
            # _numpy(): the tensor's own memory, without the copy numpy() makes.
            return run([tensor(a) for a in arrays] + captured, inline)[0]._numpy()

        return call

    def _step(self, frames, floats):
        # A call of the one-step graph costs 0.06 to 0.15 ms less than the
        # loop's call running one step; a call with several steps costs less
        # in the loop (about 0.28 ms a step for the README model) than in
        # one-step calls (0.33 to 0.4 ms each). So one step runs straight,
        # and several run one call each until they have cost EXTRA_CALLS
        # calls more than the loop would: only then is the loop worth its
        # first call (0.12 s with SGD, 0.17 s with Adam; the gradient step
        # inside is traced once for both graphs, see `_build_step`).
        count = int(floats[-1, _COUNT])
        if count == 0:
            return self._acting_only(frames)
        loop_key = (frames.shape, frames.dtype, True)
        loop = (
            count > 1
            and not self.one_call_a_step
            and (loop_key in self._steps or self.extra_calls_left < count - 1)
        )
        if loop:
            make = functools.partial(self._build_step, frames, floats, loop=True)
            return self._call(self._steps, loop_key, make, frames, floats)
        self.extra_calls_left -= count - 1
        key = (frames.shape, frames.dtype, False)
        make = functools.partial(self._build_step, frames, floats, loop=False)
        run = functools.partial(self._call, self._steps, key, make)
        return self._one_call_a_step(run, frames, floats, count)

    def q_values(self, states):
        tf, model = self._tf, self.model

        def act(states):
            q = model(tf.cast(states, self.dtype), training=self.config.noisy)
            return self._action_values(q)

        def make():
            return self._compile(act, (tf.TensorSpec(states.shape, states.dtype),))

        key = (states.shape, states.dtype)
        buffer = self._act_buffers.get(key)
        if buffer is None:
            buffer = self._act_buffers[key] = self.buffer(*key)
        buffer[...] = states
        return self._call(self._acts, key, make, buffer)


def _function_executor(tf):
    """A function that makes a runner of a traced function's inference function.

    The runner executes the function op directly, with the call options
    (`executor_type`, `config_proto`) that `call_flat` would pass read once,
    when it is made, instead of through `call_flat`, whose context managers
    and per-call options cost about 0.05 ms a call here. Errors are raised
    as TensorFlow raises them, without `call_flat`'s source locations. Falls
    back to `call_flat` where this TensorFlow lacks the pieces.

    `run(tensors, inline)` with `inline` true asks for TensorFlow's
    single-threaded executor, which runs every op on the calling thread; the
    function must have no control flow (the fallback ignores `inline`).
    """
    try:
        from tensorflow.python.eager import context, execute

        current = context.context()
        quick_execute = execute.quick_execute
    except (ImportError, AttributeError):
        return lambda inference: lambda tensors, inline=False: inference.call_flat(*tensors)

    def runner(inference):
        try:
            name = inference.name.decode("utf-8")
            nb_outputs = len(inference.function_type.flat_outputs)
            options = current.function_call_options.as_attrs()
        except AttributeError:
            return lambda tensors, inline=False: inference.call_flat(*tensors)
        attrs = tuple(itertools.chain(*options.items()))
        inline_options = {**options, "executor_type": "SINGLE_THREADED_EXECUTOR"}
        inline_attrs = tuple(itertools.chain(*inline_options.items()))

        # `keep`: the function lives as long as its runner.
        def run(tensors, inline=False, keep=inference):
            chosen = inline_attrs if inline else attrs
            return quick_execute(name, nb_outputs, tensors, chosen, current)

        return run

    return runner


def _eager_tensor_maker(tf):
    """A function that makes an eager tensor of a NumPy array, as `tf.constant` does.

    It builds the `EagerTensor` in the current device scope directly: the
    checks `tf.constant` makes first cost 12 µs a call here, a tenth of the
    cost of passing an array. Falls back to `tf.constant` where this
    TensorFlow has no such constructor.
    """
    try:
        from tensorflow.python.eager import context
        from tensorflow.python.framework.ops import EagerTensor

        context.ensure_initialized()  # the constructor needs a started eager context
        current = context.context()
        EagerTensor(np.zeros(1, np.float32), current.device_name, None)
    except (ImportError, AttributeError, TypeError, SystemError):
        return tf.constant

    def to_tensor(array):
        return EagerTensor(array, current.device_name, None)

    return to_tensor
