"""`PrioritizedExperienceReplay`: replay that samples surprising transitions more often."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from qlearning4k._checks import _check_memory_size
from qlearning4k.memory import ExperienceReplay


class _SumTree:
    """A binary tree whose nodes hold the sums of their leaves, in one array.

    Leaves sit at `nodes[size:2 * size]` (`size` a power of two), the root at
    `nodes[1]`. Updates and searches are vectorized over many leaves at once
    and touch `log2(size)` levels.
    """

    def __init__(self, capacity: int):
        self.size = 1 << max(0, int(capacity - 1).bit_length())
        self.depth = self.size.bit_length() - 1
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def leaves(self, count: int) -> np.ndarray:
        return self.nodes[self.size : self.size + count]

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Sets `leaves` to `values` (the last one wins for repeats) and the sums above."""
        node = np.asarray(leaves, dtype=np.int64) + self.size
        self.nodes[node] = values
        for _ in range(self.depth):
            node = np.unique(node >> 1)
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """The leaves where the cumulative sums first exceed each of `mass`."""
        node = np.ones(len(mass), dtype=np.int64)
        mass = mass.copy()
        for _ in range(self.depth):
            left = self.nodes[2 * node]
            right = mass >= left
            mass -= np.where(right, left, 0.0)
            node = 2 * node + right
        return node - self.size


class PrioritizedExperienceReplay(ExperienceReplay):
    """Proportional prioritized experience replay (Schaul et al., 2016).

    Transition `i` is sampled with probability `p_i ** alpha / sum_k p_k **
    alpha`, where its priority `p_i` is the absolute TD error it had when it
    was last learned from (plus a small `epsilon`); new transitions get the
    highest priority seen so far, so each is learned from at least once soon.
    Each sample carries the importance-sampling weight `(N * P(i)) ** -beta`
    (divided by the batch's largest), which the agent's compiled step applies
    to the loss; `beta` grows by `beta_increment` per sampled batch, up to 1.
    The agent updates the priorities from the TD errors its compiled step
    already computes, so prioritized replay adds no compiled call.

    Storage is `ExperienceReplay`'s ring buffers plus a sum tree of the
    priorities (vectorized NumPy, `O(log n)` per update and per sample).

    Args:
        memory_size: Number of transitions kept; the oldest is overwritten
            first. `-1` keeps everything. Defaults to 100.
        alpha: How much prioritization counts, in [0, 1]: 0 is uniform.
            Defaults to 0.6.
        beta: Importance-sampling exponent at the start, in [0, 1]: 1 fully
            corrects the bias of prioritized sampling. Defaults to 0.4.
        beta_increment: Added to `beta` after each sampled batch. Defaults
            to 0.001 (beta reaches 1 after 600 batches).
        epsilon: Added to every absolute TD error, so that no transition
            stops being sampled. Defaults to 1e-6.
        seed: Seed of the memory's random generator. Defaults to `None`.

    Raises:
        ValueError: If an argument is out of its range.

    Example:

    ```python
    memory = PrioritizedExperienceReplay(50_000, alpha=0.6, beta=0.4, seed=0)
    agent = Agent(model, memory=memory)
    agent.train(game)
    ```
    """

    def __init__(
        self,
        memory_size: int = 100,
        alpha: float = 0.6,
        beta: float = 0.4,
        beta_increment: float = 0.001,
        epsilon: float = 1e-6,
        seed: int | None = None,
    ):
        for name, value, low, high in (
            ("alpha", alpha, 0.0, 1.0),
            ("beta", beta, 0.0, 1.0),
            ("beta_increment", beta_increment, 0.0, 1.0),
            ("epsilon", epsilon, 0.0, float("inf")),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
            if not low <= value <= high or (name == "epsilon" and value <= 0):
                bounds = "> 0" if name == "epsilon" else f"in [{low:g}, {high:g}]"
                raise ValueError(f"{name} must be {bounds}. Received: {name}={value}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.beta_increment = float(beta_increment)
        self.epsilon = float(epsilon)
        super().__init__(_check_memory_size(memory_size), seed=seed)

    def _config(self) -> dict:
        """The constructor's arguments, for saving."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "beta_increment": self.beta_increment,
            "epsilon": self.epsilon,
        }

    def _free(self) -> None:
        super()._free()
        self._tree = None
        self.max_priority = 1.0

    def remember(
        self,
        s: ArrayLike,
        a: ArrayLike,
        r: ArrayLike,
        s_prime: ArrayLike,
        game_over: ArrayLike,
        steps: ArrayLike = 1,
        next_mask: ArrayLike | None = None,
        td_errors: ArrayLike | None = None,
    ) -> None:
        """Stores `n` transitions, as `ExperienceReplay.remember` does, with their priorities.

        Args:
            s: States before the actions, `(n,) + state_shape`.
            a: Actions taken.
            r: Rewards received.
            s_prime: States after the actions.
            game_over: Whether each transition ended its game.
            steps: Game steps from `s` to `s_prime`. Defaults to 1.
            next_mask: The actions possible in each `s_prime`, or `None`.
                Defaults to `None`.
            td_errors: Each transition's TD error, known when it is stored
                (as Ape-X's actors compute it), for its first priority; or
                `None` for the highest priority so far, so that every new
                transition is sampled soon. Defaults to `None`.

        Raises:
            ValueError: As `ExperienceReplay.remember`, or if `td_errors`
                does not hold one finite number per transition.
        """
        if td_errors is not None:
            td_errors = np.asarray(td_errors, dtype=np.float64).ravel()
            if len(td_errors) != len(s) or not np.isfinite(td_errors).all():
                raise ValueError(
                    "remember() expects one finite TD error per transition. Received: "
                    f"{len(td_errors)} TD errors for {len(s)} transitions"
                )
        self._first_errors = td_errors
        try:
            super().remember(s, a, r, s_prime, game_over, steps, next_mask)
        finally:
            self._first_errors = None

    _first_errors = None  # of the transitions `remember()` is storing

    def _stored(self, slots: np.ndarray) -> None:
        if self._tree is None:  # the first transitions; _relayout rebuilds on growth
            self._rebuild(np.zeros(0), self.capacity)
        errors = self._first_errors
        if errors is None:
            self._tree.update(slots, self.max_priority)  # one slot or an array of them
            return
        errors = errors[len(errors) - np.size(slots) :]  # the newest, if more than the capacity
        priorities = (np.abs(errors) + self.epsilon) ** self.alpha
        self._tree.update(slots, priorities)
        self.max_priority = max(self.max_priority, float(priorities.max()))

    def _rebuild(self, priorities: np.ndarray, capacity: int) -> None:
        self._tree = _SumTree(capacity)
        self._tree.update(np.arange(len(priorities)), priorities)

    def _relayout(self, slots: np.ndarray, capacity: int) -> None:
        priorities = self._tree.leaves(self.capacity)[slots] if self._tree is not None else []
        super()._relayout(slots, capacity)
        self._rebuild(np.asarray(priorities), capacity)

    def _draw(self, batch_size: int):
        # Stratified: one draw in each of batch_size equal shares of the mass.
        tree = self._tree
        total = tree.total
        mass = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        idx = np.minimum(tree.find(mass), self._size - 1)  # float rounding at the right edge
        probabilities = tree.nodes[tree.size + idx] / total  # (batch,)
        weights = (self._size * probabilities) ** -self.beta
        self.beta = min(1.0, self.beta + self.beta_increment)
        return idx, (weights / weights.max()).astype(np.float32)

    def update_priorities(self, indices: ArrayLike, td_errors: ArrayLike) -> None:
        """Sets the priorities of sampled transitions from their TD errors.

        The agent calls this after each compiled step; call it yourself when
        you train from `sample()` by hand.

        Args:
            indices: The `Batch.indices` of the sampled transitions.
            td_errors: Their TD errors, `target - Q(s, a)`, one per index.

        Raises:
            ValueError: If the lengths differ or an error is not finite.
        """
        indices = np.asarray(indices, dtype=np.int64)
        td_errors = np.asarray(td_errors, dtype=np.float64)
        if indices.shape != td_errors.shape:
            raise ValueError(
                "update_priorities() expects one TD error per index. Received: "
                f"{indices.shape} indices and {td_errors.shape} TD errors"
            )
        if not np.isfinite(td_errors).all():
            raise ValueError("update_priorities() expects finite TD errors. Received: non-finite")
        priorities = (np.abs(td_errors) + self.epsilon) ** self.alpha
        self._tree.update(indices, priorities)
        if len(priorities):
            self.max_priority = max(self.max_priority, float(priorities.max()))

    def _get_state(self) -> dict:
        state = super()._get_state()
        if self._tree is not None:
            state["priorities"] = self._tree.leaves(self.capacity)[self._chronological()]
        state["beta"] = np.array(self.beta)
        state["max_priority"] = np.array(self.max_priority)
        return state

    def _set_state(self, state: dict) -> None:
        super()._set_state(state)
        self.beta = float(state.get("beta", self.beta))
        self.max_priority = float(state.get("max_priority", 1.0))
        if self._layout is not None:
            priorities = np.asarray(state["priorities"])[-self._size :]
            self._rebuild(priorities, self.capacity)
