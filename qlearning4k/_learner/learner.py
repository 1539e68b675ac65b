"""`Learner`: the compiled steps of one model, what the three backends share.

Each backend's learner (`tensorflow.py`, `jax.py`, `torch.py`, the same shape
in each) compiles one call that runs `count` gradient steps in a row (each on
its own sampled batch, with the model's own compiled loss and optimizer) and
then returns the Q-values of the states the agent acts on next, under the
updated weights. `count` may be 0 (acting only). Every option of
`StepConfig` (target network, Double DQN, action masks, prioritized replay,
a distribution) lives inside that same call. The call's arrays are a
`CallBuffers` (see `batch.py`); the rules of the step are `rules.py`'s.
"""

from __future__ import annotations

import contextlib
import functools
import time

import keras
import numpy as np

from qlearning4k._learner.batch import _COUNT, _SLOT, CallBuffers, Rows, columns, read_rows
from qlearning4k._learner.config import StepConfig
from qlearning4k._learner.rules import branch_targets, td_errors, td_targets

_ALIGN = 64  # bytes: TensorFlow wraps a NumPy array aligned this way without copying it
_MAX_BOUND = 16  # TensorFlow: arrays bound to a tensor, the oldest dropped beyond this


class Learner:
    """The compiled steps of one model and `StepConfig`: what every backend shares."""

    def __init__(self, model: keras.Model, config: StepConfig):
        self.model = model
        self.config = config
        self.batch_size = config.batch_size
        self.max_steps = config.max_steps
        self.distribution = config.distribution
        atoms = 1 if self.distribution is None else self.distribution.nb_atoms
        self.nb_actions = int(model.outputs[0].shape[-1]) // atoms
        self.parts = config.action_parts  # None: one action part
        self.nb_parts = None if self.parts is None else len(self.parts)
        self.width = columns(self.nb_actions, config.masked, self.nb_parts)
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

    def _rows(self, floats) -> Rows:
        """The named columns of one gradient step's rows of a call's `floats`."""
        return read_rows(floats, self.nb_actions, self.config.masked, self.nb_parts)

    def _distribution_loss(self, outputs, next_outputs, next_online, rows: Rows):
        """A distributional step's loss (the weighted mean, as Keras' losses reduce)
        and each transition's loss, which prioritized replay takes as its TD error."""
        ops = keras.ops
        losses = self.distribution._losses(
            outputs, next_outputs, next_online, rows, self.nb_actions
        )
        return ops.mean(losses * ops.cast(rows.weights, losses.dtype)), ops.cast(losses, "float32")

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
        metrics = [v.value for v in model.metrics_variables]

        def compute_loss(y, weights):
            loss, _ = model.stateless_compute_loss(
                trainable, non_trainable, metrics, x=states, y=y, y_pred=q,
                sample_weight=weights, training=True,
            )  # fmt: skip
            return loss

        loss, td = self._q_loss(q, q_next, q_online, self._rows(floats), compute_loss)
        return loss, (non_trainable, td)

    def _q_loss(self, q, q_next, q_online, rows: Rows, compute_loss):
        """One gradient step's loss and TD errors `(batch,)` from the model's outputs.

        A distribution's loss, or the model's compiled loss (`compute_loss(y,
        weights)`, on each backend's way of calling it) on the TD targets.
        With several action parts, the targets are the branches' and the
        weights grow by `nb_actions / nb_parts`: a loss that averages over
        the outputs (`"mse"`, Huber) then averages the branches' losses, as
        Tavakoli et al. do (the other outputs' errors are 0).
        """
        if self.distribution is not None:
            return self._distribution_loss(q, q_next, q_online, rows)
        if self.parts is not None:
            y = branch_targets(q, q_next, q_online, rows, self.parts)
            weights = rows.weights * (self.nb_actions / self.nb_parts)
            return compute_loss(y, weights), td_errors(y, q, branched=True)
        y = td_targets(q, q_next, q_online, rows, self.nb_actions)
        return compute_loss(y, rows.weights), td_errors(y, q)

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

    def _assign(self, trainable, non_trainable, optimizer) -> None:
        """Writes values held outside the model (a pure step's) into its variables."""
        model = self.model
        for variables, values in (
            (model.trainable_variables, trainable),
            (model.non_trainable_variables, non_trainable),
            (model.optimizer.variables, optimizer),
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

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

    def call_buffers(self, nb_act: int, state_shape: tuple, dtype) -> CallBuffers:
        """The arrays of this learner's calls, with room for `nb_act` states to act on."""
        return CallBuffers(
            self.buffer, self.max_steps, self.batch_size, nb_act, tuple(state_shape), dtype,
            self.nb_actions, self.config.masked, self.nb_parts,
        )  # fmt: skip

    def step(self, buffers: CallBuffers, count: int):
        """Runs the first `count` batches of `buffers`; returns `(losses, q_act, td_errors)`.

        `losses` is `(max_steps,)`, `q_act` `(n_act, nb_actions)` (of
        `buffers.acting`, after the steps), and `td_errors`
        `(max_steps * batch,)` with `prioritized`, else `None`.
        """
        frames, floats = buffers.frames, buffers.floats
        floats[-1, _COUNT] = count
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
        one-step graph, each on the slot that `floats[-1, _SLOT]` names; returns
        what one call running them all would (the losses and TD errors of
        every slot, the Q-values after the last step)."""
        size = self._outputs_size()
        outs = []
        for slot in range(count):  # each call fills its slot's loss (and TD errors)
            floats[-1, _SLOT] = slot
            outs.append(run(frames, floats))
        floats[-1, _SLOT] = 0
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


def _aligned_zeros(shape: tuple, dtype) -> np.ndarray:
    """`np.zeros(shape, dtype)` whose data starts at a multiple of `_ALIGN` bytes."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)
