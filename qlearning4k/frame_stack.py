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
        self.state: np.ndarray | None = None

    def reset(self, frame: ArrayLike) -> np.ndarray:
        """Starts a new game from its first frame; returns the state.

        Args:
            frame: The game's first frame.

        Returns:
            The state, `(nb_frames,) + frame.shape`: the frame repeated.
        """
        frame = np.asarray(frame)
        self.state = np.repeat(frame[None], self.nb_frames, axis=0)
        return self.state

    def push(self, frame: ArrayLike) -> np.ndarray:
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
        frame = np.asarray(frame)
        if self.state is None:
            raise ValueError("FrameStack.push() needs a first frame: call reset(frame) first.")
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
