"""`FrameParts`: frames in parts (a dict or a tuple of arrays), for models of several inputs.

A game may show a dict of arrays (an image, the direction it faces, a
vector of sensors) to a Keras model with one named input per key, each
`(batch, nb_frames) + part_shape`. Inside the library such a frame travels
as one flat array of bytes: each part in the dtype it is stored in, raveled
and put end to end. So the replay memory (frames stored once where
stacked), n-step returns, prioritized replay, vector games, the Ray actors,
saving and exact resume take it as they take any frame, each part takes
the bytes it would alone, and only two places know the parts:
`FrameParts.pack` (a game's frame to the flat one, checked) and
`FrameParts.step_model` (the flat states back into the model's inputs,
inside the compiled step).

A part is stored as `uint8` where the first frame's part is `uint8` or
`bool` (pixels, one-hot codes), else as `float32`: the first frame packed
settles it, as the first state settles a replay memory's dtype. Wider parts
come first and the frame is padded to a multiple of 4 bytes, so that every
part starts at a multiple of its item size (PyTorch views bytes as floats
only there). Each part goes to its input's dtype in the compiled step, as a
plain frame does.
"""

from __future__ import annotations

import math

import keras
import numpy as np

_BYTES = (np.dtype(np.uint8), np.dtype(bool))
_ALIGN = 4  # bytes: the widest stored item (float32)


class FrameParts:
    """The parts of a model's frames: one per input, in the model's order.

    A frame is a dict keyed by the inputs' names, or a tuple in their order.
    The stored dtype of each part (and so the flat frame's layout) is
    settled by the first frame `pack()` sees.

    Args:
        names: The inputs' names.
        shapes: Each input's shape after `(batch, nb_frames)`.
        dtypes: Each input's dtype.
    """

    def __init__(self, names: tuple, shapes: tuple, dtypes: tuple):
        self.names, self.shapes, self.dtypes = names, shapes, dtypes
        self._stored: tuple[np.dtype, ...] | None = None
        self._bounds: tuple[tuple[int, int], ...] = ()  # bytes of each part, in names' order
        self.size = 0  # bytes a flat frame, once settled
        self._stepped: dict = {}  # (id(model), nb_frames) -> (model, its step model)

    @property
    def frame_shape(self) -> dict[str, tuple[int, ...]]:
        """Each part's shape, by input name."""
        return dict(zip(self.names, self.shapes, strict=True))

    @property
    def settled(self) -> bool:
        """Whether a first frame has settled the stored dtypes."""
        return self._stored is not None

    def settle(self, stored) -> None:
        """Fixes each part's stored dtype (`uint8` or `float32`) and the byte layout."""
        self._stored = tuple(np.dtype(d) for d in stored)
        sizes = [
            math.prod(shape) * d.itemsize
            for shape, d in zip(self.shapes, self._stored, strict=True)
        ]
        order = sorted(range(len(sizes)), key=lambda i: -self._stored[i].itemsize)
        bounds, start = [None] * len(sizes), 0
        for i in order:
            bounds[i] = (start, start + sizes[i])
            start += sizes[i]
        self._bounds = tuple(bounds)
        self.size = -(-start // _ALIGN) * _ALIGN

    def _described(self) -> str:
        return ", ".join(f"{n!r}: {s}" for n, s in zip(self.names, self.shapes, strict=True))

    def _parts(self, frame, lead: tuple, where: str) -> list[np.ndarray]:
        """`frame`'s parts in the inputs' order, each `lead + shape`, checked."""
        if isinstance(frame, dict):
            if set(frame) != set(self.names):
                raise ValueError(
                    f"The model has one input per part of a frame ({self._described()}), "
                    f"so {where} must return a dict with the keys {sorted(self.names)}. "
                    f"Received: keys {sorted(map(str, frame))}"
                )
            parts = [frame[name] for name in self.names]
        elif isinstance(frame, (tuple, list)) and len(frame) == len(self.names):
            parts = list(frame)
        else:
            many = isinstance(frame, (tuple, list))
            got = f"{len(frame)} parts" if many else type(frame).__name__
            raise ValueError(
                f"The model has {len(self.names)} inputs ({self._described()}), so {where} "
                f"must return a dict keyed by their names or a tuple of {len(self.names)} "
                f"arrays in their order. Received: {got}"
            )
        arrays = []
        for name, shape, part in zip(self.names, self.shapes, parts, strict=True):
            array = np.asarray(part)
            if array.shape != lead + shape:
                raise ValueError(
                    f"The model's input {name!r} is (batch, nb_frames) + {shape}, so part "
                    f"{name!r} of {where} must have shape {lead + shape}. "
                    f"Received: shape {array.shape}"
                )
            arrays.append(array)
        return arrays

    def pack(self, frame, where: str, lead: tuple = ()) -> np.ndarray:
        """One flat frame of bytes `(size,)` from a game's dict or tuple of parts (or
        `lead + (size,)` from parts of `lead + shape`); `where` names the source in errors."""
        arrays = self._parts(frame, lead, where)
        if self._stored is None:
            self.settle(np.uint8 if a.dtype in _BYTES else np.float32 for a in arrays)
        flat = np.zeros(lead + (self.size,), np.uint8)
        for (start, stop), stored, array in zip(self._bounds, self._stored, arrays, strict=True):
            values = np.ascontiguousarray(array, dtype=stored).reshape(lead + (-1,))
            flat[..., start:stop] = values.view(np.uint8)
        return flat

    def states(self, observation, nb_frames: int, where: str) -> tuple[np.ndarray, bool]:
        """`(n, nb_frames, size)` from a state's parts `(nb_frames,) + shape`, a batch's
        `(n, nb_frames) + shape` or (with one frame a state) a frame's; whether one."""
        if isinstance(observation, dict) and self.names[0] in observation:
            first = np.asarray(observation[self.names[0]])
        elif isinstance(observation, (tuple, list)) and observation:
            first = np.asarray(observation[0])
        else:
            return self.pack(observation, where), True  # raises: not a dict or tuple of parts
        extra = first.ndim - len(self.shapes[0])
        if extra == 0 and nb_frames == 1:
            return self.pack(observation, where)[None, None], True
        if extra == 1:
            return self.pack(observation, where, (nb_frames,))[None], True
        if extra == 2:
            return self.pack(observation, where, (len(first), nb_frames)), False
        one = ", or (with nb_frames=1) a frame" if nb_frames == 1 else ""
        raise ValueError(
            f"{where} expects each part as a state (nb_frames,) + part_shape, a batch "
            f"(n, nb_frames) + part_shape{one}, with the parts {self._described()} and "
            f"nb_frames={nb_frames}. Received: shape {first.shape} for part {self.names[0]!r}"
        )

    def step_model(self, model: keras.Model, nb_frames: int) -> keras.Model:
        """A model of the flat states `(batch, nb_frames, size)` of bytes that calls `model`
        on its parts: the same layers and weights, compiled with its optimizer and loss.
        Made once a model; settles the stored dtypes from the inputs' where no frame has yet."""
        key = (id(model), nb_frames)
        if key in self._stepped:
            return self._stepped[key][1]
        if self._stored is None:
            self.settle(np.uint8 if np.dtype(d) in _BYTES else np.float32 for d in self.dtypes)
        flat = keras.Input((nb_frames, self.size), dtype="uint8", name="frames")
        parts = []
        for shape, dtype, stored, (start, stop) in zip(
            self.shapes, self.dtypes, self._stored, self._bounds, strict=True
        ):
            part = flat[:, :, start:stop]
            if stored != np.uint8:
                part = keras.ops.view(part, stored.name)
            parts.append(keras.ops.cast(keras.ops.reshape(part, (-1, nb_frames, *shape)), dtype))
        inputs = keras.tree.pack_sequence_as(model.input, parts)  # the model's structure
        stepped = keras.Model(flat, model(inputs), name=f"{model.name}_frames")
        stepped.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=model.jit_compile)
        self._stepped[key] = (model, stepped)  # the model kept, so that its id stays its own
        return stepped


def frame_parts(model: keras.Model) -> FrameParts | None:
    """The parts of `model`'s frames where it has several inputs (or a dict of them),
    `None` for a model of one input. Each input must be `(batch, nb_frames) +
    part_shape`, fully known, with one `nb_frames` for all."""
    inputs = model.inputs  # as keras.tree.flatten(model.input) orders them
    if len(inputs) == 1:
        try:
            keyed = isinstance(model.input, dict)
        except AttributeError:  # a Sequential's input, in some Keras versions
            keyed = False
        if not keyed:
            return None
    shapes = [tuple(x.shape[1:]) for x in inputs]
    for x, shape in zip(inputs, shapes, strict=True):
        if len(shape) < 1 or None in shape:
            raise ValueError(
                "Agent expects each input of a model of several inputs to be (batch, "
                f"nb_frames) + part_shape, fully known. Received: input {x.name!r} of "
                f"shape {tuple(x.shape)}"
            )
    if len({shape[0] for shape in shapes}) != 1:
        received = ", ".join(f"{x.name!r}: {s[0]}" for x, s in zip(inputs, shapes, strict=True))
        raise ValueError(
            "Agent expects the inputs of a model to share nb_frames, the axis after the "
            f"batch. Received: {received}"
        )
    names = tuple(x.name for x in inputs)
    if len(set(names)) != len(names):
        raise ValueError(
            f"Agent expects the model's inputs to have distinct names. Received: {names}"
        )
    return FrameParts(names, tuple(s[1:] for s in shapes), tuple(str(x.dtype) for x in inputs))
