"""`dueling`: turns a Keras model body into a dueling Q-network."""

from __future__ import annotations

import keras

from qlearning4k._checks import _check_positive_int
from qlearning4k.noisy_dense import NoisyDense


@keras.saving.register_keras_serializable(package="qlearning4k")
class _DuelingMerge(keras.layers.Layer):
    """`V + A - mean(A)`: one value `(batch, 1)` and advantages `(batch, nb_actions)`.

    With `nb_atoms > 1`, atom by atom: values `(batch, nb_atoms)` and
    advantages `(batch, nb_actions * nb_atoms)`, action by action.
    """

    def __init__(self, nb_atoms: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.nb_atoms = nb_atoms

    def call(self, inputs):
        value, advantage = inputs
        ops, n = keras.ops, self.nb_atoms
        if n == 1:
            return value + advantage - ops.mean(advantage, axis=-1, keepdims=True)
        advantage = ops.reshape(advantage, (-1, advantage.shape[-1] // n, n))
        merged = value[:, None, :] + advantage - ops.mean(advantage, axis=1, keepdims=True)
        return ops.reshape(merged, (-1, merged.shape[1] * n))

    def get_config(self):
        return {**super().get_config(), "nb_atoms": self.nb_atoms}

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]


def dueling(
    body: keras.Model,
    nb_actions: int,
    units: int | None = None,
    nb_atoms: int = 1,
    noisy: bool = False,
) -> keras.Model:
    """Turns a model body into a dueling Q-network (Wang et al., 2016).

    The body's output (flattened if it has more than one feature axis) feeds
    two streams: a state value `V(s)` (one unit) and action advantages
    `A(s, a)` (`nb_actions` units), combined as `Q = V + A - mean(A)`. The
    result is a plain functional `keras.Model` with the body's input:
    compile it and give it to an `Agent` like any other Q-model. It saves
    and loads as `.keras` (the merge layer is registered with Keras).

    Args:
        body: A `keras.Model` built on a `keras.Input` (a `Sequential`
            starting with one, or a functional model), mapping states to
            features. Its layers are shared, not copied.
        nb_actions: Number of actions, the width of the advantage stream.
        units: Width of a hidden `Dense` layer (ReLU) at the start of each
            stream, or `None` for none. Defaults to `None`.
        nb_atoms: Outputs per action, for a distributional agent (the
            option's `nb_atoms`, see `qlearning4k.distributional`): the value
            stream then has `nb_atoms` units, the advantage stream
            `nb_actions * nb_atoms`, combined atom by atom. Defaults to 1.
        noisy: Build the streams' layers (hidden and output) as
            `qlearning4k.NoisyDense` layers, as Rainbow does, for exploration
            by noisy networks; their seeds come from Keras' global seeding
            (`keras.utils.set_random_seed`). The body may hold `NoisyDense`
            layers of its own either way. Defaults to `False`.

    Returns:
        An uncompiled `keras.Model`: `(batch,) + input_shape -> (batch, nb_actions)`,
        or `(batch, nb_actions * nb_atoms)`.

    Raises:
        TypeError: If `body` is not a Keras model, a size is not an int or
            `noisy` is not a bool.
        ValueError: If `body` has no known input or output, or several.

    Example:

    ```python
    body = keras.Sequential([
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
    ])
    model = qlearning4k.dueling(body, nb_actions=3)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Huber())
    agent = Agent(model)
    ```
    """
    if not isinstance(body, keras.Model):
        raise TypeError(
            f"dueling() expects a keras.Model body. Received: {body!r} "
            f"(of type {type(body).__name__})"
        )
    nb_actions = _check_positive_int("nb_actions", nb_actions)
    if units is not None:
        units = _check_positive_int("units", units)
    nb_atoms = _check_positive_int("nb_atoms", nb_atoms)
    if not isinstance(noisy, bool):
        raise TypeError(f"noisy must be a bool. Received: noisy={noisy!r}")
    dense = NoisyDense if noisy else keras.layers.Dense
    try:
        inputs, outputs = body.inputs, body.outputs
    except AttributeError:
        inputs = outputs = None
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "dueling() expects a body with one known input and one output, built from "
            f"keras.Input. Received: {body.name!r}"
        )
    features = body.outputs[0]
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name="dueling_flatten")(features)
    q = _dueling_head(features, nb_actions, units, nb_atoms, dense)
    # The input itself, not a list of one: the model is then called with a plain tensor.
    return keras.Model(body.inputs[0], q, name=f"dueling_{body.name}")


def _dueling_head(features, nb_actions: int, units, nb_atoms: int = 1, dense=keras.layers.Dense):
    """The value and advantage streams on `features` (their last axis), merged into Q-values."""
    streams = []
    for name, width in (("value", nb_atoms), ("advantage", nb_actions * nb_atoms)):
        x = features
        if units is not None:
            x = dense(units, activation="relu", name=f"{name}_hidden")(x)
        streams.append(dense(width, name=name)(x))
    return _DuelingMerge(nb_atoms, name="q_values")(streams)
