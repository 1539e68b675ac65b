"""`FrameStack`: the last frames of a game as one state, for a model fed one frame at a time."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checks import _check_positive_int


class FrameStack:
    """Keeps the last `nb_frames` frames of a game as the state the model takes.

    The agent stacks frames this way when it trains and plays: a state is
    the `nb_frames` newest frames, oldest first, and a game's first frame is
    repeated until there are enough. A program that receives one frame at a
    time (a deployed agent, say) keeps a `FrameStack` per game and passes
    its state to `Agent.act()`.

    A frame in parts (a dict, or a tuple holding an array, for a model of
    one input per part) is stacked part by part: the state is a dict (or tuple) of
    `(nb_frames,) + part_shape` arrays.

    Args:
        nb_frames: Frames per state, the agent's `nb_frames`.

    Raises:
        ValueError: If `nb_frames` is not a positive int, or a frame's shape
            differs from the first frame's.

    Example:

    ```python
    stack = FrameStack(agent.nb_frames)
    state = stack.reset(game.get_frame())  # (nb_frames,) + frame_shape
    while not game.is_over():
        game.play(agent.act(state))
        state = stack.push(game.get_frame())
    ```
    """

    def __init__(self, nb_frames: int):
        self.nb_frames = _check_positive_int("nb_frames", nb_frames)
        self.state: np.ndarray | dict | tuple | None = None
        self._parts: dict | None = None  # a FrameStack per part, for frames in parts

    def reset(self, frame: ArrayLike | dict | tuple) -> np.ndarray | dict | tuple:
        """Starts a new game from its first frame; returns the state.

        Args:
            frame: The game's first frame (an array, or a dict or tuple of
                arrays).

        Returns:
            The state, `(nb_frames,) + frame.shape`: the frame repeated (a
            dict or tuple of them for a frame in parts).
        """
        if _in_parts(frame):
            stacks = {key: FrameStack(self.nb_frames) for key in _keys(frame)}
            self._parts = stacks
            self.state = _like(frame, {key: stacks[key].reset(frame[key]) for key in stacks})
            return self.state
        self._parts = None
        frame = np.asarray(frame)
        self.state = np.repeat(frame[None], self.nb_frames, axis=0)
        return self.state

    def push(self, frame: ArrayLike | dict | tuple) -> np.ndarray | dict | tuple:
        """Adds the newest frame, dropping the oldest; returns the state.

        Args:
            frame: The game's frame after the last move.

        Returns:
            The state, `(nb_frames,) + frame.shape`. A new array each call,
            so earlier states stay as they were.

        Raises:
            ValueError: If `reset()` was not called first or the frame's
                shape differs from the first frame's.
        """
        if self.state is None:
            raise ValueError("FrameStack.push() needs a first frame: call reset(frame) first.")
        if self._parts is not None:
            if not _in_parts(frame) or set(_keys(frame)) != set(self._parts):
                raise ValueError(
                    "FrameStack.push() expects a frame in the parts of the first one "
                    f"({sorted(map(str, self._parts))}). Received: {type(frame).__name__}"
                )
            stacks = self._parts
            self.state = _like(frame, {key: stacks[key].push(frame[key]) for key in stacks})
            return self.state
        frame = np.asarray(frame)
        if frame.shape != self.state.shape[1:]:
            raise ValueError(
                f"FrameStack.push() expects frames of shape {self.state.shape[1:]} (the first "
                f"frame's). Received: shape {frame.shape}"
            )
        state = np.empty_like(self.state, dtype=np.result_type(self.state, frame))
        state[:-1] = self.state[1:]
        state[-1] = frame
        self.state = state
        return state


def _in_parts(frame) -> bool:
    """A dict, or a tuple holding an array (a tuple of numbers is one frame)."""
    return isinstance(frame, dict) or (
        isinstance(frame, tuple) and any(np.ndim(part) for part in frame)
    )


def _keys(frame: dict | tuple):
    return list(frame) if isinstance(frame, dict) else range(len(frame))


def _like(frame: dict | tuple, values: dict) -> dict | tuple:
    """`values` (keyed as `_keys(frame)`) as a dict or a tuple, as `frame` is."""
    return dict(values) if isinstance(frame, dict) else tuple(values[i] for i in range(len(frame)))
