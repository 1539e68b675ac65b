"""Compiled Q-learning steps, one implementation per Keras backend.

A call into a compiled function costs hundreds of microseconds here however
little it computes, so the agent makes as few calls as it can: one call runs
`count` gradient steps in a row (each on its own sampled batch, with the
model's own compiled loss and optimizer) and then returns the Q-values of the
states the agent acts on next, under the updated weights. `count` may be 0
(acting only). Every option of `_StepConfig` (target network, Double DQN,
action masks, prioritized replay) lives inside that same call.

Every call takes two arrays and returns one, whatever the batches hold
(passing arrays in and out is a large part of a call's cost):

- `frames`: `(max_steps * 2 * batch + n_act,) + state_shape` in the game's
  dtype: for each gradient step its states then its next states, then the
  states to act on. Rows of unused steps are ignored.
- `floats`: `(max_steps * batch + 1, width)` `float32`: per transition its
  action, reward, bootstrap discount (`gamma ** steps`, 0 at game over) and
  sample weight, then with `masked` one 0/1 column per action (the actions
  possible in the next state). The last row holds the number of gradient
  steps to run in its first column and, for the one-step graph (see
  `_Learner.one_call_a_step`), the slot of the step to run in its second.
- returned: `(max_steps [+ max_steps * batch] + n_act * nb_actions,)`: the
  loss of each gradient step (0 for those not run), with `prioritized` the
  TD error of each transition, then the Q-values of the acting states.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
import time
import warnings

import keras
import numpy as np

FIXED_COLUMNS = 4  # action, reward, discount, weight; the mask columns follow
EXTRA_CALLS = 300  # TensorFlow: one-step calls beyond one a call before tracing the loop
_ALIGN = 64  # bytes: TensorFlow wraps a NumPy array aligned this way without copying it
_MAX_BOUND = 16  # TensorFlow: arrays bound to a tensor, the oldest dropped beyond this


@dataclasses.dataclass(frozen=True)
class _StepConfig:
    """What one compiled step does; the agent keeps one learner per config."""

    batch_size: int = 1
    max_steps: int = 1
    target_update: int | float | None = None  # int: hard copy every N steps; float: tau
    # A target network that the steps never update: the training loop copies
    # the online weights into it between calls (`copy_target`), every N env steps.
    target_copied: bool = False
    double_dqn: bool = False
    masked: bool = False
    prioritized: bool = False
    # `qlearning4k.distributional.C51` or `QuantileRegression`: the model
    # outputs each action's distribution, and its loss replaces the model's.
    distribution: object | None = None
    # Acting calls run the model in training mode, so that its noise layers
    # (`qlearning4k.NoisyDense`) draw new noise at each call.
    noisy: bool = False


def _next_choice(q_next, q_next_online, floats, nb_actions: int, masked: bool):
    """The next state's action each target bootstraps from, and whether it has any.

    Returns `(one_hot, possible)`: `one_hot` `(batch, nb_actions)` marks the
    greedy action of `q_next` (of `q_next_online` with Double DQN) among the
    possible ones; `possible` `(batch,)` bool is `None` without masks.
    """
    ops = keras.ops
    chooser = q_next if q_next_online is None else q_next_online
    possible = None
    if masked:
        allowed = floats[:, FIXED_COLUMNS : FIXED_COLUMNS + nb_actions] > 0.5
        chooser = ops.where(allowed, chooser, float("-inf"))
        possible = ops.any(allowed, axis=1)
    chosen = ops.argmax(chooser, axis=1)
    return _one_hot(chosen, nb_actions, q_next.dtype), possible


def _one_hot(indices, n: int, dtype):
    """`(batch, n)` rows that are 1 at `indices`, 0 elsewhere, in `dtype`.

    Built by comparison rather than `keras.ops.one_hot`, whose PyTorch
    version checks the indices' range on their values, which a traced
    PyTorch graph cannot do (see `_TorchLearner`).
    """
    ops = keras.ops
    return ops.cast(ops.equal(indices[:, None], ops.arange(n, dtype=indices.dtype)), dtype)


def _targets(q, q_next, q_next_online, floats, nb_actions, masked):
    """TD targets at the taken actions, `q` itself elsewhere: `(batch, nb_actions)`.

    `q_next` evaluates the next states (the target network's Q when there is
    one); `q_next_online`, when given (Double DQN), picks the action it
    evaluates. With `masked`, only the next state's possible actions count.
    """
    ops = keras.ops
    actions = ops.cast(floats[:, 0], "int32")
    rewards, discount = floats[:, 1], floats[:, 2]
    if q_next_online is None and not masked:  # plain DQN: the largest Q(S')
        best_next = ops.max(q_next, axis=1)  # (batch,)
    else:
        chosen, possible = _next_choice(q_next, q_next_online, floats, nb_actions, masked)
        best_next = ops.sum(q_next * chosen, axis=1)  # (batch,)
        if possible is not None:  # a next state with no possible action has no future
            best_next = ops.where(possible, best_next, 0.0)
    td = rewards + discount * ops.cast(best_next, rewards.dtype)  # (batch,)
    taken = _one_hot(actions, nb_actions, q.dtype)  # (batch, nb_actions)
    return ops.stop_gradient(q * (1.0 - taken) + taken * ops.cast(td, q.dtype)[:, None])


def _td_errors(y, q):
    """`y - q` at the taken action (they agree elsewhere): `(batch,)` float32."""
    return keras.ops.cast(keras.ops.sum(y - q, axis=1), "float32")


class _Learner:
    """The compiled steps of one model and `_StepConfig`."""

    def __init__(self, model: keras.Model, config: _StepConfig):
        self.model = model
        self.config = config
        self.batch_size = config.batch_size
        self.max_steps = config.max_steps
        self.distribution = config.distribution
        atoms = 1 if self.distribution is None else self.distribution.nb_atoms
        self.nb_actions = int(model.outputs[0].shape[-1]) // atoms
        self.width = FIXED_COLUMNS + (self.nb_actions if config.masked else 0)
        self.dtype = model.inputs[0].dtype
        self.jit = bool(model.jit_compile)
        # Seconds of the first call of each compiled function: tracing and
        # compiling (and that one run). Benchmarks report it.
        self.compile_seconds = 0.0
        # Set by a training run with `single_core=True` while it runs: first
        # calls (compiling) then run on every core inside `compiling()`.
        self.single_core = False
        self.compiling = contextlib.nullcontext
        # id(array) -> (array, the backend value that shares its memory): see buffer().
        self._bound = {}
        self.uses_target = config.target_update is not None or config.target_copied
        self.updates_target = config.target_update is not None  # inside each gradient step
        # The target network evaluates Q(S'); Double DQN then also needs the
        # online Q(S') to pick the action. Without a target network Double
        # DQN picks and evaluates with the same network: plain DQN.
        self.uses_online_next = config.double_dqn and self.uses_target
        # True: several gradient steps run as one call of the one-step graph
        # each, never in a compiled loop. XLA's CPU compiler gives a
        # convolution its fast (Eigen) kernel only where the convolution sits
        # in the program's entry computation: inside a loop's body, the
        # gradient of the MinAtar network's convolution runs in XLA's generic
        # loops, and a gradient step took 2.2 ms there against 0.9 to 1.05 ms
        # straight (one core here). So models with convolutions under XLA on
        # the CPU run one call a step (see the subclasses).
        self.one_call_a_step = False
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    def _mix(self, counter):
        """Share of the online weights that goes into the target after a step.

        `counter` counts gradient steps (after this one): a hard update
        copies every `target_update` steps, a soft one mixes in `tau`.
        """
        update = self.config.target_update
        if isinstance(update, float):
            return update
        if isinstance(counter, int):  # the eager torch step counts in Python
            return float(counter % update == 0)
        return keras.ops.cast(keras.ops.equal(counter % update, 0), "float32")

    def _action_values(self, outputs):
        """Q-values `(batch, nb_actions)` from the model's outputs: their means
        with a distribution, the outputs themselves without."""
        if self.distribution is None:
            return outputs
        return self.distribution._q_values(outputs, self.nb_actions)

    def _distribution_loss(self, outputs, next_outputs, next_online, floats):
        """A distributional step's loss (the weighted mean, as Keras' losses reduce)
        and each transition's loss, which prioritized replay takes as its TD error."""
        ops = keras.ops
        losses = self.distribution._losses(
            outputs, next_outputs, next_online, floats, self.nb_actions, self.config.masked
        )
        return ops.mean(losses * ops.cast(floats[:, 3], losses.dtype)), ops.cast(losses, "float32")

    def _loss_function(self, trainable, non_trainable, target, states, next_states, floats):
        """One gradient step's loss as a function of the trainable values alone,
        the next states' values computed first (JAX's and the traced PyTorch
        step's). `target`: the target network's `(trainable, non_trainable)`
        values, read only with one."""
        model = self.model

        def outputs(trainable, non_trainable):
            values, _ = model.stateless_call(trainable, non_trainable, next_states, training=False)
            return values

        q_next = outputs(*target) if self.uses_target else outputs(trainable, non_trainable)
        q_online = outputs(trainable, non_trainable) if self.uses_online_next else None
        return functools.partial(
            self._stateless_loss,
            non_trainable=non_trainable,
            states=states,
            q_next=q_next,
            q_online=q_online,
            floats=floats,
        )

    def _stateless_loss(self, trainable, non_trainable, states, q_next, q_online, floats):
        """One gradient step's loss as a function of the trainable values (JAX's
        and the traced PyTorch step's): `(loss, (non_trainable, td_errors))`,
        `non_trainable` as the forward pass left them (BatchNormalization)."""
        model = self.model
        q, non_trainable = model.stateless_call(trainable, non_trainable, states, training=True)
        if self.distribution is not None:
            loss, td = self._distribution_loss(q, q_next, q_online, floats)
            return loss, (non_trainable, td)
        y = _targets(q, q_next, q_online, floats, self.nb_actions, self.config.masked)
        loss, _ = model.stateless_compute_loss(
            trainable,
            non_trainable,
            [v.value for v in model.metrics_variables],
            x=states,
            y=y,
            y_pred=q,
            sample_weight=floats[:, 3],
            training=True,
        )
        return loss, (non_trainable, _td_errors(y, q))

    def buffer(self, shape: tuple, dtype) -> np.ndarray:
        """A zeroed array to fill in place and pass to every call.

        Passing the backend a value made once costs a call less than
        converting the array at each call (about 0.07 ms on TensorFlow and
        0.01 to 0.03 ms on JAX here), so where the backend can wrap the array
        without copying it (an aligned array on the CPU, see `_alias`) the
        buffer gets its value once, which sees every change made in place
        between calls. That holds only while each call has read its inputs
        before the agent writes them again: the agent writes them once it
        has the call's outputs, which both backends that alias give only
        after the call has run. A buffer the backend copied is converted
        anew at each call.
        """
        array = _aligned_zeros(shape, dtype)
        if not array.size:
            return array
        value = self._alias(array)
        if value is None:
            return array
        array.flat[0] = 1
        shared = bool(np.asarray(value).flat[0] == 1)
        array.flat[0] = 0
        if shared:
            while len(self._bound) >= _MAX_BOUND:
                del self._bound[next(iter(self._bound))]
            self._bound[id(array)] = (array, value)
        return array

    def _alias(self, array: np.ndarray):
        """The backend's value of `array`, made to share its memory; None where it cannot."""
        return None

    def _value(self, array: np.ndarray):
        """The value to pass for `array`: its bound one, else `_convert(array)`."""
        bound = self._bound.get(id(array))
        if bound is not None and bound[0] is array:
            return bound[1]
        return self._convert(array)

    def _convert(self, array: np.ndarray):
        """The backend's value of an array that has none bound."""
        return array

    def begin(self) -> None:
        """Called before a run of steps; reads the model's state if needed."""

    def end(self) -> None:
        """Called after a run of steps; writes the state back to the model."""

    def get_target(self) -> list[np.ndarray] | None:
        """The target network's weights and step counter, for checkpoints."""
        return None

    def set_target(self, values: list[np.ndarray] | None) -> None:
        """Restores what `get_target()` returned."""

    def copy_target(self) -> None:
        """Copies the online weights into the target network, between calls."""
        raise NotImplementedError

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Returns `Q(states)` as a NumPy array `(n, nb_actions)`."""
        raise NotImplementedError

    def step(self, frames: np.ndarray, floats: np.ndarray, count: int):
        """Runs `count` gradient steps; returns `(losses, q_act, td_errors)`.

        `losses` is `(max_steps,)`, `q_act` `(n_act, nb_actions)`, and
        `td_errors` `(max_steps * batch,)` with `prioritized`, else `None`.
        """
        floats[-1, 0] = count
        out = self._step(frames, floats)
        n = self.max_steps
        losses, rest = out[:n], out[n:]
        td = None
        if self.config.prioritized:
            size = n * self.batch_size
            td, rest = rest[:size], rest[size:]
        return losses, rest.reshape(-1, self.nb_actions), td

    def _step(self, frames: np.ndarray, floats: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _outputs_size(self) -> int:
        """How many values of a call's output come before the acting Q-values."""
        return self.max_steps * (1 + self.batch_size if self.config.prioritized else 1)

    def _acting_only(self, frames: np.ndarray) -> np.ndarray:
        """A call's output without gradient steps: the small graph of `q_values`."""
        n_act = len(frames) - self.max_steps * 2 * self.batch_size
        q = self.q_values(frames[len(frames) - n_act :])
        return np.concatenate([np.zeros(self._outputs_size(), np.float32), q.reshape(-1)])

    def _one_call_a_step(self, run, frames: np.ndarray, floats: np.ndarray, count: int):
        """`count` gradient steps as `count` calls of `run(frames, floats)`, the
        one-step graph, each on the slot that `floats[-1, 1]` names; returns
        what one call running them all would (the losses and TD errors of
        every slot, the Q-values after the last step)."""
        size = self._outputs_size()
        outs = []
        for slot in range(count):  # each call fills its slot's loss (and TD errors)
            floats[-1, 1] = slot
            outs.append(run(frames, floats))
        floats[-1, 1] = 0
        if count == 1:
            return outs[0]
        out = outs[-1].copy()  # the Q-values after the last step
        out[:size] = np.sum([o[:size] for o in outs], axis=0)
        return out

    def _call(self, functions: dict, key, make, *arrays):
        """`functions[key](*arrays)`, the function made by `make()` on its first use.

        A first call traces and compiles: its seconds add to `compile_seconds`.
        """
        function = functions.get(key)
        if function is not None:
            return function(*arrays)
        start = time.perf_counter()
        with self.compiling():
            function = functions[key] = make()
            out = function(*arrays)
        self.compile_seconds += time.perf_counter() - start
        return out


class _TensorFlowLearner(_Learner):
    def __init__(self, *args):
        super().__init__(*args)
        import tensorflow as tf

        self._tf = tf
        self._to_tensor = _eager_tensor_maker(tf)
        self._execute = _function_executor(tf)
        self._may_bind = not tf.config.list_logical_devices("GPU")
        self.one_call_a_step = self.jit and self._may_bind and _has_convolution(self.model)
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
        model = self.model
        online = model.trainable_variables + model.non_trainable_variables
        for target, variable in zip(self._target, online, strict=True):
            target.assign(self._tf.cast(variable.value, target.dtype))

    def _build_step(self, frames, floats, loop: bool):
        """Traces the step for arrays like `frames` and `floats`.

        With `loop`, a `tf.while_loop` runs the number of gradient steps the
        call asks for. Without, the step runs exactly one, straight, on the
        batch in the slot that `floats[-1, 1]` names. Both graphs call one
        traced gradient step (a nested `tf.function`, which TensorFlow inlines
        when it runs a graph): the second graph to be traced reuses it, which
        halves its first call (0.34 s down to 0.17 s with Adam here) and
        leaves the cost of a call unchanged.
        """
        tf, model, config = self._tf, self.model, self.config
        variables = model.trainable_variables
        optimizer = model.optimizer
        batch, max_steps, width = self.batch_size, self.max_steps, self.width
        state_shape = tuple(frames.shape[1:])
        nb_trainable = len(variables)
        online = variables + model.non_trainable_variables

        def q_next_of(next_states):
            if not self.uses_target:
                return model(next_states, training=False), None
            values = [v.read_value() for v in self._target]
            q_next, _ = model.stateless_call(
                values[:nb_trainable], values[nb_trainable:], next_states, training=False
            )
            q_online = model(next_states, training=False) if self.uses_online_next else None
            return q_next, q_online

        def blend(tau):
            for target, variable in zip(self._target, online, strict=True):
                share = tf.cast(tau, target.dtype)
                target.assign(share * tf.cast(variable.value, target.dtype) + (1 - share) * target)

        def copy():
            for target, variable in zip(self._target, online, strict=True):
                target.assign(tf.cast(variable.value, target.dtype))
            return tf.constant(True)

        def update_target():
            counter = self._counter.assign_add(1)
            mix = self._mix(counter)
            if isinstance(config.target_update, float):
                blend(mix)
            else:  # an exact copy every N steps, and nothing in between
                tf.cond(mix > 0, copy, lambda: tf.constant(False))

        def learn(both, batch_floats):
            both = tf.cast(both, self.dtype)  # only the rows of this step
            states, next_states = both[:batch], both[batch:]
            q_next, q_online = q_next_of(next_states)
            with tf.GradientTape() as tape:
                q = model(states, training=True)
                if self.distribution is not None:
                    loss, td = self._distribution_loss(q, q_next, q_online, batch_floats)
                else:
                    y = _targets(q, q_next, q_online, batch_floats, self.nb_actions, config.masked)
                    loss = model.compute_loss(
                        x=states, y=y, y_pred=q, sample_weight=batch_floats[:, 3], training=True
                    )
                    td = _td_errors(y, q)
            optimizer.apply(tape.gradient(loss, variables), variables)
            if self.updates_target:
                update_target()
            return loss, td

        key = (state_shape, frames.dtype)
        if key not in self._learn:
            self._learn[key] = tf.function(learn, autograph=False)
        learn = self._learn[key]

        def gradient_step(pairs, floats, i):
            # tf.gather, not pairs[i]: with XLA, a slice whose start comes
            # from the call's arguments is compiled anew for each value.
            return learn(tf.gather(pairs, i), tf.gather(floats, i))

        def step(frames, floats):
            count = tf.cast(floats[-1, 0], tf.int32)
            slot = tf.cast(floats[-1, 1], tf.int32)
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
        count = int(floats[-1, 0])
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


def _has_convolution(model: keras.Model) -> bool:
    """Whether any of the model's layers, nested ones included, is a convolution."""
    layers = keras.layers
    kinds = (
        layers.Conv1D, layers.Conv2D, layers.Conv3D,
        layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose,
        layers.DepthwiseConv1D, layers.DepthwiseConv2D,
        layers.SeparableConv1D, layers.SeparableConv2D,
    )  # fmt: skip
    return any(isinstance(layer, kinds) for layer in model._flatten_layers())


_NARROW = 32  # columns: see `_JaxLearner._narrow_apart`


def _narrow_kernels(model: keras.Model) -> frozenset[int]:
    """Positions among the model's trainable variables of its narrow kernels:
    the matrices `(k, m)` with `m <= _NARROW` and `k >= m`, a Q-network's output
    layer among them. Keeping their gradients apart (`_narrow_apart`) made
    the gradient of such a layer up to 6 times faster on the CPU here, and
    never more than 5% slower; with more columns it gained less, or lost
    at small batches (a 256 x 64 kernel, batch 32: 1.4 times slower)."""
    return frozenset(
        i
        for i, variable in enumerate(model.trainable_variables)
        if len(variable.shape) == 2 and variable.shape[0] >= variable.shape[1]
        and variable.shape[1] <= _NARROW
    )  # fmt: skip


@functools.cache
def _transposed_gradient(jax):
    """The identity whose gradient goes through an optimization barrier
    between its transposes (see `_JaxLearner._narrow_apart`)."""

    @jax.custom_vjp
    def apart(value):
        return value

    def backward(_, gradient):
        return (jax.lax.optimization_barrier(gradient.T).T,)

    apart.defvjp(lambda value: (value, None), backward)
    return apart


def _aligned_zeros(shape: tuple, dtype) -> np.ndarray:
    """`np.zeros(shape, dtype)` whose data starts at a multiple of `_ALIGN` bytes."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


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


class _JaxLearner(_Learner):
    def __init__(self, *args):
        super().__init__(*args)
        import jax

        self._jax = jax
        self._state = None
        # The step: `count` gradient steps in a loop; or one, straight, on a slot.
        self._jit_step = jax.jit(self._pure_step, donate_argnums=0)
        self._run_loop = functools.partial(self._run_step, self._jit_step)
        self._run_one = functools.partial(
            self._run_step, jax.jit(self._pure_one_step, donate_argnums=0)
        )
        cpu = jax.default_backend() == "cpu"
        self.one_call_a_step = cpu and _has_convolution(self.model)
        self._act = jax.jit(self._pure_act)
        # Trainable values whose gradients `_narrow_apart` computes apart (on the CPU).
        self._narrow = _narrow_kernels(self.model) if cpu else frozenset()
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
            [copy(v).astype(t.dtype) for v, t in zip(trainable, self._target[0], strict=True)],
            [copy(v).astype(t.dtype) for v, t in zip(non_trainable, self._target[1], strict=True)],
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
        model = self.model
        trainable, non_trainable, optimizer, target = self._state
        for variables, values in (
            (model.trainable_variables, trainable),
            (model.non_trainable_variables, non_trainable),
            (model.optimizer.variables, optimizer),
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
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

            def blend(weights):
                return [
                    (mix * v + (1 - mix) * t).astype(t.dtype) for t, v in zip(*weights, strict=True)
                ]

            def copy(weights):
                return [v.astype(t.dtype) for t, v in zip(*weights, strict=True)]

            weights = (target_trainable + target_non_trainable, trainable + non_trainable)
            if isinstance(config.target_update, float):
                updated = blend(weights)
            else:  # an exact copy every N steps, and nothing in between
                updated = jax.lax.cond(mix > 0, copy, lambda weights: list(weights[0]), weights)
            nb_trainable = len(target_trainable)
            target = (updated[:nb_trainable], updated[nb_trainable:], counter)
        return (trainable, non_trainable, optimizer_vars, target), loss, td

    def _narrow_apart(self, loss_fn):
        """`loss_fn` with the gradients of the narrow kernels (`_narrow_kernels`)
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
        count = floats[-1, 0].astype("int32")
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
        """One gradient step, straight, on the slot that `floats[-1, 1]` names."""
        jax = self._jax
        slot = floats[-1, 1].astype("int32")
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
        count = int(floats[-1, 0])
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


class _TorchLearner(_Learner):
    """PyTorch: each gradient step and each acting call runs as one traced graph.

    Keras runs a PyTorch model eagerly, layer by layer through its Python:
    a forward pass of the README model took about 1.5 ms here, and a step
    (three passes, the loss and the optimizer) about 5 ms, nearly all of it
    Python. So the learner records, once for each shape, the PyTorch
    operations that the step runs: `make_fx` traces the step as a pure
    function of the variables' values (`stateless_call`, the model's
    compiled loss through `stateless_compute_loss`, `torch.func` for the
    gradients, the optimizer's `stateless_apply`, which is Keras' fused
    `torch._foreach_*` update) on fake tensors, functionalized (every
    operation out of place), and the resulting FX graph, made TorchScript
    where it can be (see `_scripted`), is a plain sequence of PyTorch
    operations. It reads the variables' tensors themselves and returns
    their new values (weights, optimizer slots and counters,
    BatchNormalization statistics), which the learner copies into them.
    The operations are those of the eager step.

    Fake tensors have no values, so a step whose Python reads a tensor's
    value (a Keras random layer seeding its own generator from its seed
    state, a branch on a tensor) cannot be traced: such a model runs
    eagerly, as Keras runs it, with a warning. Unseeded random layers
    (Keras' `Dropout` without a seed) draw from PyTorch's global generator
    with operations that the graph records, drawn anew at each call;
    `qlearning4k.NoisyDense` draws its noise on PyTorch with tensor
    operations from its seed state (`noisy_dense._counter_normal`), which
    the graph records too, and with `noisy` the acting graph returns the
    moved-on states. With `jit_compile=True` the eager gradient step goes
    through `torch.compile`, as Keras' own `fit()` does.
    """

    def __init__(self, *args):
        super().__init__(*args)
        import torch

        self._torch = torch
        self._calls = {}  # what the step was called with
        # (kind, shape, dtype) -> the traced graph; None where it runs eagerly.
        self._graphs = {}
        self._tensors = None  # the variables' tensors that the graphs read, see _live()
        # With jit_compile, torch.compile compiles the eager gradient step.
        self._traces_learning = not self.jit
        self._traces_acting = True
        self._warned = False
        self._gradient_step = (
            torch.compile(self._eager_gradient_step) if self.jit else self._eager_gradient_step
        )
        self._target = None
        if self.uses_target:
            model = self.model
            with torch.no_grad():
                self._target = [
                    v.value.detach().clone()
                    for v in model.trainable_variables + model.non_trainable_variables
                ]
            self._counter = 0

    def begin(self):
        self._tensors = None  # read them again: a run may follow changes to the model

    def _live(self) -> tuple[list, list]:
        """The tensors of the model's variables, and of its optimizer's.

        Read once (and again at each `begin()`): Keras' PyTorch variables keep
        their tensor for life and assign values into it in place.
        """
        if self._tensors is None:
            model = self.model
            self._tensors = (
                [v.value for v in model.trainable_variables + model.non_trainable_variables],
                [v.value for v in model.optimizer.variables],
            )
        return self._tensors

    def get_target(self):
        if self._target is None:
            return None
        return [t.cpu().numpy().copy() for t in self._target] + [np.array(self._counter)]

    def set_target(self, values):
        if self._target is None or values is None:
            return
        with self._torch.no_grad():
            for tensor, value in zip(self._target, values[:-1], strict=True):
                tensor.copy_(self._tensor(value))
        self._counter = int(values[-1])

    def copy_target(self):
        model = self.model
        with self._torch.no_grad():
            online = model.trainable_variables + model.non_trainable_variables
            for tensor, variable in zip(self._target, online, strict=True):
                tensor.copy_(variable.value.to(tensor.dtype))

    def _tensor(self, array):
        from keras.src.backend.torch.core import get_device

        return self._torch.as_tensor(array, device=get_device())

    def _trace(self, function, args):
        """`function` traced on fake tensors like `args` into a graph (see
        `_scripted`); None (with a warning, once) where it cannot be traced."""
        from torch.fx.experimental.proxy_tensor import make_fx

        torch = self._torch
        try:
            pure = torch.func.functionalize(function)
            # Detached: the optimizer's in-place updates, traced, may not
            # touch a tensor that requires gradients.
            graph = make_fx(pure, tracing_mode="fake")(*[a.detach() for a in args])
        except Exception as error:  # whatever stops the tracer, the eager step runs
            if not self._warned:
                self._warned = True
                lines = str(error).strip().splitlines()
                reason = type(error).__name__ + (f": {lines[0][:200]}" if lines else "")
                warnings.warn(
                    "qlearning4k could not trace this model's PyTorch step into one "
                    f"graph ({reason}), so it runs eagerly through Keras, several times "
                    "slower. Layers that seed a generator of their own from a tensor "
                    "(a seeded Dropout) or branch on tensor values cannot be traced.",
                    stacklevel=2,
                )
            return None
        # Functionalized, the graph computes every new value out of place and
        # ends by copying those of the inputs it changed into them: the
        # learner copies every new value itself (see `_learn`), so the graph
        # is left without side effects, which TorchScript needs (it dropped
        # whole in-place `torch._foreach_*` updates here).
        for node in list(graph.graph.nodes):
            if (
                node.op == "call_function"
                and node.target is torch.ops.aten.copy_.default
                and node.args[0].op == "placeholder"
                and not node.users
            ):
                graph.graph.erase_node(node)
        graph.recompile()
        return _scripted(graph)

    def _graph(self, kind: str, function, args, batch: tuple):
        """The graph of `kind` for `args` (which end with the tensors `batch`),
        traced on the first use of the batch's shapes."""
        key = (kind,) + tuple((tuple(a.shape), a.dtype) for a in batch)
        if key not in self._graphs:
            self._graphs[key] = self._trace(function, args)
        return self._graphs[key]

    def _pure_learn(self, *flat):
        """One gradient step as a pure function of flat tensors: the model's
        and the optimizer's values, the target network's, then the batch.
        Returns the new values in the same order, then the loss and TD errors."""
        torch, model = self._torch, self.model
        nb_trainable = len(model.trainable_variables)
        nb_model = nb_trainable + len(model.non_trainable_variables)
        nb_optimizer = len(model.optimizer.variables)
        states, next_states, floats = flat[-3:]
        trainable, non_trainable = list(flat[:nb_trainable]), list(flat[nb_trainable:nb_model])
        optimizer_values = list(flat[nb_model : nb_model + nb_optimizer])
        target = list(flat[nb_model + nb_optimizer : -3])
        target = (target[:nb_trainable], target[nb_trainable:])
        loss_fn = self._loss_function(trainable, non_trainable, target, states, next_states, floats)
        grads, (loss, (non_trainable, td)) = torch.func.grad_and_value(loss_fn, has_aux=True)(
            trainable
        )
        trainable, optimizer_values = model.optimizer.stateless_apply(
            optimizer_values, grads, trainable
        )
        return (*trainable, *non_trainable, *optimizer_values, loss, td)

    def _pure_act(self, *flat):
        """The acting Q-values as a pure function of the model's values and the
        states; with `noisy`, then the non-trainable values after the call (its
        noise layers' generators moved on)."""
        model = self.model
        nb_trainable = len(model.trainable_variables)
        trainable, non_trainable = list(flat[:nb_trainable]), list(flat[nb_trainable:-1])
        noisy = self.config.noisy
        outputs, non_trainable = model.stateless_call(
            trainable, non_trainable, flat[-1], training=noisy
        )
        q = self._action_values(outputs)
        return (q, *non_trainable) if noisy else q

    def _learn(self, states, next_states, floats):
        """One gradient step: `(loss, td_errors)`, traced where it can be."""
        graph = None
        if self._traces_learning:
            model_values, optimizer_values = self._live()
            live = model_values + optimizer_values
            batch = (states, next_states, floats)
            args = [*live, *(self._target or ()), *batch]
            graph = self._graph("learn", self._pure_learn, args, batch)
        if graph is None:
            return self._gradient_step(states, next_states, floats)
        with self._running():
            outs = graph(*args)
            # The new values into the variables, in one call (a copy_ each
            # cost about 7 µs here).
            pairs = [(t, v) for t, v in zip(live, outs, strict=False) if v is not t]
            self._torch._foreach_copy_([t for t, _ in pairs], [v for _, v in pairs])
        return outs[-2], outs[-1]

    def _running(self):
        """The context graphs run in: no autograd (inference mode), and
        TorchScript's plain executor, which runs the graph as it is, the same
        at every call, without profiling runs and optimization passes."""
        torch = self._torch
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(torch.jit.optimized_execution(False))
        return stack

    def _act(self, states):
        """The Q-values `(n, nb_actions)` of a tensor of states, traced where it can be."""
        model_values = self._live()[0]
        args = [*model_values, states]
        graph = None
        if self._traces_acting:
            graph = self._graph("act", self._pure_act, args, (states,))
        if graph is None:
            with self._torch.no_grad():
                return self._action_values(self.model(states, training=self.config.noisy))
        with self._running():
            out = graph(*args)
            if not self.config.noisy:
                return out
            q, *non_trainable = out
            # The noise generators' states after the call, into their variables.
            nb_trainable = len(model_values) - len(non_trainable)
            self._torch._foreach_copy_(model_values[nb_trainable:], non_trainable)
        return q

    def _eager_gradient_step(self, states, next_states, floats):
        torch, model = self._torch, self.model
        nb_trainable = len(model.trainable_variables)
        with torch.no_grad():
            if self.uses_target:
                q_next, _ = model.stateless_call(
                    self._target[:nb_trainable], self._target[nb_trainable:], next_states
                )
            else:
                q_next = model(next_states, training=False)
            q_online = model(next_states, training=False) if self.uses_online_next else None
        q = model(states, training=True)
        if self.distribution is not None:
            loss, td = self._distribution_loss(q, q_next, q_online, floats)
        else:
            y = _targets(q, q_next, q_online, floats, self.nb_actions, self.config.masked)
            loss = model.compute_loss(
                x=states, y=y, y_pred=q, sample_weight=floats[:, 3], training=True
            )
            td = _td_errors(y, q)
        model.zero_grad()
        loss.backward()
        variables = model.trainable_variables
        with torch.no_grad():
            model.optimizer.apply([v.value.grad for v in variables], variables)
        return loss.detach(), td.detach()

    def _update_target(self):
        self._counter += 1
        mix = float(self._mix(self._counter))
        if mix == 0.0:
            return
        model = self.model
        with self._torch.no_grad():
            online = model.trainable_variables + model.non_trainable_variables
            for tensor, variable in zip(self._target, online, strict=True):
                value = variable.value.to(tensor.dtype)
                # Integer state (noise generators' seeds) is copied, not mixed.
                if mix == 1.0 or not tensor.is_floating_point():
                    tensor.copy_(value)
                else:
                    tensor.mul_(1 - mix).add_(value, alpha=mix)

    def _step(self, frames, floats):
        # The first call of each kind traces its graphs (or runs
        # torch.compile's compiling): compile_seconds count it.
        key = (frames.shape, frames.dtype, floats[-1, 0] > 0)
        return self._call(self._calls, key, lambda: self._run_step, frames, floats)

    def _run_step(self, frames, floats):
        torch, batch = self._torch, self.batch_size
        count = int(floats[-1, 0])
        x = self._tensor(frames).to(getattr(torch, self.dtype))
        floats = self._tensor(floats)
        losses = np.zeros(self.max_steps, dtype=np.float32)
        errors = np.zeros(self.max_steps * batch if self.config.prioritized else 0, np.float32)
        for i in range(count):
            start = i * 2 * batch
            loss, td = self._learn(
                x[start : start + batch],
                x[start + batch : start + 2 * batch],
                floats[i * batch : (i + 1) * batch],
            )
            if self.updates_target:
                self._update_target()
            losses[i] = float(loss)
            if self.config.prioritized:
                errors[i * batch : (i + 1) * batch] = td.cpu().numpy()
        q = self._act(x[self.max_steps * 2 * batch :])
        return np.concatenate([losses, errors, q.cpu().numpy().reshape(-1)])

    def q_values(self, states):
        x = self._tensor(states).to(getattr(self._torch, self.dtype))
        key = ("act", states.shape, states.dtype)
        return self._call(self._calls, key, lambda: self._act, x).cpu().numpy()


def _scripted(graph):
    """An FX graph of PyTorch operations as TorchScript, or the graph itself.

    Run as an FX graph, each operation costs a few microseconds of Python
    (its line of the graph's generated code, the operator's `__call__`,
    parsing its arguments) on top of its C++; TorchScript runs the same
    operations one after the other in C++: the throughput benchmark ran at
    1,124 env steps a second against 747 with FX graphs here. TorchScript
    wants each operator by name (`aten::mm`), choosing the overload from the
    arguments, so the script is made from a copy whose operators are named
    that way; the graph must have no side effects (see `_trace`).
    `torch.jit.script` is deprecated (it warns, here silenced): where it
    fails or is gone, the FX graph runs, slower and with the same results.
    """
    import torch

    named = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))
    for node in named.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            node.target = node.target.overloadpacket
    named.recompile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(named)
    except Exception:  # any failure leaves the FX graph, which runs as well
        return graph


def _dispatch_jax_inline() -> None:
    """Makes JAX run CPU computations on the calling thread, if it is not too late.

    By default JAX hands each CPU computation to a worker thread and the
    caller then waits for its result. A Q-learning step is so small that
    the two thread switches cost more than the step: the README model's
    call took 154 to 258 µs inline against 259 to 425 µs handed over here
    (one gradient step of batch 32, SGD), and the README example trained
    in 3.1 to 3.9 s instead of 4.2 to 5.0 s. The setting only matters when
    JAX creates its CPU client, at its first computation, so it is made when
    qlearning4k is imported, on the JAX backend, and only if JAX has not
    computed anything yet. Results are the same either way.
    `jax.config.update("jax_cpu_enable_async_dispatch", True)` after the
    import (and before any computation) gives JAX its default back.
    """
    if keras.backend.backend() != "jax":
        return
    try:
        import jax
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return  # too late: the client keeps the mode it started with
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except (ImportError, AttributeError):  # a JAX without these: its default stays
        pass


def _make_learner(model: keras.Model, config: _StepConfig) -> _Learner:
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
    return learners[backend](model, config)


_dispatch_jax_inline()
