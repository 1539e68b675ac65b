"""`SequenceReplay`: replay of overlapping sequences with stored recurrent states (R2D2)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checks import _check_batch_size, _check_memory_size, _check_positive_int
from qlearning4k._learner import SequenceBatch, SequenceConfig
from qlearning4k.memory import Memory
from qlearning4k.prioritized_replay import _SumTree


class SequenceReplay(Memory):
    """Replay of overlapping sequences of a recurrent agent's games, as R2D2 stores them.

    A recurrent agent (a model built by `qlearning4k.recurrent`, or written
    to its contract) learns from sequences of `sequence_length` steps of one
    game, each with the recurrent state the agent had at its first step
    (Kapturowski et al., "Recurrent Experience Replay in Distributed
    Reinforcement Learning", ICLR 2019). Learning unrolls the network from
    that stored state over the first `burn_in` steps without gradient, which
    refreshes the stale state, and learns on the other
    `sequence_length - burn_in` steps. Sequences of a game start every
    `sequence_length - overlap` steps, so each step is learned at least
    once: `burn_in <= overlap <= sequence_length - burn_in`. The first
    sequence of a game learns from its first step: its state is the game's
    first (zero) state, exact, and needs no burn-in. A game that ends
    mid-sequence pads it (those steps are not learned); a game stopped by a
    time limit bootstraps from its last frame.

    Each frame is stored once, in a ring of frames with each step's action,
    reward and end; a sequence is the indices of its frames, its stored
    state, and (with `prioritized`) its priority. The n-step returns are
    computed when a batch is sampled, inside each sequence.

    Args:
        memory_size: Steps (frames) kept; sequences whose frames were
            overwritten are no longer sampled. Stored states age as the
            network learns: where the task's memory spans sequences, keep
            it a small share of the run (R2D2's regime). Defaults to 100,000.
        sequence_length: Steps per sequence, the burn-in included. Defaults
            to 120: R2D2's 80 learned steps after its burn-in prefix of 40.
        burn_in: Steps replayed without gradient before learning. Defaults
            to 40 (R2D2's).
        overlap: Steps two consecutive sequences of a game share. Defaults
            to 80: R2D2's sequences of 80 steps overlap by 40, so one starts
            every 40 steps.
        prioritized: Whether sequences are sampled by priority: R2D2's mix
            `eta * max|TD| + (1 - eta) * mean|TD|` of the sequence's TD
            errors, to the power `alpha`, with importance-sampling weights
            `(N * P) ** -beta` (divided by the batch's largest). Defaults to
            `False`.
        alpha: Priority exponent. Defaults to 0.9 (R2D2's).
        beta: Importance-sampling exponent. Defaults to 0.6 (R2D2's).
        eta: Share of the max in a sequence's priority. Defaults to 0.9.
        stored_state: Whether a sequence starts from the recurrent state the
            agent had when it played it (R2D2's stored state) or from the
            zero state (DRQN's; R2D2's ablation). Defaults to `True`.
        seed: Seed of the memory's random generator. Defaults to `None`.

    Raises:
        ValueError: If `sequence_length` is not above `burn_in`, or the
            overlap leaves steps that no sequence learns or needs a partial
            burn-in (see above), or a number is out of its range.

    Example:

    ```python
    memory = SequenceReplay(50_000, sequence_length=20, burn_in=5, overlap=10, seed=0)
    agent = Agent(recurrent_model, memory=memory)
    ```
    """

    def __init__(
        self,
        memory_size: int = 100_000,
        sequence_length: int = 120,
        burn_in: int = 40,
        overlap: int = 80,
        prioritized: bool = False,
        alpha: float = 0.9,
        beta: float = 0.6,
        eta: float = 0.9,
        stored_state: bool = True,
        seed: int | None = None,
    ):
        memory_size = _check_memory_size(memory_size)
        if memory_size == -1:
            raise ValueError(
                "SequenceReplay keeps a fixed number of steps. Received: memory_size=-1"
            )
        self._memory_size = memory_size
        self.sequence_length = _check_positive_int("sequence_length", sequence_length)
        self.burn_in = _check_count("burn_in", burn_in)
        self.overlap = _check_count("overlap", overlap)
        if self.burn_in >= self.sequence_length:
            raise ValueError(
                "sequence_length must be above burn_in (the steps after the burn-in are "
                f"learned). Received: sequence_length={sequence_length}, burn_in={burn_in}"
            )
        learned = self.sequence_length - self.burn_in
        if not self.burn_in <= self.overlap <= learned:
            raise ValueError(
                "SequenceReplay needs burn_in <= overlap <= sequence_length - burn_in: with a "
                "smaller overlap some steps are never learned, with a larger one a sequence "
                "would start inside another's burn-in. Received: "
                f"sequence_length={sequence_length}, burn_in={burn_in}, overlap={overlap}"
            )
        for name, value in (("prioritized", prioritized), ("stored_state", stored_state)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
        self.stored_state = stored_state
        for name, value in (("alpha", alpha), ("beta", beta), ("eta", eta)):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
        self.prioritized, self.alpha, self.beta, self.eta = prioritized, alpha, beta, eta
        self.rng = np.random.default_rng(seed)
        self._free()

    @property
    def period(self) -> int:
        """Steps between the starts of two sequences of a game."""
        return self.sequence_length - self.overlap

    @property
    def learned(self) -> int:
        """Steps a sequence learns on (after its burn-in)."""
        return self.sequence_length - self.burn_in

    @property
    def memory_size(self) -> int:
        """Steps kept (fixed when the memory is made)."""
        return self._memory_size

    @memory_size.setter
    def memory_size(self, value: int) -> None:
        raise ValueError(
            "A SequenceReplay keeps the number of steps it was made with: make another one "
            f"(SequenceReplay({value}, ...)) for another size. Received: memory_size={value}"
        )

    def _config(self) -> dict:
        """The constructor's arguments, for saving."""
        names = ("sequence_length", "burn_in", "overlap", "prioritized", "alpha", "beta", "eta",
                 "stored_state")  # fmt: skip
        return {name: getattr(self, name) for name in names}

    def _sequence_config(self, state_sizes: tuple[int, ...]) -> SequenceConfig:
        """What the learner's compiled step needs to know of these sequences."""
        return SequenceConfig(self.sequence_length, self.burn_in, tuple(state_sizes))

    def _free(self) -> None:
        self._frames = None  # the ring of frames, made with the first step
        self._written = 0  # frames written since the start (slot = count % capacity)
        self._size = 0  # sequences stored
        self._cursor = 0
        self._tree = None
        self.max_priority = 1.0

    def reset_memory(self) -> None:
        """Forgets every step and sequence (the games in progress too)."""
        self._free()

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        if self._frames is None:
            return 0
        arrays = [getattr(self, name) for name in _STEP_ARRAYS + _SEQUENCE_ARRAYS + _COPY_ARRAYS]
        tree = 0 if self._tree is None else self._tree.nodes.nbytes
        return sum(a.nbytes for a in arrays if a is not None) + tree

    # -- storage ------------------------------------------------------------

    def _allocate(self, frames: np.ndarray, nb_copies: int, state_size: int, nb_actions) -> None:
        length = self.sequence_length
        # Frames of games in progress stay until their sequences are out.
        capacity = self._memory_size + nb_copies * (length + 1)
        self._frames = np.zeros((capacity,) + frames.shape[1:], dtype=frames.dtype)
        self._actions = np.zeros(capacity, np.int32)
        self._rewards = np.zeros(capacity, np.float32)
        self._terminal = np.zeros(capacity, bool)
        self._masks = None if nb_actions is None else np.ones((capacity, nb_actions), bool)
        nb_sequences = -(-self._memory_size // self.period) + nb_copies
        self._slots = np.zeros((nb_sequences, length + 1), np.int32)
        self._states = np.zeros((nb_sequences, state_size), np.float32)
        self._fresh = np.zeros(nb_sequences, bool)
        self._lengths = np.zeros(nb_sequences, np.int32)  # learned steps that were played
        self._oldest = np.zeros(nb_sequences, np.int64)  # the count of the first frame
        if self.prioritized:
            self._tree = _SumTree(nb_sequences)
        # Each game in progress: its last length + 1 frames' slots and states, a ring.
        self._recent = np.zeros((nb_copies, length + 1), np.int64)  # frame counts
        self._recent_states = np.zeros((nb_copies, length + 1, state_size), np.float32)
        self._step = np.zeros(nb_copies, np.int64)  # frames of the game so far
        self._next = np.zeros(nb_copies, np.int64)  # the next sequence's first learned step
        self._pending_mask = None if nb_actions is None else np.ones((nb_copies, nb_actions), bool)

    def _write(self, frames: np.ndarray) -> np.ndarray:
        """Writes frames in the ring; returns their counts."""
        counts = self._written + np.arange(len(frames))
        self._frames[counts % len(self._frames)] = frames
        self._written += len(frames)
        return counts

    def _remember_steps(
        self, copies, frames, states, actions, rewards, terminal, ended, last_frames, masks=None
    ) -> None:
        """Stores one move of each copy in `copies`, the training run's way.

        `frames` `(k,) + frame_shape` are the frames the copies moved from,
        `states` `(k, state_size)` the recurrent states before those frames,
        `actions`, `rewards`, `terminal` (a real game over, not a time limit)
        and `ended` (the game ended, either way) one a copy. `last_frames`
        are the frames after the move, stored for the copies whose game
        ended; `masks` `(k, nb_actions)` the actions possible after the move.
        """
        copies = np.asarray(copies)
        if self._frames is None:
            raise ValueError("_remember_steps() needs _start() first")
        counts = self._write(frames)
        slots = counts % len(self._frames)
        self._actions[slots] = np.asarray(actions).reshape(len(copies))
        self._rewards[slots] = rewards
        self._terminal[slots] = terminal
        if self._masks is not None:
            self._masks[slots] = self._pending_mask[copies]
            if masks is not None:
                self._pending_mask[copies] = masks
        ring = self._step[copies] % (self.sequence_length + 1)
        self._recent[copies, ring] = counts
        self._recent_states[copies, ring] = states
        self._step[copies] += 1
        # A sequence is complete once its bootstrap frame is here.
        self._emit(copies[self._step[copies] - 1 == self._next[copies] + self.learned])
        if np.any(ended):
            done = copies[np.asarray(ended, bool)]
            last = self._write(np.asarray(last_frames)[np.asarray(ended, bool)])
            if self._masks is not None:
                self._masks[last % len(self._frames)] = self._pending_mask[done]
            ring = self._step[done] % (self.sequence_length + 1)
            self._recent[done, ring] = last
            while True:  # the sequences that hold played steps not yet learned
                left = done[self._next[done] < self._step[done]]
                if not len(left):
                    break
                self._emit(left, self._step[left])
            self._step[done] = 0
            self._next[done] = 0
            if self._pending_mask is not None:
                self._pending_mask[done] = True

    def _start(
        self, frames: np.ndarray, nb_copies: int, state_size: int, nb_actions: int | None = None
    ) -> None:
        """Makes the buffers for `nb_copies` copies of a game, if not made (the run calls it).

        Args:
            frames: A batch of frames `(n,) + frame_shape` in the game's dtype.
            nb_copies: Copies of the game that play at once.
            state_size: Floats of a recurrent state.
            nb_actions: Width of the masks of possible actions, or `None`
                for a game that allows every action.

        Raises:
            ValueError: If the buffers were made for other shapes.
        """
        if self._frames is None:
            self._allocate(frames, nb_copies, state_size, nb_actions)
            return
        made = (self._frames.shape[1:], len(self._step), self._states.shape[1])
        wanted = (frames.shape[1:], nb_copies, state_size)
        if made != wanted:
            raise ValueError(
                "This SequenceReplay holds games of other shapes: (frame_shape, nb_copies, "
                f"state_size) {made}. Received: {wanted}. Call reset_memory() to start afresh."
            )

    def _begin_games(self) -> None:
        """New games start in every copy: those in progress are left as they are
        (their complete sequences are stored), and their moves no longer come."""
        self._step[:] = 0
        self._next[:] = 0
        if self._pending_mask is not None:
            self._pending_mask[:] = True

    def _emit(self, copies: np.ndarray, ends: np.ndarray | None = None) -> None:
        """Stores the next sequence of each of `copies`; `ends`: the frames played
        of games that ended (`None`: the sequences are complete)."""
        if not len(copies):
            return
        length, burn, modulo = self.sequence_length, self.burn_in, self.sequence_length + 1
        first = self._next[copies] - burn  # the step of the first column, < 0 when fresh
        steps = first[:, None] + np.arange(length + 1)  # (k, length + 1)
        if ends is not None:  # padding after the game's last frame repeats it
            steps = np.minimum(steps, ends[:, None])
        fresh = first < 0
        steps = np.maximum(steps, 0)  # a fresh sequence's burn-in columns: its first frame
        counts = self._recent[copies[:, None], steps % modulo]
        n = len(copies)
        rows = (self._cursor + np.arange(n)) % len(self._slots)
        self._slots[rows] = counts % len(self._frames)
        start = steps[:, 0] % modulo
        zero = fresh[:, None] | (not self.stored_state)
        self._states[rows] = np.where(zero, 0.0, self._recent_states[copies, start])
        self._fresh[rows] = fresh
        played = self.learned if ends is None else ends - self._next[copies]
        self._lengths[rows] = np.minimum(played, self.learned)
        self._oldest[rows] = counts[:, 0]
        if self._tree is not None:
            self._tree.update(rows, np.full(n, self.max_priority))
        self._cursor = (self._cursor + n) % len(self._slots)
        self._size = min(self._size + n, len(self._slots))
        self._next[copies] += self.period

    def remember(self, s, a, r, s_prime, game_over) -> None:
        """Not used: a recurrent agent stores whole moves through its training run."""
        raise TypeError(
            "SequenceReplay stores the moves of a recurrent agent's games as its training run "
            "plays them (with their recurrent states); it has no remember() of transitions."
        )

    def get_batch(self, model, batch_size: int, gamma: float = 0.9):
        """Not used: a recurrent agent learns in its compiled step."""
        raise TypeError(
            "SequenceReplay feeds a recurrent agent's compiled step; it has no get_batch()."
        )

    # -- sampling -----------------------------------------------------------

    def _draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Sequences of a batch, none of whose frames were overwritten, and their weights."""
        oldest_kept = self._written - len(self._frames)
        rows = np.empty(batch_size, np.int64)
        todo = np.arange(batch_size)
        for _ in range(100):
            if self._tree is None:
                drawn = (self.rng.random(len(todo)) * self._size).astype(np.int64)
            else:
                total = self._tree.total
                mass = (todo + self.rng.random(len(todo))) * (total / batch_size)
                drawn = np.minimum(self._tree.find(mass), self._size - 1)
            rows[todo] = drawn
            stale = self._oldest[drawn] < oldest_kept
            if not stale.any():
                break
            if self._tree is not None:
                self._tree.update(drawn[stale], np.zeros(int(stale.sum())))
            todo = todo[stale]
        if self._tree is None:
            return rows, None
        probabilities = self._tree.nodes[self._tree.size + rows] / self._tree.total
        weights = (self._size * np.maximum(probabilities, 1e-12)) ** -self.beta
        return rows, (weights / weights.max()).astype(np.float32)

    def _sample_into(self, batch: SequenceBatch, gamma: float, n_step: int = 1) -> np.ndarray:
        """Fills `batch` with sampled sequences and their n-step targets' parts.

        Returns the sampled rows (for `update_priorities`).
        """
        if self._size == 0:
            raise ValueError("The memory is empty: play at least one sequence first.")
        size = len(batch.frames)
        rows, weights = self._draw(size)
        slots = self._slots[rows]  # (batch, length + 1)
        batch.frames[...] = self._frames[slots]
        batch.states[...] = self._states[rows]
        batch.fresh[...] = self._fresh[rows]
        learned = slots[:, self.burn_in : self.sequence_length]  # (batch, learned)
        batch.actions[...] = self._actions[learned]
        rewards, terminal = self._rewards[learned], self._terminal[learned]
        played = np.arange(self.learned) < self._lengths[rows][:, None]  # (batch, learned)
        _n_step_targets(rewards, terminal, played, gamma, n_step, batch)
        batch.weights[...] = played * (1.0 if weights is None else weights[:, None])
        if batch.next_mask is not None:
            columns = self.burn_in + batch.bootstrap.astype(np.int64)  # (batch, learned)
            next_slots = np.take_along_axis(slots, columns, axis=1)
            batch.next_mask[...] = True if self._masks is None else self._masks[next_slots]
        return rows

    def sample(self, batch_size: int):
        """Not used: sequences are sampled into the compiled step's batch."""
        _check_batch_size(batch_size)
        raise TypeError("SequenceReplay samples sequences into a recurrent agent's compiled step.")

    def update_priorities(self, indices: ArrayLike, td_errors: ArrayLike) -> None:
        """Sets the priorities of sampled sequences from their steps' TD errors.

        Args:
            indices: The sampled rows, `(batch,)`.
            td_errors: Their steps' TD errors, `(batch * learned,)` (those of
                steps not played are ignored).
        """
        if self._tree is None:
            return
        rows = np.asarray(indices, np.int64)
        td = np.abs(np.asarray(td_errors, np.float64)).reshape(len(rows), self.learned)
        lengths = np.maximum(self._lengths[rows], 1)
        td *= np.arange(self.learned) < lengths[:, None]  # padding's errors are no errors
        mix = self.eta * td.max(axis=1) + (1 - self.eta) * td.sum(axis=1) / lengths
        priorities = (mix + 1e-6) ** self.alpha
        self._tree.update(rows, priorities)
        self.max_priority = max(self.max_priority, float(priorities.max()))

    # -- saving -------------------------------------------------------------

    def _get_state(self) -> dict:
        """The buffers and the games in progress, as arrays for `np.savez`."""
        if self._frames is None:
            return {"size": np.array(0)}
        arrays = ((name[1:], getattr(self, name)) for name in _ALL_ARRAYS)
        state = {name: array for name, array in arrays if array is not None}
        counters = ("size", "cursor", "written")
        state.update({name: np.array(getattr(self, "_" + name)) for name in counters})
        state["max_priority"] = np.array(self.max_priority)
        if self._tree is not None:
            state["priorities"] = self._tree.leaves(len(self._slots))
        return state

    def _set_state(self, state: dict) -> None:
        """Restores what `_get_state()` returned."""
        self._free()
        if int(state["size"]) == 0 and "frames" not in state:
            return
        for name in _ALL_ARRAYS:
            setattr(self, name, np.array(state[name[1:]]) if name[1:] in state else None)
        self._size, self._cursor = int(state["size"]), int(state["cursor"])
        self._written, self.max_priority = int(state["written"]), float(state["max_priority"])
        if self.prioritized:
            self._tree = _SumTree(len(self._slots))
            self._tree.update(np.arange(len(self._slots)), np.asarray(state["priorities"]))


_STEP_ARRAYS = ("_frames", "_actions", "_rewards", "_terminal", "_masks")
_SEQUENCE_ARRAYS = ("_slots", "_states", "_fresh", "_lengths", "_oldest")
_COPY_ARRAYS = ("_recent", "_recent_states", "_step", "_next", "_pending_mask")
_ALL_ARRAYS = _STEP_ARRAYS + _SEQUENCE_ARRAYS + _COPY_ARRAYS


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0. Received: {name}={value!r}")
    return int(value)


def _n_step_targets(rewards, terminal, played, gamma: float, n_step: int, batch) -> None:
    """Each learned step's n-step return, bootstrap discount and bootstrap column.

    Inside a sequence, step `j` sums the rewards of steps `j .. j + m - 1`,
    `m` the smallest of `n_step`, the steps left in the sequence and the
    steps to its game's end, and bootstraps from column `j + m` of the
    learned part (whose last column is the sequence's bootstrap frame) with
    `gamma ** m`, or 0 after a game over.
    """
    size, learned = rewards.shape
    returns = np.zeros((size, learned), np.float32)
    alive = np.ones((size, learned), bool)  # no game end before step j + k
    discount = np.ones((size, learned), np.float32)
    reach = np.zeros((size, learned), np.int32)
    over = np.zeros((size, learned), bool)
    index = np.arange(learned)
    for k in range(n_step):
        column = index + k
        inside = column < learned
        at = np.minimum(column, learned - 1)
        live = alive & inside[None, :] & np.take(played, at, axis=1)
        returns += np.where(live, np.float32(gamma) ** k * np.take(rewards, at, axis=1), 0.0)
        reach += live
        ended = live & np.take(terminal, at, axis=1)
        over |= ended
        alive = live & ~ended
    discount = np.where(over, 0.0, np.float32(gamma) ** reach).astype(np.float32)
    batch.rewards[...] = returns
    batch.discounts[...] = discount
    batch.bootstrap[...] = index[None, :] + np.maximum(reach, 1)
