"""Replay memories: the `Memory` contract and the `ExperienceReplay` ring buffer."""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np

from qlearning4k._checks import _check_batch_size, _check_memory_size

_UNBOUNDED_START = 1024  # first capacity of an unbounded memory; it doubles


class Batch(NamedTuple):
    """A batch of transitions sampled from a memory.

    Attributes:
        states: `(batch_size,) + state_shape`, in the dtype the game gave.
        actions: `(batch_size,)` `int32`.
        rewards: `(batch_size,)` `float32`.
        next_states: `(batch_size,) + state_shape`, like `states`.
        game_over: `(batch_size,)` `bool`.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    game_over: np.ndarray


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

    def remember(self, s, a, r, s_prime, game_over) -> None:
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

    def get_batch(self, model: keras.Model, batch_size: int, gamma: float = 0.9):
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
    `uint8` frames). A stacked state `s_prime` whose first frames are the last
    frames of `s` (as the agent's frame stacking always makes it) is stored
    as its newest frame only, so a transition of Snake with 4 frames takes
    about 500 bytes instead of the 6,400 of two `float64` states. Any other
    `s_prime` is stored whole, in a buffer made the first time one comes.
    Sampling is uniform, with replacement, by fancy indexing.

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

    def __init__(self, memory_size: int = 100, seed: int | None = None):
        self._memory_size = _check_memory_size(memory_size)
        self.rng = np.random.default_rng(seed)
        self._free()

    def _free(self) -> None:
        self._states = None
        self._next_frames = None
        self._next_full = None  # lazily: s_prime stored whole
        self._is_full = None
        self._actions = None
        self._rewards = None
        self._game_over = None
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
        if self._states is None:
            return
        keep = self._size if memory_size == -1 else min(self._size, memory_size)
        capacity = max(keep, _UNBOUNDED_START) if memory_size == -1 else memory_size
        self._relayout(self._chronological()[self._size - keep :], capacity)

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Number of transitions the buffers hold now (0 before any)."""
        return 0 if self._states is None else len(self._states)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        buffers = (
            self._states,
            self._next_frames,
            self._next_full,
            self._is_full,
            self._actions,
            self._rewards,
            self._game_over,
        )
        return sum(b.nbytes for b in buffers if b is not None)

    def reset_memory(self) -> None:
        """Forgets every transition and frees the buffers."""
        self._free()

    # -- storage ------------------------------------------------------------

    def _allocate(self, s: np.ndarray, capacity: int) -> None:
        state_shape = s.shape[1:]
        self._states = np.zeros((capacity,) + state_shape, dtype=s.dtype)
        self._next_frames = np.zeros((capacity,) + state_shape[1:], dtype=s.dtype)
        self._actions = np.zeros(capacity, dtype=np.int32)
        self._rewards = np.zeros(capacity, dtype=np.float32)
        self._game_over = np.zeros(capacity, dtype=bool)

    def _chronological(self) -> np.ndarray:
        """Slots of the stored transitions, oldest first."""
        start = self._cursor - self._size
        return (start + np.arange(self._size)) % self.capacity

    def _relayout(self, slots: np.ndarray, capacity: int) -> None:
        """Moves the transitions at `slots` into new buffers of `capacity`."""
        names = ("_states", "_next_frames", "_next_full", "_is_full", "_actions")
        for name in names + ("_rewards", "_game_over"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.zeros((capacity,) + old.shape[1:], dtype=old.dtype)
            new[: len(slots)] = old[slots]
            setattr(self, name, new)
        self._size = len(slots)
        self._cursor = self._size % capacity

    def remember(self, s, a, r, s_prime, game_over) -> None:
        """Stores `n` transitions, overwriting the oldest when full.

        Args:
            s: States before the actions, shape `(n,) + state_shape`, where
                `state_shape[0]` is the frame axis. The first call fixes
                `state_shape` and the dtype.
            a: Actions taken: an int or `n` ints.
            r: Rewards received: a number or `n` finite numbers.
            s_prime: States after the actions, shaped like `s`.
            game_over: Whether each transition ended its game: a bool or `n`.

        Raises:
            ValueError: If shapes disagree with each other or with the first
                call, or if a reward is not finite.
        """
        s = np.asarray(s)
        s_prime = np.asarray(s_prime, dtype=s.dtype)
        if s.ndim < 2 or s.shape != s_prime.shape:
            raise ValueError(
                "remember() expects s and s_prime of one shape (n,) + state_shape, with a "
                f"leading batch axis. Received: s.shape={s.shape}, s_prime.shape={s_prime.shape}"
            )
        if self._states is None:
            bounded = self._memory_size != -1
            self._allocate(s, self._memory_size if bounded else max(_UNBOUNDED_START, len(s)))
        elif s.shape[1:] != self._states.shape[1:]:
            raise ValueError(
                f"remember() expects states of shape (n,) + {self._states.shape[1:]} as "
                f"before. Received: s.shape={s.shape}"
            )
        n = s.shape[0]
        if n == 1 and np.size(a) == 1 and np.size(r) == 1 and np.size(game_over) == 1:
            one = (np.ravel(x)[0] if np.ndim(x) else x for x in (a, r, game_over))
            self._remember_one(s[0], next(one), next(one), s_prime[0], next(one))
            return
        a = np.broadcast_to(np.asarray(a, dtype=np.int32), (n,))
        r = np.broadcast_to(np.asarray(r, dtype=np.float32), (n,))
        game_over = np.broadcast_to(np.asarray(game_over, dtype=bool), (n,))
        if not np.isfinite(r).all():
            raise ValueError(f"remember() expects finite rewards. Received: r={r}")
        if self._memory_size == -1 and self._size + n > self.capacity:
            self._relayout(self._chronological(), max(2 * self.capacity, self._size + n))
        capacity = self.capacity
        if n > capacity:  # only the newest `capacity` transitions survive
            s, s_prime, a, r, game_over = (x[-capacity:] for x in (s, s_prime, a, r, game_over))
            n = capacity
        slots = (self._cursor + np.arange(n)) % capacity  # (n,)
        self._states[slots] = s
        self._next_frames[slots] = s_prime[:, -1]
        self._actions[slots] = a
        self._rewards[slots] = r
        self._game_over[slots] = game_over
        # s_prime is s shifted by one frame plus its newest frame, unless not.
        shifted = np.all((s_prime[:, :-1] == s[:, 1:]).reshape(n, -1), axis=1)  # (n,)
        self._store_whole(slots, shifted, s_prime)
        self._cursor = (self._cursor + n) % capacity
        self._size = min(self._size + n, capacity)

    def _remember_one(self, s, a, r, s_prime, game_over) -> None:
        """`remember()` of a single transition, without batch arrays."""
        r = float(r)
        if not math.isfinite(r):
            raise ValueError(f"remember() expects finite rewards. Received: r={r}")
        if self._memory_size == -1 and self._size == self.capacity:
            self._relayout(self._chronological(), 2 * self.capacity)
        slot = self._cursor
        self._states[slot] = s
        self._next_frames[slot] = s_prime[-1]
        self._actions[slot] = a
        self._rewards[slot] = r
        self._game_over[slot] = game_over
        if len(s) > 1 and not np.array_equal(s_prime[:-1], s[1:]):
            self._store_whole(np.array([slot]), np.array([False]), s_prime[None])
        elif self._is_full is not None:
            self._is_full[slot] = False
        self._cursor = (slot + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def _store_whole(self, slots, shifted, s_prime) -> None:
        """Keeps the `s_prime` that are not `s` shifted by one frame, whole."""
        if self._is_full is not None:
            self._is_full[slots] = ~shifted
        if shifted.all():
            return
        if self._next_full is None:
            self._next_full = np.zeros_like(self._states)
            self._is_full = np.zeros(self.capacity, dtype=bool)
            self._is_full[slots] = ~shifted
        self._next_full[slots[~shifted]] = s_prime[~shifted]

    def _get_state(self) -> dict:
        """The stored transitions, oldest first, as arrays for `np.savez`."""
        if self._states is None:
            return {"size": np.array(0)}
        order = self._chronological()
        state = {
            "size": np.array(self._size),
            "states": self._states[order],
            "next_frames": self._next_frames[order],
            "actions": self._actions[order],
            "rewards": self._rewards[order],
            "game_over": self._game_over[order],
        }
        if self._next_full is not None:
            state["next_full"] = self._next_full[order]
            state["is_full"] = self._is_full[order]
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
        names = ("states", "next_frames", "actions", "rewards", "game_over", "next_full", "is_full")
        for name in names:
            if name in state:
                array = state[name][keep]
                buffer = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
                buffer[: len(array)] = array
                setattr(self, f"_{name}", buffer)
        self._size = keep.stop - keep.start
        self._cursor = self._size % capacity

    # -- sampling -----------------------------------------------------------

    def sample(self, batch_size: int) -> Batch:
        """Returns `batch_size` transitions drawn uniformly with replacement.

        Args:
            batch_size: Number of transitions.

        Returns:
            A `Batch` of NumPy arrays in the stored dtypes.

        Raises:
            ValueError: If the memory is empty or `batch_size` is not positive.
        """
        batch_size = _check_batch_size(batch_size)
        if self._size == 0:
            raise ValueError("The memory is empty: remember() at least one transition first.")
        idx = self.rng.integers(0, self._size, size=batch_size)  # (batch,)
        states = self._states[idx]
        next_states = np.concatenate([states[:, 1:], self._next_frames[idx][:, None]], axis=1)
        if self._next_full is not None:
            whole = self._is_full[idx]
            next_states[whole] = self._next_full[idx[whole]]
        return Batch(
            states, self._actions[idx], self._rewards[idx], next_states, self._game_over[idx]
        )

    def _sample_into(self, states: np.ndarray, next_states: np.ndarray, floats: np.ndarray):
        """`sample()` written into the agent's call arrays, with no new batch arrays.

        `floats` gets action, reward and game over in its first three columns.
        """
        if self._size == 0:
            raise ValueError("The memory is empty: remember() at least one transition first.")
        idx = self.rng.integers(0, self._size, size=len(states))  # (batch,)
        if states.dtype == self._states.dtype:
            np.take(self._states, idx, axis=0, out=states, mode="clip")
        else:
            states[:] = self._states[idx]
        next_states[:, :-1] = states[:, 1:]
        next_states[:, -1] = self._next_frames[idx]
        if self._next_full is not None:
            whole = self._is_full[idx]
            next_states[whole] = self._next_full[idx[whole]]
        floats[:, 0] = self._actions[idx]
        floats[:, 1] = self._rewards[idx]
        floats[:, 2] = self._game_over[idx]

    def get_batch(self, model: keras.Model, batch_size: int, gamma: float = 0.9):
        """Returns `(inputs, targets)` for one step of Q-learning.

        One evaluation of `model` on the stacked `[S; S']` batch gives the
        targets of the whole batch: `r + gamma * (1 - game_over) * max Q(S')`
        at the action taken, and the model's own prediction `Q(S)` at every
        other action, so that any compiled loss trains on the TD error only.

        Args:
            model: The Keras Q-model.
            batch_size: Number of transitions, drawn with replacement.
            gamma: Discount factor in [0, 1]. Defaults to 0.9.

        Returns:
            A tuple `(inputs, targets)`: `float32` arrays of shapes
            `(batch_size,) + state_shape` and `(batch_size, nb_actions)`.

        Raises:
            ValueError: If the memory is empty or an argument is out of range.
        """
        batch = self.sample(batch_size)
        n = len(batch.actions)
        inputs = np.concatenate([batch.states, batch.next_states]).astype(np.float32)
        q = keras.ops.convert_to_numpy(model(inputs, training=False))  # (2 * batch, nb_actions)
        targets = q[:n].copy()
        not_over = 1.0 - batch.game_over.astype(np.float32)
        targets[np.arange(n), batch.actions] = batch.rewards + gamma * not_over * q[n:].max(axis=1)
        return inputs[:n], targets.astype(np.float32)
