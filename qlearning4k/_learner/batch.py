"""The named batch between the replay memory and the compiled step, and its packing.

A call into a compiled function costs hundreds of microseconds here however
little it computes, and passing arrays in and out is a large part of that,
so every call takes two arrays and returns one, whatever the batches hold.
`CallBuffers` owns the two arrays and hands out named views of them: each
gradient step's `StepBatch` (states, next states, actions, rewards,
discounts, weights, masks), and the states to act on. Whoever fills a batch
(the replay memory's `_sample_into`, the training run, tests, benchmarks)
writes through those names; only this module and the learners know where
the names live in the arrays:

- `frames`: `(max_steps * 2 * batch + n_act,) + state_shape` in the game's
  dtype: for each gradient step its states then its next states, then the
  states to act on. Rows of unused steps are ignored.
- `floats`: `(max_steps * batch + 1, width)` `float32`: per transition its
  reward, bootstrap discount (`gamma ** steps`, 0 at game over), sample
  weight and action (one column per action part for a game of several),
  then with masks one 0/1 column per output (the actions possible in the
  next state, part after part). The last row holds the number of gradient
  steps to run in its first column and, for the one-step graph (see
  `Learner.one_call_a_step`), the slot of the step to run in its second.
- returned: `(max_steps [+ max_steps * batch] + n_act * nb_actions,)`: the
  loss of each gradient step (0 for those not run), with `prioritized` the
  TD error of each transition, then the Q-values of the acting states.

Inside the compiled step, `read_rows` names the columns of a step's rows.
`bootstrapped_returns` is the one NumPy TD target, for what computes targets
outside the compiled step (`ExperienceReplay.get_batch`, the Ray actors'
initial priorities).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

REWARD, DISCOUNT, WEIGHT, ACTION = range(4)  # the columns of `floats`
FIXED_COLUMNS = 3  # then one action column per action part, then the mask columns
_COUNT, _SLOT = 0, 1  # columns of the last row: steps to run, slot of the one-step graph


class StepBatch(NamedTuple):
    """One gradient step's transitions: writable views of a call's arrays.

    Attributes:
        states: `(batch,) + state_shape`, in the game's dtype.
        next_states: `(batch,) + state_shape`, like `states`.
        actions: `(batch,)` float32: each transition's action; `(batch,
            nb_parts)` for a game of several action parts.
        rewards: `(batch,)` float32: the (n-step) return before bootstrapping.
        discounts: `(batch,)` float32: the bootstrap discount, `gamma ** steps`
            and 0 after a game over.
        weights: `(batch,)` float32: the loss weight (prioritized replay's
            importance-sampling weight, else 1).
        next_mask: `(batch, nb_actions)` float32, 1 where an action is possible
            in the next state (part after part for several action parts);
            `None` when the step takes no masks.
    """

    states: np.ndarray
    next_states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray
    next_mask: np.ndarray | None


class CallBuffers:
    """The two arrays of a learner's calls, and named views of them.

    Made by `Learner.call_buffers()`. `batches[i]` is gradient step `i`'s
    `StepBatch` and `acting` the states to act on; the learner's `step()`
    takes the whole object.

    Args:
        allocate: `allocate(shape, dtype)` makes a zeroed array (the
            learner's `buffer`, which may bind it to a backend value).
        max_steps: Gradient steps a call holds at most.
        batch_size: Transitions per gradient step.
        nb_act: States to act on per call.
        state_shape: `(nb_frames,) + frame_shape`.
        dtype: The states' dtype.
        nb_actions: The model's outputs, for the mask columns.
        masked: Whether the steps take masks of the next states' actions.
        nb_parts: Action parts (a column each, `actions` then 2-D), or
            `None` for one action column. Defaults to `None`.
    """

    def __init__(
        self,
        allocate: Callable[[tuple, Any], np.ndarray],
        max_steps: int,
        batch_size: int,
        nb_act: int,
        state_shape: tuple,
        dtype,
        nb_actions: int,
        masked: bool,
        nb_parts: int | None = None,
    ):
        self.batch_size, self.max_steps, self.nb_parts = batch_size, max_steps, nb_parts
        width = columns(nb_actions, masked, nb_parts)
        self.frames = allocate((max_steps * 2 * batch_size + nb_act,) + tuple(state_shape), dtype)
        self.floats = allocate((max_steps * batch_size + 1, width), np.float32)
        self.floats[:, WEIGHT] = 1.0
        self.batches = tuple(self._batch(slot, masked) for slot in range(max_steps))
        self.acting = self.frames[max_steps * 2 * batch_size :]  # (nb_act,) + state_shape

    def _batch(self, slot: int, masked: bool) -> StepBatch:
        size = self.batch_size
        frames = self.frames[slot * 2 * size : (slot + 1) * 2 * size]
        rows = self.floats[slot * size : (slot + 1) * size]
        masks = FIXED_COLUMNS + (self.nb_parts or 1)
        return StepBatch(
            frames[:size], frames[size:], _actions(rows, self.nb_parts), rows[:, REWARD],
            rows[:, DISCOUNT], rows[:, WEIGHT], rows[:, masks:] if masked else None,
        )  # fmt: skip

    def set_act(self, states: np.ndarray) -> None:
        """Writes the states to act on into the last rows of `acting`."""
        self.acting[len(self.acting) - len(states) :] = states


class SequenceBatch(NamedTuple):
    """One gradient step's sequences (a recurrent model's), as writable arrays.

    `learned` is the steps after the burn-in. Made by `SequenceBuffers`;
    `SequenceReplay._sample_into` fills it.

    Attributes:
        frames: `(batch, length + 1) + frame_shape`: each sequence's frames,
            the burn-in's first, then the learned steps', then the bootstrap frame.
        states: `(batch, state_size)` float32: the recurrent state stored
            with each sequence, before its first frame.
        fresh: `(batch,)` float32: 1 for a sequence that starts its game,
            whose burn-in columns are padding and whose stored state is the
            state after them.
        actions: `(batch, learned)` float32: each learned step's action.
        rewards: `(batch, learned)` float32: its n-step return.
        discounts: `(batch, learned)` float32: its bootstrap discount.
        weights: `(batch, learned)` float32: its loss weight (0 for padding).
        bootstrap: `(batch, learned)` int32: the column of the learned part
            (the bootstrap frame's is `learned`) each step bootstraps from.
        next_mask: `(batch, learned, nb_actions)` float32 of the bootstrap
            columns' possible actions, or `None` without masks.
        rows: `(batch, learned, width)` float32: the columns above (but
            `bootstrap`) packed as `floats` rows, which `read_rows` names.
    """

    frames: np.ndarray
    states: np.ndarray
    fresh: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray
    bootstrap: np.ndarray
    next_mask: np.ndarray | None
    rows: np.ndarray


class SequenceBuffers:
    """The arrays of a recurrent learner's calls: each gradient step's
    `SequenceBatch` in `batches`, and the frames and states to act on.

    Args:
        max_steps: Gradient steps a call holds at most.
        batch_size: Sequences per gradient step.
        nb_act: Copies to act for.
        length: Steps of a sequence, the burn-in included.
        learned: Steps learned (after the burn-in).
        frame_shape: The frames' shape.
        dtype: The frames' dtype.
        state_size: Floats of a recurrent state.
        nb_actions: The model's outputs, for the mask columns.
        masked: Whether the steps take masks of the next states' actions.
    """

    def __init__(self, max_steps, batch_size, nb_act, length, learned, frame_shape, dtype,
                 state_size, nb_actions, masked):  # fmt: skip
        self.batch_size, self.max_steps = batch_size, max_steps
        width = columns(nb_actions, masked)
        self.batches = tuple(
            self._batch(
                batch_size, length, learned, tuple(frame_shape), dtype, state_size, width, masked
            )
            for _ in range(max_steps)
        )
        self.acting = np.zeros((nb_act,) + tuple(frame_shape), dtype)
        self.acting_states = np.zeros((nb_act, state_size), np.float32)
        self.played_states = np.zeros((nb_act, state_size), np.float32)  # before `acting`

    @staticmethod
    def _batch(size, length, learned, frame_shape, dtype, state_size, width, masked):
        rows = np.zeros((size, learned, width), np.float32)
        rows[..., WEIGHT] = 1.0
        return SequenceBatch(
            np.zeros((size, length + 1) + frame_shape, dtype),
            np.zeros((size, state_size), np.float32), np.zeros(size, np.float32),
            rows[..., ACTION], rows[..., REWARD], rows[..., DISCOUNT], rows[..., WEIGHT],
            np.ones((size, learned), np.int32), rows[..., FIXED_COLUMNS + 1 :] if masked else None,
            rows,
        )  # fmt: skip

    def set_act(self, states: np.ndarray) -> None:
        """Writes the frames to act on, `(n,) + frame_shape` or `(n, 1) + frame_shape`."""
        self.acting[...] = states.reshape(self.acting.shape)


class Rows(NamedTuple):
    """A gradient step's columns as backend tensors (see `read_rows`)."""

    actions: Any  # (batch,) float; (batch, nb_parts) for several action parts
    rewards: Any  # (batch,) float
    discounts: Any  # (batch,) float
    weights: Any  # (batch,) float
    next_mask: Any  # (batch, nb_actions) float, or None without masks


def columns(nb_actions: int, masked: bool, nb_parts: int | None = None) -> int:
    """The width of `floats`: the fixed columns, the actions', the masks'."""
    return FIXED_COLUMNS + (nb_parts or 1) + (nb_actions if masked else 0)


def _actions(rows, nb_parts: int | None):
    """The action column `(batch,)` of `rows`, or the `(batch, nb_parts)` columns."""
    return rows[:, ACTION] if nb_parts is None else rows[:, ACTION : ACTION + nb_parts]


def read_rows(floats, nb_actions: int, masked: bool, nb_parts: int | None = None) -> Rows:
    """The named columns of one gradient step's rows of `floats` (any backend's tensor)."""
    masks = FIXED_COLUMNS + (nb_parts or 1)
    next_mask = floats[:, masks : masks + nb_actions] if masked else None
    return Rows(
        _actions(floats, nb_parts), floats[:, REWARD], floats[:, DISCOUNT], floats[:, WEIGHT],
        next_mask,
    )  # fmt: skip


def bootstrapped_returns(rewards, discounts, q_next, next_mask=None) -> np.ndarray:
    """The NumPy TD target `r + discount * max Q(S')` of each transition: `(batch,)`.

    The max runs over the actions `next_mask` (bool `(batch, nb_actions)`)
    allows, all of them when it is `None`; a next state with no possible
    action has no future (0).
    """
    if next_mask is not None:
        q_next = np.where(next_mask, q_next, -np.inf)
    best_next = np.where(np.isfinite(q_next).any(axis=1), q_next.max(axis=1), 0.0)  # (batch,)
    return rewards + discounts * best_next
