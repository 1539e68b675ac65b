"""How `ExperienceReplay` keeps its states: whole, or each frame once.

Both layouts answer to one small interface, so that the memory keeps its
actions, rewards and other columns in its own ring and asks its layout for
the states of some slots:

- `store(slots, s, s_prime, live, dedupe)` writes transitions at ring slots
  (`dedupe`: they span several game steps, see `_FrameOnceStates`);
- `take(idx)` and `take_into(idx, states, next_states)` read them back;
- `relayout(slots, capacity)`, `get_state(order)` and `from_state(...)`
  move, save and restore them; `nbytes` counts their bytes.

`live()` gives, when a layout needs it, the slots whose transitions stay
stored after the current write (the frame ring must not overwrite frames
they use).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

_Live = Callable[[], np.ndarray]
_TABLE_BITS = 16  # 2**16 rows of the frame table: many more than the frames a store looks back on
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / the golden ratio, odd


@functools.cache
def _multipliers(nb_words: int) -> np.ndarray:
    """Fixed odd 64-bit numbers, one per 8-byte word of a frame (`_frame_keys`)."""
    rng = np.random.default_rng(0x51A7E)
    return rng.integers(0, 2**63, nb_words, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _frame_keys(frames: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each frame's bytes `(k,)` uint64: a sum of its 8-byte
    words times fixed odd numbers, wrapping around."""
    data = np.ascontiguousarray(frames).reshape(len(frames), -1).view(np.uint8)
    if data.shape[1] % 8:  # zeros after the last byte, to whole words
        padded = np.zeros((len(data), -(-data.shape[1] // 8) * 8), np.uint8)
        padded[:, : data.shape[1]] = data
        data = padded
    words = data.view(np.uint64)
    return (words * _multipliers(words.shape[1])).sum(axis=1, dtype=np.uint64)


def _rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row of `a` equals the same row of `b`: `(n,)` bool."""
    if not len(a):
        return np.zeros(0, dtype=bool)
    return np.all((a == b).reshape(len(a), -1), axis=1)


class _WholeStates:
    """Each state whole, and of each next state its newest frame only.

    A next state that is not the state shifted by one frame (as the agent's
    frame stacking makes it) is kept whole, in a buffer made the first time
    one comes. For states of one frame, where a frame ring saves nothing.
    """

    def __init__(self, states: np.ndarray, next_frames: np.ndarray):
        self.states = states
        self.next_frames = next_frames
        self.next_full = None  # next states kept whole, and which ones are
        self.is_full = None

    @classmethod
    def allocate(cls, s: np.ndarray, capacity: int) -> _WholeStates:
        shape = s.shape[1:]
        states = np.zeros((capacity,) + shape, s.dtype)
        return cls(states, np.zeros((capacity,) + shape[1:], s.dtype))

    def _buffers(self) -> dict:
        return {
            "states": self.states,
            "next_frames": self.next_frames,
            "next_full": self.next_full,
            "is_full": self.is_full,
        }

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers().values() if b is not None)

    def store(
        self, slots, s: np.ndarray, s_prime: np.ndarray, live: _Live, dedupe: bool = False
    ) -> None:
        self.states[slots] = s
        self.next_frames[slots] = s_prime[:, -1]
        self._store_whole(slots, _rows_equal(s_prime[:, :-1], s[:, 1:]), s_prime)

    def store_one(self, slot: int, s: np.ndarray, s_prime: np.ndarray, live: _Live) -> None:
        self.states[slot] = s
        self.next_frames[slot] = s_prime[-1]
        if len(s) > 1 and not np.array_equal(s_prime[:-1], s[1:]):
            self._store_whole(np.array([slot]), np.array([False]), s_prime[None])
        elif self.is_full is not None:
            self.is_full[slot] = False

    def _store_whole(self, slots, shifted, s_prime) -> None:
        """Keeps the `s_prime` that are not `s` shifted by one frame, whole."""
        if self.is_full is not None:
            self.is_full[slots] = ~shifted
        if shifted.all():
            return
        if self.next_full is None:
            self.next_full = np.zeros_like(self.states)
            self.is_full = np.zeros(len(self.states), dtype=bool)
            self.is_full[slots] = ~shifted
        self.next_full[slots[~shifted]] = s_prime[~shifted]

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        states = self.states[idx]
        next_states = np.concatenate([states[:, 1:], self.next_frames[idx][:, None]], axis=1)
        self._whole_into(idx, next_states)
        return states, next_states

    def take_into(self, idx: np.ndarray, states: np.ndarray, next_states: np.ndarray) -> None:
        if states.dtype == self.states.dtype:
            np.take(self.states, idx, axis=0, out=states, mode="clip")
        else:
            states[:] = self.states[idx]
        if states.shape[1] > 1:
            next_states[:, :-1] = states[:, 1:]
        next_states[:, -1] = self.next_frames[idx]
        self._whole_into(idx, next_states)

    def _whole_into(self, idx, next_states) -> None:
        if self.next_full is not None:
            whole = self.is_full[idx]
            next_states[whole] = self.next_full[idx[whole]]

    def relayout(self, slots: np.ndarray, capacity: int) -> None:
        for name, old in self._buffers().items():
            if old is not None:
                new = np.zeros((capacity,) + old.shape[1:], dtype=old.dtype)
                new[: len(slots)] = old[slots]
                setattr(self, name, new)

    def get_state(self, order: np.ndarray) -> dict:
        return {name: b[order] for name, b in self._buffers().items() if b is not None}

    @classmethod
    def from_state(cls, state: dict, keep: slice, capacity: int) -> _WholeStates:
        def padded(array):
            buffer = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
            buffer[: len(array)] = array
            return buffer

        layout = cls(padded(state["states"][keep]), padded(state["next_frames"][keep]))
        if "next_full" in state:
            layout.next_full = padded(state["next_full"][keep])
            layout.is_full = padded(state["is_full"][keep])
        return layout


class _FrameOnceStates:
    """Each frame once, in a ring of frames; a state is the numbers of its frames.

    Frames are numbered in the order they are stored (`written` is the next
    number) and frame `n` sits at `n % len(frames)`. A transition keeps the
    numbers of the frames of its state and of its next state (`refs` and
    `next_refs`, `(capacity, nb_frames)` each). When a state is the previous
    transition's next state, or the previous state shifted by one frame
    (n-step returns), it reuses those frames, which is checked by comparing
    the frames themselves; a state's repeated frames (a game's first state)
    are stored once. So a game of T moves with 1-step transitions stores
    T + 1 frames, and the ring is 1/64 longer than the memory plus a few.

    Transitions of several steps (n-step returns, `dedupe`) share frames
    beyond the previous transition's: a state's newest frame was the newest
    frame of a next state stored n steps before, and a game's last
    transitions all end in the same next state. Rows of one store need not
    be the rows of the last either (game copies end their games at
    different steps). So their frames are also looked up by content: a
    table keyed by a hash of each frame holds the number of the newest frame
    stored with that key, and a frame equal to the table's (compared whole)
    reuses its number. A game of T moves with n-step transitions then stores
    about T + 1 frames too.

    The ring never overwrites a frame a stored transition uses: before it
    would, it finds the oldest frame in use (`floor`) and grows if it must.
    States come back exact, and no transition is ever left unsampled.
    """

    def __init__(self, refs, next_refs, frames, written: int):
        self.refs = refs
        self.next_refs = next_refs
        self.frames = frames
        self.written = written  # the number the next frame gets
        self.floor = 0  # no stored transition uses a frame numbered below it
        self.intact = 0  # frames numbered from it on are in the ring as stored
        self.last = None  # (refs, next_refs) of the rows of the previous store
        # The store under way uses the frames numbered from it on: those it
        # stored and those it reuses.
        self.store_start = written
        self.table = None  # hash key -> number of the newest frame stored with it

    @staticmethod
    def _slack(capacity: int, nb_frames: int) -> int:
        return capacity // 64 + 4 * nb_frames

    @classmethod
    def allocate(cls, s: np.ndarray, capacity: int) -> _FrameOnceStates:
        nb_frames, frame_shape = s.shape[1], s.shape[2:]
        frames = np.zeros((capacity + cls._slack(capacity, nb_frames),) + frame_shape, s.dtype)
        refs = np.zeros((capacity, nb_frames), np.int64)
        return cls(refs, refs.copy(), frames, 0)

    @property
    def nbytes(self) -> int:
        return self.refs.nbytes + self.next_refs.nbytes + self.frames.nbytes

    # -- the frame ring ---------------------------------------------------------

    def _true_floor(self, live: _Live) -> int:
        floor = self.store_start  # the frames of the store under way are in use
        slots = live()
        if len(slots):
            floor = min(floor, int(self.refs[slots].min()), int(self.next_refs[slots].min()))
        if self.last is not None:
            floor = min(floor, int(self.last[0].min()), int(self.last[1].min()))
        return floor

    def _reserve(self, count: int, live: _Live) -> None:
        """Room for `count` new frames without overwriting one in use."""
        size = len(self.frames)
        if self.written + count - size <= self.floor:
            return
        self.floor = self._true_floor(live)
        needed = self.written + count - self.floor
        if needed > size:
            nb_frames = self.refs.shape[1]
            grown = max(size + size // 2, needed + self._slack(len(self.refs), nb_frames))
            numbers = np.arange(self.floor, self.written)
            frames = np.zeros((grown,) + self.frames.shape[1:], self.frames.dtype)
            frames[numbers % grown] = self.frames[numbers % size]
            self.frames, self.intact = frames, self.floor

    def _add(self, frames: np.ndarray, live: _Live) -> np.ndarray:
        """Stores `frames` `(k,) + frame_shape`; returns their numbers `(k,)`."""
        count = len(frames)
        self._reserve(count, live)
        numbers = self.written + np.arange(count)
        self.frames[numbers % len(self.frames)] = frames
        self.written += count
        self.intact = max(self.intact, self.written - len(self.frames))
        return numbers

    # -- frames looked up by content (dedupe) -------------------------------------

    def _store_frames(self, frames: np.ndarray, live: _Live, dedupe: bool) -> np.ndarray:
        """Stores `frames` `(k,) + frame_shape`; returns their numbers `(k,)`.

        With `dedupe`, a frame equal to one the table knows, still in the
        ring, reuses its number, and equal frames among `frames` are stored
        once.
        """
        if not dedupe or not len(frames):
            return self._add(frames, live)
        if self.table is None:
            self.table = np.full(1 << _TABLE_BITS, -1, np.int64)
        keys = _frame_keys(frames)
        slots = (keys * _GOLDEN) >> np.uint64(64 - _TABLE_BITS)  # the top bits of a product
        numbers = self.table[slots]
        found = numbers >= self.intact  # a frame with the key, still in the ring
        if found.any():
            rows = np.flatnonzero(found)
            same = _rows_equal(self._frames_of(numbers[rows]), frames[rows])
            found[rows[~same]] = False
            if same.any():  # reused: no write of this store may overwrite them
                oldest = int(numbers[rows[same]].min())
                self.store_start = min(self.store_start, oldest)
                self.floor = min(self.floor, oldest)
        rest = np.flatnonzero(~found)
        if not len(rest):
            return numbers
        # A frame equal to the first of the rest with its key is a copy of it.
        _, first, inverse = np.unique(keys[rest], return_index=True, return_inverse=True)
        first_of = rest[first][inverse.ravel()]
        copy = (first_of != rest) & _rows_equal(frames[first_of], frames[rest])
        stored = rest[~copy]
        numbers[stored] = self._add(frames[stored], live)
        numbers[rest[copy]] = numbers[first_of[copy]]
        self.table[slots[stored]] = numbers[stored]
        return numbers

    def _frames_of(self, refs: np.ndarray) -> np.ndarray:
        return self.frames[refs % len(self.frames)]

    def _new_stacks(self, stacks: np.ndarray, live: _Live, dedupe: bool) -> np.ndarray:
        """Stores the frames of `stacks` `(r, nb_frames, ...)`, each run of equal
        neighbours once; returns their numbers `(r, nb_frames)`."""
        r, nb_frames = stacks.shape[:2]
        new = np.ones((r, nb_frames), dtype=bool)
        if nb_frames > 1:
            new[:, 1:] = ~np.all(
                (stacks[:, 1:] == stacks[:, :-1]).reshape(r, nb_frames - 1, -1), axis=2
            )
        numbers = self._store_frames(stacks[new], live, dedupe)  # in row-major order
        return numbers[np.cumsum(new).reshape(r, nb_frames) - 1]

    # -- the interface ----------------------------------------------------------

    def _refs_of(self, stacks: np.ndarray, options: list, live: _Live, dedupe: bool) -> np.ndarray:
        """Numbers of the frames of `stacks` `(n, nb_frames, ...)`, storing what is new.

        Each option is `(shifted, refs)`, the numbers of some stacks, one per
        row of `stacks` from the first (fewer rows is fine). A stack equal to
        its row's option reuses its frames; with `shifted`, a stack whose
        first frames are the option's last reuses those and stores its
        newest. The first option that fits a row counts. The other stacks
        store their frames, each run of equal neighbours once.
        """
        n, nb_frames = stacks.shape[:2]
        refs = np.empty((n, nb_frames), np.int64)
        todo = np.ones(n, dtype=bool)
        for shifted, option in options:
            rows = np.flatnonzero(todo[: len(option)])
            if not len(rows):
                continue
            if shifted:
                rows = rows[_rows_equal(self._frames_of(option[rows, 1:]), stacks[rows, :-1])]
                refs[rows, :-1] = option[rows, 1:]
                refs[rows, -1] = self._store_frames(stacks[rows, -1], live, dedupe)
            else:
                rows = rows[_rows_equal(self._frames_of(option[rows]), stacks[rows])]
                refs[rows] = option[rows]
            todo[rows] = False
        rows = np.flatnonzero(todo)
        if len(rows):
            refs[rows] = self._new_stacks(stacks[rows], live, dedupe)
        return refs

    def store(
        self, slots, s: np.ndarray, s_prime: np.ndarray, live: _Live, dedupe: bool = False
    ) -> None:
        dtype = self.frames.dtype
        s, s_prime = s.astype(dtype, copy=False), s_prime.astype(dtype, copy=False)
        self.store_start = self.written
        # 1-step transitions: s is the row's previous s_prime, s_prime is s
        # shifted. n-step ones: s and s_prime are the previous ones shifted.
        last_refs, last_next = self.last if self.last is not None else (self.refs[:0],) * 2
        refs = self._refs_of(s, [(False, last_next), (True, last_refs)], live, dedupe)
        next_refs = self._refs_of(s_prime, [(True, refs), (True, last_next)], live, dedupe)
        self.refs[slots] = refs
        self.next_refs[slots] = next_refs
        self.last = (refs, next_refs)

    def store_one(self, slot: int, s: np.ndarray, s_prime: np.ndarray, live: _Live) -> None:
        # One game's next move, without batch arrays: s is the last s_prime,
        # s_prime is s shifted by one frame.
        last = self.last
        if (
            last is not None
            and len(last[1]) == 1
            and s.dtype == self.frames.dtype
            and np.array_equal(self._frames_of(last[1][0]), s)
            and np.array_equal(s_prime[:-1], s[1:])
        ):
            self.store_start = self.written
            refs = last[1][0]
            next_refs = np.empty_like(refs)
            next_refs[:-1] = refs[1:]
            next_refs[-1] = self._add(s_prime[None, -1], live)[0]
            self.refs[slot], self.next_refs[slot] = refs, next_refs
            self.last = (refs[None], next_refs[None])
            return
        self.store(np.array([slot]), s[None], s_prime[None], live)  # 1-step: no dedupe

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._frames_of(self.refs[idx]), self._frames_of(self.next_refs[idx])

    def take_into(self, idx: np.ndarray, states: np.ndarray, next_states: np.ndarray) -> None:
        size = len(self.frames)
        at = self.refs[idx] % size  # (batch, nb_frames)
        if states.dtype == self.frames.dtype:
            np.take(self.frames, at, axis=0, out=states, mode="clip")
        else:
            states[:] = self.frames[at]
        next_at = self.next_refs[idx] % size
        if at.shape[1] > 1 and np.array_equal(next_at[:, :-1], at[:, 1:]):
            next_states[:, :-1] = states[:, 1:]  # as the agent stacks frames
            next_states[:, -1] = self.frames[next_at[:, -1]]
        else:
            next_states[:] = self.frames[next_at]

    def relayout(self, slots: np.ndarray, capacity: int) -> None:
        for name in ("refs", "next_refs"):
            new = np.zeros((capacity,) + getattr(self, name).shape[1:], np.int64)
            new[: len(slots)] = getattr(self, name)[slots]
            setattr(self, name, new)
        # A memory made smaller gives back the frames it no longer needs. The
        # next store then shares no frames with the one before: one more stack.
        self.last = None
        kept = self.refs[: len(slots)], self.next_refs[: len(slots)]
        low = min(int(k.min()) for k in kept) if len(slots) else self.written
        size = self.written - low + self._slack(capacity, self.refs.shape[1])
        if 2 * size < len(self.frames):
            numbers = np.arange(low, self.written)
            frames = np.zeros((size,) + self.frames.shape[1:], self.frames.dtype)
            frames[numbers % size] = self._frames_of(numbers)
            self.frames, self.floor, self.intact = frames, low, low

    def get_state(self, order: np.ndarray) -> dict:
        """The frames the transitions at `order` use, and their numbers from 0."""
        refs, next_refs = self.refs[order], self.next_refs[order]
        low = int(min(refs.min(), next_refs.min())) if len(order) else self.written
        return {
            "frames": self._frames_of(np.arange(low, self.written)),
            "frame_refs": refs - low,
            "next_frame_refs": next_refs - low,
        }

    @classmethod
    def from_state(cls, state: dict, keep: slice, capacity: int) -> _FrameOnceStates:
        kept = state["frame_refs"][keep], state["next_frame_refs"][keep]
        low = int(min(kept[0].min(), kept[1].min()))
        frames = state["frames"][low:]
        nb_frames = kept[0].shape[1]
        ring = np.zeros(
            (max(len(frames), capacity) + cls._slack(capacity, nb_frames),) + frames.shape[1:],
            frames.dtype,
        )
        ring[: len(frames)] = frames
        refs = [np.zeros((capacity, nb_frames), np.int64) for _ in kept]
        for buffer, array in zip(refs, kept, strict=True):
            buffer[: len(array)] = array - low
        return cls(refs[0], refs[1], ring, len(frames))
