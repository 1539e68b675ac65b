"""The rules of Q-learning, written once for every backend (in `keras.ops`).

The TD target with its choice of the next action (Double DQN, masks), the
TD errors that prioritized replay takes, and the target network's update:
each backend's step calls these on its own tensors.
"""

from __future__ import annotations

import keras

from qlearning4k._learner.batch import Rows


def next_choice(q_next, q_next_online, next_mask, nb_actions: int):
    """The next state's action each target bootstraps from, and whether it has any.

    Returns `(one_hot, possible)`: `one_hot` `(batch, nb_actions)` marks the
    greedy action of `q_next` (of `q_next_online` with Double DQN) among the
    ones `next_mask` allows; `possible` `(batch,)` bool is `None` without a
    mask.
    """
    ops = keras.ops
    chooser = q_next if q_next_online is None else q_next_online
    possible = None
    if next_mask is not None:
        allowed = next_mask > 0.5
        chooser = ops.where(allowed, chooser, float("-inf"))
        possible = ops.any(allowed, axis=1)
    chosen = ops.argmax(chooser, axis=1)
    return one_hot(chosen, nb_actions, q_next.dtype), possible


def one_hot(indices, n: int, dtype):
    """`(batch, n)` rows that are 1 at `indices`, 0 elsewhere, in `dtype`.

    Built by comparison rather than `keras.ops.one_hot`, whose PyTorch
    version checks the indices' range on their values, which a traced
    PyTorch graph cannot do (see `TorchLearner`).
    """
    ops = keras.ops
    return ops.cast(ops.equal(indices[:, None], ops.arange(n, dtype=indices.dtype)), dtype)


def td_targets(q, q_next, q_next_online, rows: Rows, nb_actions: int):
    """TD targets at the taken actions, `q` itself elsewhere: `(batch, nb_actions)`.

    `q_next` evaluates the next states (the target network's Q when there is
    one); `q_next_online`, when given (Double DQN), picks the action it
    evaluates. With masks, only the next state's possible actions count.
    """
    ops = keras.ops
    actions = ops.cast(rows.actions, "int32")
    rewards, discount = rows.rewards, rows.discounts
    if q_next_online is None and rows.next_mask is None:  # plain DQN: the largest Q(S')
        best_next = ops.max(q_next, axis=1)  # (batch,)
    else:
        best_next = _chosen_value(q_next, q_next_online, rows.next_mask, nb_actions)
    td = rewards + discount * ops.cast(best_next, rewards.dtype)  # (batch,)
    return _at_taken(q, one_hot(actions, nb_actions, q.dtype), td)


def _chosen_value(q_next, q_next_online, next_mask, nb_actions: int):
    """`q_next` at `next_choice`'s action `(batch,)`; 0 where no action is possible
    (a next state with no possible action has no future)."""
    ops = keras.ops
    chosen, possible = next_choice(q_next, q_next_online, next_mask, nb_actions)
    value = ops.sum(q_next * chosen, axis=1)  # (batch,)
    return value if possible is None else ops.where(possible, value, 0.0)


def _at_taken(q, taken, td):
    """The targets: `td` `(batch,)` where `taken` `(batch, nb_outputs)` is 1, `q` elsewhere."""
    ops = keras.ops
    return ops.stop_gradient(q * (1.0 - taken) + taken * ops.cast(td, q.dtype)[:, None])


def branch_targets(q, q_next, q_next_online, rows: Rows, parts: tuple):
    """The TD targets of a branching Q-network (Tavakoli et al., 2018), `(batch, nb_outputs)`.

    The outputs are the Q-values of each action part (branch) in turn,
    `parts[d]` of them for branch `d`. Each branch picks its next action
    on its own (by `q_next_online` with Double DQN, among the part's
    possible ones with masks) and `q_next` evaluates it; the target shared
    by every branch bootstraps from the mean of these values over the
    branches, `r + discount * mean_d Q_d(S', a'_d)`. It replaces `q` at each
    branch's taken action, `rows.actions` `(batch, nb_parts)`; elsewhere the
    target is `q` itself.
    """
    ops = keras.ops
    actions = ops.cast(rows.actions, "int32")
    values, taken, start = [], [], 0
    for d, n in enumerate(parts):
        part = slice(start, start + n)
        online = None if q_next_online is None else q_next_online[:, part]
        mask = None if rows.next_mask is None else rows.next_mask[:, part]
        values.append(_chosen_value(q_next[:, part], online, mask, n))
        taken.append(one_hot(actions[:, d], n, q.dtype))
        start += n
    best_next = ops.mean(ops.stack(values, axis=1), axis=1)  # (batch,)
    td = rows.rewards + rows.discounts * ops.cast(best_next, rows.rewards.dtype)  # (batch,)
    return _at_taken(q, ops.concatenate(taken, axis=1), td)


def td_errors(y, q, branched: bool = False):
    """`y - q` at the taken action (they agree elsewhere): `(batch,)` float32.

    With `branched` (several action parts), the sum over the branches of
    each one's absolute error, the priority that Tavakoli et al. give a
    transition.
    """
    ops = keras.ops
    error = ops.abs(y - q) if branched else y - q
    return ops.cast(ops.sum(error, axis=1), "float32")


def updated_target(target: list, online: list, tau=None) -> list:
    """The target network's values after one update, from the online values.

    `tau` `None` copies every value (a hard update). A float `tau` (a soft
    update) moves each floating-point value `tau` of the way towards the
    online one, `tau * online + (1 - tau) * target` in the value's dtype;
    integer values (the seed states of `qlearning4k.NoisyDense`) are copied,
    since a share of a generator's state is no state. One rule for every
    backend: each stores the values as it keeps its target network.
    """
    ops, backend = keras.ops, keras.backend
    values = []
    for t, v in zip(target, online, strict=True):
        v = ops.cast(v, t.dtype)
        if tau is None or not backend.is_float_dtype(backend.standardize_dtype(t.dtype)):
            values.append(v)
        else:
            share = ops.cast(tau, t.dtype)
            values.append(share * v + (1 - share) * t)
    return values


def has_convolution(model: keras.Model) -> bool:
    """Whether any of the model's layers, nested ones included, is a convolution."""
    layers = keras.layers
    kinds = (
        layers.Conv1D, layers.Conv2D, layers.Conv3D,
        layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose,
        layers.DepthwiseConv1D, layers.DepthwiseConv2D,
        layers.SeparableConv1D, layers.SeparableConv2D,
    )  # fmt: skip
    return any(isinstance(layer, kinds) for layer in model._flatten_layers())


_NARROW = 32  # columns: see `JaxLearner._narrow_apart`


def narrow_kernels(model: keras.Model) -> frozenset[int]:
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
