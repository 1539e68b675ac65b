"""`branching`: turns a Keras model body into an action-branching Q-network (BDQ)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from qlearning4k._checks import _check_positive_int
from qlearning4k.noisy_dense import NoisyDense


@keras.saving.register_keras_serializable(package="qlearning4k")
class _BranchingMerge(keras.layers.Layer):
    """`V + A_d - mean(A_d)` for each branch `d`: one value `(batch, 1)` and the
    branches' advantages `(batch, n_d)`, concatenated to `(batch, sum(n_d))`.

    `nb_actions` (the counts of the branches) is how an `Agent` knows the
    model's action parts.
    """

    def __init__(self, nb_actions: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.nb_actions = tuple(int(n) for n in nb_actions)

    def call(self, inputs):
        value, *advantages = inputs
        ops = keras.ops
        q = [value + a - ops.mean(a, axis=-1, keepdims=True) for a in advantages]
        return ops.concatenate(q, axis=-1)

    def get_config(self):
        return {**super().get_config(), "nb_actions": list(self.nb_actions)}

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], sum(self.nb_actions))


def branching(
    body: keras.Model,
    nb_actions: Sequence[int],
    units: int | None = 128,
    noisy: bool = False,
) -> keras.Model:
    """Turns a model body into an action-branching Q-network (Tavakoli et al., 2018).

    For games whose action has several parts (a `MultiDiscrete` space: one
    joint each, steer and throttle), a flat Q-network needs one output per
    combination, `prod(nb_actions)` of them. Branching Dueling Q-Networks
    (BDQ) grow with the sum instead: the body's output (flattened if it has
    more than one feature axis) feeds one state-value stream `V(s)` and one
    advantage stream `A_d(s, a_d)` per part ("branch"), and each branch's
    Q-values are `Q_d = V + A_d - mean(A_d)`. The model outputs the
    branches' Q-values one after another, `(batch, sum(nb_actions))`.

    An `Agent` given this model reads its branches from it: it plays one
    action index per part (greedy per branch, or each part random when
    exploring), and learns as BDQ does, each branch towards the target
    `r + gamma * mean_d Q_d(s', a'_d)` (with Double DQN each branch picks
    its `a'_d` with the online network, the target network evaluates it),
    its loss the mean of the branches'. Target networks, n-step returns,
    prioritized replay (a transition's priority: the sum of its branches'
    absolute TD errors), action masks per part and noisy layers work as
    for other models; `C51` and `QuantileRegression` do not.

    Args:
        body: A `keras.Model` built on `keras.Input` (a `Sequential` starting
            with one, or a functional model, of one input or several),
            mapping states to features. Its layers are shared, not copied.
        nb_actions: The number of actions of each part, e.g. `(25, 25, 25,
            25)` for four joints of 25 bins: the game's `nb_actions`.
        units: Width of a hidden `Dense` layer (ReLU) at the start of each
            stream, as in BDQ, or `None` for none. Defaults to 128.
        noisy: Build the streams' layers as `qlearning4k.NoisyDense` layers
            (exploration by noisy networks). Defaults to `False`.

    Returns:
        An uncompiled `keras.Model`: `(batch,) + input_shape -> (batch, sum(nb_actions))`.

    Raises:
        TypeError: If `body` is not a Keras model, a count is not an int or
            `noisy` not a bool.
        ValueError: If `body` has no known output, or several, or
            `nb_actions` has fewer than one part.

    Example:

    ```python
    body = keras.Sequential([
        keras.Input((1, 24)),
        keras.layers.Flatten(),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
    ])
    model = qlearning4k.branching(body, nb_actions=(25, 25, 25, 25))
    model.compile(keras.optimizers.Adam(1e-4), "mse")
    agent = Agent(model)  # for a game whose nb_actions is (25, 25, 25, 25)
    ```
    """
    if not isinstance(body, keras.Model):
        raise TypeError(
            f"branching() expects a keras.Model body. Received: {body!r} "
            f"(of type {type(body).__name__})"
        )
    if isinstance(nb_actions, (int, str)) or not isinstance(nb_actions, Sequence):
        raise TypeError(
            "branching() expects nb_actions as a sequence of ints, one per action part. "
            f"Received: nb_actions={nb_actions!r}"
        )
    if len(nb_actions) < 1:
        raise ValueError(
            f"branching() expects at least one action part. Received: nb_actions={nb_actions!r}"
        )
    counts = tuple(_check_positive_int("nb_actions", n) for n in nb_actions)
    if units is not None:
        units = _check_positive_int("units", units)
    if not isinstance(noisy, bool):
        raise TypeError(f"noisy must be a bool. Received: noisy={noisy!r}")
    dense = NoisyDense if noisy else keras.layers.Dense
    try:
        outputs = body.outputs
    except AttributeError:
        outputs = None
    if not body.inputs or not outputs or len(outputs) != 1:
        raise ValueError(
            "branching() expects a body with one known output, built from keras.Input. "
            f"Received: {body.name!r}"
        )
    features = outputs[0]
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name="branching_flatten")(features)
    streams = []
    for name, width in [("value", 1)] + [(f"branch_{d}", n) for d, n in enumerate(counts)]:
        x = features
        if units is not None:
            x = dense(units, activation="relu", name=f"{name}_hidden")(x)
        streams.append(dense(width, name=name)(x))
    q = _BranchingMerge(counts, name="q_values")(streams)
    inputs = body.inputs[0] if len(body.inputs) == 1 else body.inputs
    return keras.Model(inputs, q, name=f"branching_{body.name}")


def _action_parts(model: keras.Model) -> tuple[int, ...] | None:
    """The action parts of a branching model (its merge layer's counts), else `None`."""
    merges = [layer for layer in model._flatten_layers() if isinstance(layer, _BranchingMerge)]
    return merges[0].nb_actions if len(merges) == 1 else None
