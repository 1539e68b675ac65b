"""A trained agent's policy as one Keras model, exported to run without Python's libraries.

`policy_model` puts the agent's model behind the greedy choice: inputs the
model's own (a state `(batch, nb_frames) + frame_shape`, named `state`, or
one named input per part), and optionally a `mask` of the possible actions;
outputs the greedy `action` and the `q_values` (the distribution's mean for
C51 and QR-DQN; noisy layers without noise, as at inference). Keras'
`Model.export` then writes it in the formats the backend offers
(`export_policy`), and the artifact runs in `onnxruntime`, TensorFlow or
LiteRT alone.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from qlearning4k._frame_parts import frame_parts
from qlearning4k.recurrent import _recurrent_signature

# The formats of `keras.Model.export` a policy is written to, by backend, and
# what each artifact's path must end with.
FORMATS = {
    "tensorflow": ("onnx", "tf_saved_model", "litert"),
    "jax": ("onnx", "tf_saved_model"),
    "torch": ("onnx",),
}
_ENDINGS = {"onnx": ".onnx", "litert": ".tflite"}
_LOWEST = float(np.finfo(np.float32).min)  # the score of an action the mask rules out


class _Greedy(keras.layers.Layer):
    """The Q-values of a model's outputs and their greedy action among the allowed ones.

    Args:
        nb_actions: The model's actions, or for a branching model each part's count.
        distribution: The agent's C51 or QuantileRegression (Q-values are its
            means), or `None` for a model of Q-values.
    """

    def __init__(self, nb_actions: int | tuple[int, ...], distribution=None, **kwargs):
        super().__init__(**kwargs)
        self.nb_actions = nb_actions
        self.distribution = distribution

    def call(self, outputs, allowed=None):
        ops = keras.ops
        parts = self.nb_actions if isinstance(self.nb_actions, tuple) else (self.nb_actions,)
        q = outputs
        if self.distribution is not None:
            q = self.distribution._q_values(outputs, self.nb_actions)
        scored = q if allowed is None else ops.where(allowed, q, ops.full_like(q, _LOWEST))
        actions, start = [], 0
        for n in parts:
            actions.append(_argmax(scored[:, start : start + n], n))
            start += n
        action = ops.stack(actions, axis=-1) if isinstance(self.nb_actions, tuple) else actions[0]
        return action, q

    def compute_output_shape(self, outputs_shape, allowed_shape=None):
        width = sum(self.nb_actions) if isinstance(self.nb_actions, tuple) else self.nb_actions
        action = (outputs_shape[0],)
        if isinstance(self.nb_actions, tuple):
            action = (outputs_shape[0], len(self.nb_actions))
        return action, (outputs_shape[0], width)


def _argmax(values, n: int):
    """The first index of each row's largest value, int32, as NumPy's `argmax`: written
    with a max and a min (Keras' `argmax` on TensorFlow uses ops ONNX lacks)."""
    ops = keras.ops
    best = ops.max(values, axis=-1, keepdims=True)
    indices = ops.convert_to_tensor(np.arange(n, dtype=np.int32))  # a constant
    return ops.min(ops.where(ops.equal(values, best), indices, n), axis=-1)


def policy_model(
    model: keras.Model,
    nb_actions: int | tuple[int, ...],
    distribution=None,
    mask: bool = False,
) -> keras.Model:
    """`model` behind the greedy choice: inputs the model's own (one named `state`, or
    one per part by its name) and with `mask=True` a bool `mask` `(batch, width)`;
    outputs `{"action": int32 (batch,) or (batch, nb_parts), "q_values": float32
    (batch, width)}`, where `width` is the actions (of all parts) one after another."""
    if _recurrent_signature(model) is not None:
        raise ValueError(
            "export() writes feedforward policies; a recurrent model's policy (frames and "
            f"states in, actions and next states out) is not exported yet. Received: {model.name!r}"
        )
    several = frame_parts(model) is not None  # one input a part, else one named state
    inputs = [
        keras.Input(x.shape[1:], dtype=x.dtype, name=x.name if several else "state")
        for x in model.inputs
    ]
    outputs = model(keras.tree.pack_sequence_as(model.input, inputs) if several else inputs[0])
    width = sum(nb_actions) if isinstance(nb_actions, tuple) else nb_actions
    allowed = keras.Input((width,), dtype="bool", name="mask") if mask else None
    greedy = _Greedy(nb_actions, distribution, name="greedy")
    action, q = greedy(outputs) if allowed is None else greedy(outputs, allowed)
    feeds = inputs + ([allowed] if mask else [])
    policy = keras.Model(feeds, {"action": action, "q_values": q}, name="policy")
    policy([np.ones((1, *x.shape[1:]), dtype=x.dtype) for x in feeds])  # exported once called
    return policy


def artifact_inputs(model: keras.Model, states, mask=None) -> dict:
    """What an exported policy of `model` takes for a batch of `states` (an array, or a
    dict of arrays by input name) and a bool `mask`: the arrays by input name, each in
    its input's dtype."""
    if isinstance(states, dict):
        feeds = {x.name: np.asarray(states[x.name], dtype=x.dtype) for x in model.inputs}
    else:
        feeds = {"state": np.asarray(states, dtype=model.inputs[0].dtype)}
    return feeds if mask is None else {**feeds, "mask": np.asarray(mask, dtype=bool)}


def export_policy(policy: keras.Model, path: str, format: str, verbose: bool) -> str:
    """Writes `policy` with `keras.Model.export` in `format`, checked against the
    backend in use and `path`'s ending; returns `path`."""
    backend = keras.backend.backend()
    offered = FORMATS.get(backend, ())
    if format not in offered:
        raise ValueError(
            f"Agent.export() writes the formats {offered} on the {backend} backend. "
            f"Received: format={format!r}"
        )
    ending = _ENDINGS.get(format)
    if ending is not None and not path.endswith(ending):
        raise ValueError(
            f"Agent.export() with format={format!r} writes a file ending in {ending!r}. "
            f"Received: path={path!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    policy.export(path, format=format, verbose=verbose)
    return path
