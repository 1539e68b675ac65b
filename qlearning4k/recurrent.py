"""`recurrent`: a recurrent Q-network (DRQN, R2D2) from a frame encoder and a Keras RNN layer.

A recurrent Q-network is a plain functional `keras.Model` with this contract,
which `recurrent()` builds and a user may also write by hand:

- inputs: `[frames, *states]`: the frames `(batch, time) + frame_shape` (any
  number of steps) and the recurrent state at the first step, one
  `(batch, size)` input per state tensor of the RNN layers (an LSTM has two,
  `h` and `c`; a GRU one);
- outputs: `[q_values, *next_states]`: the Q-values of every step
  `(batch, time, nb_actions)` and the states after the last step, in the
  order of the state inputs and of the same shapes.

An `Agent` given such a model plays with one frame a move and carries each
copy's state from move to move, and learns from sequences as R2D2 does (see
`SequenceReplay`).
"""

from __future__ import annotations

import dataclasses
import math

import keras

from qlearning4k._checks import _check_positive_int
from qlearning4k.dueling import _dueling_head


@dataclasses.dataclass(frozen=True)
class _RecurrentSignature:
    """What an `Agent` reads from a recurrent model: its frames, outputs and states."""

    frame_shape: tuple
    nb_outputs: int
    state_sizes: tuple[int, ...]

    @property
    def state_size(self) -> int:
        """Floats of all state tensors together (they travel as one row a copy)."""
        return sum(self.state_sizes)


def _recurrent_signature(model: keras.Model) -> _RecurrentSignature | None:
    """The signature of a model that follows the contract of this module, else `None`.

    A model is recurrent when it has several outputs: its first input must
    then be frames with a time axis and the others states that its other
    outputs return, or the error says what differs.
    """
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        return None
    if not inputs or not outputs or len(outputs) == 1:
        return None
    frames, q, states, nexts = inputs[0], outputs[0], inputs[1:], outputs[1:]
    shapes = [tuple(x.shape) for x in inputs], [tuple(x.shape) for x in outputs]
    state_shapes = [tuple(s.shape) for s in states]
    fits = (
        len(frames.shape) >= 3
        and None not in tuple(frames.shape[2:])
        and len(q.shape) == 3
        and q.shape[-1] is not None
        and states
        and state_shapes == [tuple(n.shape) for n in nexts]
        and all(len(s) == 2 and s[1] is not None for s in state_shapes)
    )
    if not fits:
        raise ValueError(
            "A model of several outputs is read as a recurrent Q-network (see "
            "qlearning4k.recurrent): inputs [frames (batch, time) + frame_shape, *states "
            "(batch, size)], outputs [q_values (batch, time, nb_actions), *next_states] with "
            f"the states' shapes. Received: input shapes {shapes[0]}, output shapes {shapes[1]}"
        )
    return _RecurrentSignature(
        tuple(frames.shape[2:]), int(q.shape[-1]), tuple(int(s[1]) for s in state_shapes)
    )


def recurrent(
    core: keras.layers.Layer,
    frame_shape: tuple,
    nb_actions: int,
    encoder: keras.Model | None = None,
    dueling: bool = False,
    units: int | None = None,
) -> keras.Model:
    """Builds a recurrent Q-network: encoder, RNN core, Q-value head, states in and out.

    Each frame goes through `encoder` (applied to every step), then `core`
    (an LSTM, a GRU or a `keras.layers.RNN` of any cell) carries the state
    from step to step, and a `Dense` head (or a dueling one) gives each
    step's Q-values. The model follows the contract of this module: inputs
    `[frames (batch, time) + frame_shape, *states]`, outputs `[q_values
    (batch, time, nb_actions), *next_states]`. Compile it and give it to an
    `Agent`, which then learns from sequences (`SequenceReplay`).

    Args:
        core: A `keras.layers.RNN` (`LSTM`, `GRU`, `SimpleRNN` or `RNN` of a
            cell), made with the default `return_sequences=False,
            return_state=False`: `recurrent()` calls a copy of it that
            returns both.
        frame_shape: The shape of one frame, as the game gives it.
        nb_actions: Number of actions.
        encoder: A `keras.Model` from one frame `(batch,) + frame_shape` to
            features, or `None` to feed the flattened frame to the core.
            Defaults to `None`.
        dueling: Whether the head is dueling (`V + A - mean(A)`, Wang et al.,
            2016). Defaults to `False`.
        units: Width of a hidden `Dense` layer (ReLU) in the head (each
            stream's, with `dueling`), or `None` for none. Defaults to `None`.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        TypeError: If `core` is not a Keras RNN layer or `encoder` not a model.
        ValueError: If `core` already returns sequences or states, or the
            encoder's input does not take the frames.

    Example:

    ```python
    model = qlearning4k.recurrent(
        keras.layers.LSTM(64), frame_shape=(4,), nb_actions=2,
        encoder=keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu")]),
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Huber())
    agent = Agent(model)  # learns from sequences with burn-in, as R2D2
    ```
    """
    if not isinstance(core, keras.layers.RNN):
        raise TypeError(
            "recurrent() expects a Keras RNN layer as its core (LSTM, GRU, SimpleRNN or "
            f"keras.layers.RNN(cell)). Received: {core!r} (of type {type(core).__name__})"
        )
    if core.return_sequences or core.return_state:
        raise ValueError(
            "recurrent() expects a core made with return_sequences=False and "
            "return_state=False (it builds the model that returns both). Received: "
            f"return_sequences={core.return_sequences}, return_state={core.return_state}"
        )
    if encoder is not None and not isinstance(encoder, keras.Model):
        raise TypeError(
            f"encoder must be a keras.Model or None. Received: {encoder!r} "
            f"(of type {type(encoder).__name__})"
        )
    nb_actions = _check_positive_int("nb_actions", nb_actions)
    if units is not None:
        units = _check_positive_int("units", units)
    frame_shape = tuple(int(d) for d in frame_shape)
    frames = keras.Input((None, *frame_shape), name="frames")
    x = frames
    if encoder is not None:
        if tuple(encoder.inputs[0].shape[1:]) != frame_shape:
            raise ValueError(
                "recurrent() expects an encoder of one frame (batch,) + frame_shape. "
                f"Received: encoder input {tuple(encoder.inputs[0].shape)}, "
                f"frame_shape={frame_shape}"
            )
        x = keras.layers.TimeDistributed(encoder, name="encoder")(x)
    if len(x.shape) > 3:
        x = keras.layers.Reshape((-1, math.prod(x.shape[2:])), name="flatten_frames")(x)
    config = {**core.get_config(), "return_sequences": True, "return_state": True}
    core = type(core).from_config(config)
    sizes = _state_sizes(core)
    states = [keras.Input((size,), name=f"state_{i}") for i, size in enumerate(sizes)]
    x, *next_states = core(x, initial_state=states if len(states) > 1 else states[0])
    q = _head(x, nb_actions, dueling, units)
    return keras.Model([frames, *states], [q, *next_states], name=f"recurrent_{core.name}")


def _state_sizes(core: keras.layers.RNN) -> list[int]:
    """The sizes of the core's state tensors (`h`, `c` for an LSTM)."""
    size = core.cell.state_size
    return [int(s) for s in size] if isinstance(size, (list, tuple)) else [int(size)]


def _head(x, nb_actions: int, dueling: bool, units: int | None):
    """Q-values `(batch, time, nb_actions)` from the core's outputs."""
    if dueling:
        return _dueling_head(x, nb_actions, units)
    if units is not None:
        x = keras.layers.Dense(units, activation="relu", name="q_hidden")(x)
    return keras.layers.Dense(nb_actions, name="q_values")(x)
