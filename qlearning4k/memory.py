"""Replay memories: the `Memory` contract and the `ExperienceReplay` ring buffer."""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checks import _check_batch_size, _check_memory_size
from qlearning4k._learner import StepBatch, bootstrapped_returns
from qlearning4k._replay_states import _FrameOnceStates, _WholeStates

_UNBOUNDED_START = 1024  # first capacity of an unbounded memory; it doubles
# Optional columns, made the first time a transition needs them: n-step
# counts, masks of possible next actions. The states are the layout's.
_OPTIONAL_BUFFERS = ("_steps", "_next_mask")
_BUFFERS = ("_actions", "_rewards", "_game_over", *_OPTIONAL_BUFFERS)


class Batch(NamedTuple):
    """A batch of transitions sampled from a memory.

    The first five fields are what every memory returns; the others are
    `None` where a memory does not keep them.

    Attributes:
        states: `(batch_size,) + state_shape`, in the dtype the game gave.
        actions: `(batch_size,)` `int32`; `(batch_size, nb_parts)` for a game
            of several action parts.
        rewards: `(batch_size,)` `float32`: with n-step returns, the
            discounted sum of the rewards between `states` and `next_states`.
        next_states: `(batch_size,) + state_shape`, like `states`.
        game_over: `(batch_size,)` `bool`.
        steps: `(batch_size,)` ints: game steps between `states` and
            `next_states`, so the bootstrap discount is `gamma ** steps`;
            `None` means 1. Defaults to `None`.
        next_mask: `(batch_size, nb_actions)` `bool`: the actions possible
            in `next_states`; `None` means all. Defaults to `None`.
        weights: `(batch_size,)` `float32` importance-sampling weights of the
            loss (prioritized replay); `None` means 1. Defaults to `None`.
        indices: `(batch_size,)` the slots the transitions came from, to
            update their priorities. Defaults to `None`.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    game_over: np.ndarray
    steps: np.ndarray | None = None
    next_mask: np.ndarray | None = None
    weights: np.ndarray | None = None
    indices: np.ndarray | None = None


class Memory:
    """Base class of replay memories: what an `Agent` remembers and learns from.

    ALL subclasses must implement `remember()`, `get_batch()`,
    `reset_memory()`, `__len__()` and the `memory_size` property.

    SOME subclasses may implement `sample()`, which returns raw transitions
    as a `Batch`. When it is there the `Agent` computes the Q-targets itself,
    inside its compiled learning step, which is much faster than calling
    `get_batch()` every step; without it the agent trains on what
    `get_batch()` returns.

    Example:

    ```python
    class LastOnly(Memory):
        '''Learns from the most recent transition only.'''

        memory_size = 1

        def __init__(self):
            self.last = None

        def remember(self, s, a, r, s_prime, game_over):
            self.last = (s, a, r, s_prime, game_over)

        def __len__(self):
            return int(self.last is not None)

        def reset_memory(self):
            self.last = None

        def get_batch(self, model, batch_size, gamma=0.9):
            s, a, r, s_prime, game_over = self.last
            q = keras.ops.convert_to_numpy(model(np.concatenate([s, s_prime])))
            targets = q[:1].copy()
            targets[0, a] = r + gamma * (1 - game_over) * q[1].max()
            return s.astype("float32"), targets
    ```
    """

    @property
    def memory_size(self) -> int:
        """The number of transitions kept, or `-1` for no limit."""
        raise NotImplementedError(
            f"{type(self).__name__} must define `memory_size`, the number of "
            "transitions it keeps (-1 for no limit)."
        )

    def remember(
        self, s: ArrayLike, a: ArrayLike, r: ArrayLike, s_prime: ArrayLike, game_over: ArrayLike
    ) -> None:
        """Stores transitions.

        Args:
            s: States before the actions, shape `(n,) + state_shape`.
            a: Actions taken, `n` integers (or one integer when `n == 1`).
            r: Rewards received, `n` numbers.
            s_prime: States after the actions, shaped like `s`.
            game_over: Whether each transition ended its game, `n` booleans.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `remember(s, a, r, s_prime, "
            "game_over)`, which stores transitions."
        )

    def get_batch(
        self, model: keras.Model, batch_size: int, gamma: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(inputs, targets)` to train `model` on one batch.

        Args:
            model: The Keras Q-model, `(batch,) + state_shape -> (batch, nb_actions)`.
            batch_size: Number of transitions in the batch.
            gamma: Discount factor of future rewards. Defaults to 0.9.

        Returns:
            A tuple `(inputs, targets)` of `float32` arrays.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_batch(model, "
            "batch_size, gamma)`, which returns (inputs, targets)."
        )

    def sample(self, batch_size: int) -> Batch:
        """Returns `batch_size` raw transitions (optional, see the class docs)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `sample()`.")

    def reset_memory(self) -> None:
        """Forgets every stored transition."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `reset_memory()`, which "
            "forgets every stored transition."
        )

    def __len__(self) -> int:
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__len__()`, the number of transitions stored."
        )


class ExperienceReplay(Memory):
    """Uniform experience replay in preallocated NumPy ring buffers.

    Transitions are stored in the dtype the game gives (Catch and Snake give
    `uint8` frames). States of stacked frames (a frame axis longer than 1)
    store each frame once, in a ring of frames, and the stacks are rebuilt
    by fancy indexing when sampling: a state that is the previous
    transition's next state, or that state shifted by one frame, reuses its
    frames, and a game's first state (its first frame repeated) stores that
    frame once. Transitions of several steps (`steps > 1`, n-step returns)
    also find the frames the memory holds by their content, so they too
    store each frame about once. So a transition of 84x84 `uint8` frames
    stacked 4 deep takes about 7,240 bytes (a whole state and the next
    frame: 35,289), and one of Snake with 4 frames (short random games)
    about 230. States of one frame are stored whole, with the next state's
    frame. Any `s` and `s_prime` come back exactly as they were
    remembered; the frame ring grows rather than overwrite a frame that a
    stored transition uses. Sampling is uniform, with replacement, by fancy
    indexing.

    Two optional columns are kept only once a transition uses them: the
    number of game steps a transition spans (n-step returns) and the
    actions possible in its next state (action masking).

    Args:
        memory_size: Number of transitions kept; the oldest is overwritten
            first. `-1` keeps everything (the buffers double when full).
            Defaults to 100.
        seed: Seed of the memory's random generator for sampling. Defaults
            to `None`.

    Raises:
        ValueError: If `memory_size` is 0 or below -1.

    Example:

    ```python
    memory = ExperienceReplay(memory_size=1000, seed=0)
    s = np.zeros((1, 1, 10, 10), dtype="uint8")
    memory.remember(s, 2, 0.0, s, False)
    inputs, targets = memory.get_batch(model, batch_size=32, gamma=0.9)
    ```
    """

    _frame_once = True  # frames of stacked states stored once (a benchmark compares False)

    def __init__(self, memory_size: int = 100, seed: int | None = None):
        self._memory_size = _check_memory_size(memory_size)
        self.rng = np.random.default_rng(seed)
        self._free()

    def _free(self) -> None:
        for name in _BUFFERS:
            setattr(self, name, None)  # the optional ones are made when first needed
        self._layout = None  # how the states are kept, made with the first transition
        self._size = 0
        self._cursor = 0

    # -- size ---------------------------------------------------------------

    @property
    def memory_size(self) -> int:
        """Number of transitions kept, or `-1` for no limit (settable)."""
        return self._memory_size

    @memory_size.setter
    def memory_size(self, memory_size: int) -> None:
        memory_size = _check_memory_size(memory_size)
        self._memory_size = memory_size
        if self._layout is None:
            return
        keep = self._size if memory_size == -1 else min(self._size, memory_size)
        capacity = max(keep, _UNBOUNDED_START) if memory_size == -1 else memory_size
        self._relayout(self._chronological()[self._size - keep :], capacity)

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Number of transitions the buffers hold now (0 before any)."""
        return 0 if self._actions is None else len(self._actions)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers, the states' included."""
        buffers = (getattr(self, name) for name in _BUFFERS)
        layout = 0 if self._layout is None else self._layout.nbytes
        return layout + sum(b.nbytes for b in buffers if b is not None)

    def reset_memory(self) -> None:
        """Forgets every transition and frees the buffers."""
        self._free()

    # -- storage ------------------------------------------------------------

    def _allocate(self, s: np.ndarray, capacity: int, action_shape: tuple = ()) -> None:
        self._state_shape = s.shape[1:]
        layout = _FrameOnceStates if self._frame_once and s.shape[1] > 1 else _WholeStates
        self._layout = layout.allocate(s, capacity)
        self._actions = np.zeros((capacity,) + action_shape, dtype=np.int32)
        self._rewards = np.zeros(capacity, dtype=np.float32)
        self._game_over = np.zeros(capacity, dtype=bool)

    def _chronological(self) -> np.ndarray:
        """Slots of the stored transitions, oldest first."""
        start = self._cursor - self._size
        return (start + np.arange(self._size)) % self.capacity

    def _relayout(self, slots: np.ndarray, capacity: int) -> None:
        """Moves the transitions at `slots` into new buffers of `capacity`."""
        for name in _BUFFERS:
            old = getattr(self, name)
            if old is None:
                continue
            new = np.zeros((capacity,) + old.shape[1:], dtype=old.dtype)
            new[: len(slots)] = old[slots]
            setattr(self, name, new)
        self._layout.relayout(slots, capacity)
        self._size = len(slots)
        self._cursor = self._size % capacity

    def _live(self, count: int):
        """`live()` of the layout: the slots still stored after writing `count` at the cursor."""

        def live() -> np.ndarray:
            kept = min(self._size, self.capacity - count)
            return (self._cursor - kept + np.arange(kept)) % self.capacity

        return live

    def _transitions(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The states and next states stored at `slots`, rebuilt as `sample()` does."""
        return self._layout.take(np.asarray(slots, dtype=np.intp))

    def remember(
        self,
        s: ArrayLike,
        a: ArrayLike,
        r: ArrayLike,
        s_prime: ArrayLike,
        game_over: ArrayLike,
        steps: ArrayLike = 1,
        next_mask: ArrayLike | None = None,
    ) -> None:
        """Stores `n` transitions, overwriting the oldest when full.

        Args:
            s: States before the actions, shape `(n,) + state_shape`, where
                `state_shape[0]` is the frame axis. The first call fixes
                `state_shape` and the dtype.
            a: Actions taken: an int or `n` ints; for a game of several action
                parts, `(n, nb_parts)` ints. The first call fixes which.
            r: Rewards received: a number or `n` finite numbers.
            s_prime: States after the actions, shaped like `s`.
            game_over: Whether each transition ended its game: a bool or `n`.
            steps: Game steps from `s` to `s_prime` (n-step returns, where
                `r` is the discounted sum of their rewards): an int or `n`
                ints in [1, 255]. Defaults to 1.
            next_mask: The actions possible in each `s_prime`, a
                `(n, nb_actions)` bool array, or `None` for all of them.
                Defaults to `None`.

        Raises:
            ValueError: If shapes disagree with each other or with the first
                call, if a reward is not finite or a step count out of range.
        """
        s = np.asarray(s)
        s_prime = np.asarray(s_prime, dtype=s.dtype)
        if s.ndim < 2 or s.shape != s_prime.shape:
            raise ValueError(
                "remember() expects s and s_prime of one shape (n,) + state_shape, with a "
                f"leading batch axis. Received: s.shape={s.shape}, s_prime.shape={s_prime.shape}"
            )
        action_shape = np.shape(a)[1:] if np.ndim(a) == 2 else ()  # (nb_parts,) or ()
        if self._layout is None:
            bounded = self._memory_size != -1
            capacity = self._memory_size if bounded else max(_UNBOUNDED_START, len(s))
            self._allocate(s, capacity, action_shape)
        elif action_shape != self._actions.shape[1:]:
            raise ValueError(
                f"remember() expects actions of shape (n,) + {self._actions.shape[1:]} as "
                f"before. Received: a of shape {np.shape(a)}"
            )
        elif s.shape[1:] != self._state_shape:
            raise ValueError(
                f"remember() expects states of shape (n,) + {self._state_shape} as "
                f"before. Received: s.shape={s.shape}"
            )
        n = s.shape[0]
        if next_mask is not None:
            next_mask = np.asarray(next_mask, dtype=bool)
            if next_mask.ndim != 2 or len(next_mask) != n:
                raise ValueError(
                    "remember() expects next_mask of shape (n, nb_actions), n being the number "
                    f"of transitions ({n}). Received: next_mask.shape={next_mask.shape}"
                )
        plain = next_mask is None and (
            steps == 1 if isinstance(steps, int) else bool(np.all(np.asarray(steps) == 1))
        )
        if n == 1 and plain and np.size(a) == 1 and np.size(r) == 1 and np.size(game_over) == 1:
            one = (np.ravel(x)[0] if np.ndim(x) else x for x in (a, r, game_over))
            self._remember_one(s[0], next(one), next(one), s_prime[0], next(one))
            return
        a = np.broadcast_to(np.asarray(a, dtype=np.int32), (n,) + action_shape)
        r = np.broadcast_to(np.asarray(r, dtype=np.float32), (n,))
        game_over = np.broadcast_to(np.asarray(game_over, dtype=bool), (n,))
        if not np.isfinite(r).all():
            raise ValueError(f"remember() expects finite rewards. Received: r={r}")
        steps = np.broadcast_to(np.asarray(steps), (n,))
        if not np.issubdtype(steps.dtype, np.integer) or steps.min() < 1 or steps.max() > 255:
            raise ValueError(f"remember() expects steps in [1, 255]. Received: steps={steps}")
        self._remember_many(s, a, r, s_prime, game_over, None if plain else steps, next_mask)

    def _remember_many(self, s, a, r, s_prime, game_over, steps=None, next_mask=None) -> None:
        """`remember()` of `n` checked transitions, without its checks.

        `s` and `s_prime` are `(n,) + state_shape` in the memory's dtype (its
        layout made), `a` `(n,)` (or `(n, nb_parts)`) `int32`, `r` and
        `game_over` `(n,)` finite
        `float32` and bool arrays, `steps` `None` (all 1) or `(n,)` ints in
        [1, 255], `next_mask` `None` or `(n, nb_actions)` bool. The training
        run calls this with the arrays of each step of its copies.
        """
        n = len(s)
        if self._memory_size == -1 and self._size + n > self.capacity:
            self._relayout(self._chronological(), max(2 * self.capacity, self._size + n))
        capacity = self.capacity
        if n > capacity:  # only the newest `capacity` transitions survive
            s, s_prime, a, r, game_over = (x[-capacity:] for x in (s, s_prime, a, r, game_over))
            steps = None if steps is None else steps[-capacity:]
            next_mask = None if next_mask is None else next_mask[-capacity:]
            n = capacity
        slots = (self._cursor + np.arange(n)) % capacity  # (n,)
        # Transitions of several steps share frames beyond the previous
        # transition's: the layout then looks frames up by content.
        self._layout.store(slots, s, s_prime, self._live(n), dedupe=steps is not None)
        self._actions[slots] = a
        self._rewards[slots] = r
        self._game_over[slots] = game_over
        if steps is not None and (self._steps is not None or (steps != 1).any()):
            self._optional("_steps", (), np.uint8, 1)[slots] = steps
        elif self._steps is not None:
            self._steps[slots] = 1
        if next_mask is not None:
            self._optional("_next_mask", next_mask.shape[1:], bool, True)[slots] = next_mask
        elif self._next_mask is not None:
            self._next_mask[slots] = True
        self._cursor = (self._cursor + n) % capacity
        self._size = min(self._size + n, capacity)
        self._stored(slots)

    def _optional(self, name: str, shape: tuple, dtype, fill) -> np.ndarray:
        """The optional buffer `name`, made now (holding `fill`) if it is not there."""
        buffer = getattr(self, name)
        if buffer is None:
            buffer = np.full((self.capacity,) + shape, fill, dtype=dtype)
            setattr(self, name, buffer)
        elif buffer.shape[1:] != shape:
            raise ValueError(
                f"remember() expects next_mask of shape (n,) + {buffer.shape[1:]} as before. "
                f"Received: (n,) + {shape}"
            )
        return buffer

    def _stored(self, slots) -> None:
        """Called with the slots each `remember()` wrote, or one slot (for subclasses)."""

    def _remember_one(self, s, a, r, s_prime, game_over) -> None:
        """`remember()` of a single transition, without batch arrays."""
        r = float(r)
        if not math.isfinite(r):
            raise ValueError(f"remember() expects finite rewards. Received: r={r}")
        if self._memory_size == -1 and self._size == self.capacity:
            self._relayout(self._chronological(), 2 * self.capacity)
        slot = self._cursor
        self._layout.store_one(slot, s, s_prime, self._live(1))
        self._actions[slot] = a
        self._rewards[slot] = r
        self._game_over[slot] = game_over
        if self._steps is not None:
            self._steps[slot] = 1
        if self._next_mask is not None:
            self._next_mask[slot] = True
        self._cursor = (slot + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self._stored(slot)

    def _get_state(self) -> dict:
        """The stored transitions, oldest first, as arrays for `np.savez`."""
        if self._layout is None:
            return {"size": np.array(0)}
        order = self._chronological()
        state = {
            "size": np.array(self._size),
            **self._layout.get_state(order),
            "actions": self._actions[order],
            "rewards": self._rewards[order],
            "game_over": self._game_over[order],
        }
        for name in _OPTIONAL_BUFFERS:
            if getattr(self, name) is not None:
                state[name[1:]] = getattr(self, name)[order]
        return state

    def _set_state(self, state: dict) -> None:
        """Restores what `_get_state()` returned."""
        self._free()
        size = int(state["size"])
        if size == 0:
            return
        capacity = size if self._memory_size == -1 else self._memory_size
        capacity = max(capacity, _UNBOUNDED_START) if self._memory_size == -1 else capacity
        keep = slice(max(0, size - capacity), size)
        layout = _FrameOnceStates if "frames" in state else _WholeStates
        self._layout = layout.from_state(state, keep, capacity)
        self._state_shape = self._layout.take(np.zeros(1, np.intp))[0].shape[1:]
        for name in (buffer[1:] for buffer in _BUFFERS):
            if name in state:
                array = state[name][keep]
                buffer = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
                buffer[: len(array)] = array
                setattr(self, f"_{name}", buffer)
        self._size = keep.stop - keep.start
        self._cursor = self._size % capacity

    # -- sampling -----------------------------------------------------------

    def _draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Slots of a batch and their loss weights (`None`: all 1): uniform here."""
        # floor(u * size) with u uniform in [0, 1) is below size and uniform
        # over the slots (to 2**-53); it costs 2.5 us here, rng.integers 8 us.
        return (self.rng.random(batch_size) * self._size).astype(np.intp), None

    def _check_not_empty(self) -> None:
        if self._size == 0:
            raise ValueError("The memory is empty: remember() at least one transition first.")

    def sample(self, batch_size: int) -> Batch:
        """Returns `batch_size` transitions drawn uniformly with replacement.

        Args:
            batch_size: Number of transitions.

        Returns:
            A `Batch` of NumPy arrays in the stored dtypes (`steps` and
            `next_mask` only where some transition had them).

        Raises:
            ValueError: If the memory is empty or `batch_size` is not positive.
        """
        batch_size = _check_batch_size(batch_size)
        self._check_not_empty()
        idx, weights = self._draw(batch_size)  # (batch,)
        states, next_states = self._layout.take(idx)
        steps, mask = self._steps, self._next_mask
        return Batch(
            states,
            self._actions[idx],
            self._rewards[idx],
            next_states,
            self._game_over[idx],
            steps=None if steps is None else steps[idx].astype(np.int32),
            next_mask=None if mask is None else mask[idx],
            weights=weights,
            indices=idx,
        )

    def _sample_into(self, batch: StepBatch, gamma: float = 1.0) -> np.ndarray:
        """`sample()` written into a learner's named batch, with no new batch arrays.

        Fills every field of `batch` (its `next_mask` where it has one), the
        bootstrap discount as `gamma ** steps` (0 at game over). Returns the
        sampled slots.
        """
        self._check_not_empty()
        idx, weights = self._draw(len(batch.states))  # (batch,)
        self._layout.take_into(idx, batch.states, batch.next_states)
        batch.actions[:] = self._actions[idx]
        batch.rewards[:] = self._rewards[idx]
        discount = gamma if self._steps is None else np.float32(gamma) ** self._steps[idx]
        np.multiply(np.logical_not(self._game_over[idx]), discount, out=batch.discounts)
        batch.weights[:] = 1.0 if weights is None else weights
        if batch.next_mask is not None:
            batch.next_mask[:] = True if self._next_mask is None else self._next_mask[idx]
        return idx

    def get_batch(
        self, model: keras.Model, batch_size: int, gamma: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(inputs, targets)` for one step of Q-learning.

        One evaluation of `model` on the stacked `[S; S']` batch gives the
        targets of the whole batch: `r + gamma ** steps * (1 - game_over) *
        max Q(S')` at the action taken (the max over the actions possible in
        `S'` where masks were remembered), and the model's own prediction
        `Q(S)` at every other action, so that any compiled loss trains on the
        TD error only.

        Args:
            model: The Keras Q-model.
            batch_size: Number of transitions, drawn with replacement.
            gamma: Discount factor in [0, 1]. Defaults to 0.9.

        Returns:
            A tuple `(inputs, targets)`: `float32` arrays of shapes
            `(batch_size,) + state_shape` and `(batch_size, nb_actions)`.

        Raises:
            ValueError: If the memory is empty, holds actions of several parts
                (whose branches' targets `Agent.train` computes) or an
                argument is out of range.
        """
        if self._actions is not None and self._actions.ndim == 2:
            raise ValueError(
                "get_batch() computes the targets of one action part; this memory holds "
                f"actions of {self._actions.shape[1]} parts, whose branching targets "
                "Agent.train() computes in its compiled step."
            )
        batch = self.sample(batch_size)
        n = len(batch.actions)
        inputs = np.concatenate([batch.states, batch.next_states]).astype(np.float32)
        q = keras.ops.convert_to_numpy(model(inputs, training=False))  # (2 * batch, nb_actions)
        targets = q[:n].copy()
        steps = 1 if batch.steps is None else batch.steps
        discount = gamma**steps * (1.0 - batch.game_over.astype(np.float32))
        targets[np.arange(n), batch.actions] = bootstrapped_returns(
            batch.rewards, discount, q[n:], batch.next_mask
        )
        return inputs[:n], targets.astype(np.float32)
