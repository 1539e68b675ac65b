"""`TorchLearner`: the compiled steps as traced PyTorch graphs (TorchScript where it can)."""

from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import torch

from qlearning4k._learner.batch import _COUNT
from qlearning4k._learner.learner import Learner
from qlearning4k._learner.rules import updated_target


class TorchLearner(Learner):
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
        self._assign_target()

    def _assign_target(self, tau=None):
        """One update of the target network's tensors (`rules.updated_target`), in place."""
        model = self.model
        online = [v.value for v in model.trainable_variables + model.non_trainable_variables]
        with self._torch.no_grad():
            values = updated_target(self._target, online, tau)
            self._torch._foreach_copy_(self._target, values)

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

        def compute_loss(y, weights):
            return model.compute_loss(x=states, y=y, y_pred=q, sample_weight=weights, training=True)

        loss, td = self._q_loss(q, q_next, q_online, self._rows(floats), compute_loss)
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
        self._assign_target(mix if isinstance(self.config.target_update, float) else None)

    def _step(self, frames, floats):
        # The first call of each kind traces its graphs (or runs
        # torch.compile's compiling): compile_seconds count it.
        key = (frames.shape, frames.dtype, floats[-1, _COUNT] > 0)
        return self._call(self._calls, key, lambda: self._run_step, frames, floats)

    def _run_step(self, frames, floats):
        torch, batch = self._torch, self.batch_size
        count = int(floats[-1, _COUNT])
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
    named = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))
    for node in named.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            if node.target is torch.ops.aten.view.dtype:  # by name: a dtype passes for a size
                node.kwargs = {**node.kwargs, "dtype": node.args[1]}
                node.args = node.args[:1]
            node.target = node.target.overloadpacket
    named.recompile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(named)
    except Exception:  # any failure leaves the FX graph, which runs as well
        return graph
