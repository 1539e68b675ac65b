"""`NStep`: each game copy's one-step transitions turned into n-step ones."""

from __future__ import annotations

import numpy as np


class NStep:
    """Turns each game copy's one-step transitions into n-step ones.

    Keeps the last `n` states, actions and rewards of every copy in ring
    arrays (all copies write at the same position each step). Once a copy
    has `n` of them, each step remembers its oldest with the discounted sum
    of `n` rewards and the state `n` steps later. When a game ends (over, or
    stopped by `max_steps`) every pending transition of that copy is
    remembered with the rewards left until the end and its number of steps,
    so a game over never bootstraps and a stopped game bootstraps with
    `gamma ** steps`.
    """

    def __init__(self, n, gamma, nb_copies, state_shape, dtype, action_shape=()):
        self.n = n
        self.states = np.zeros((n, nb_copies) + tuple(state_shape), dtype=dtype)
        # `action_shape`: `(nb_parts,)` for a game of several action parts.
        self.actions = np.zeros((n, nb_copies) + tuple(action_shape), dtype=np.int32)
        self.rewards = np.zeros((n, nb_copies), dtype=np.float64)
        self.count = np.zeros(nb_copies, dtype=np.int64)  # pending transitions of each copy
        self.position = 0  # ring slot the next step writes
        self.powers = gamma ** np.arange(n)  # (n,)
        self.gamma = gamma

    def add(self, memory, copies, transitions, finished) -> None:
        """Adds one step of the copies that played; remembers what is complete.

        `copies` are the indices of the copies that played, `transitions`
        their `(states, actions, rewards, next_states, over, masks)` and
        `finished` whether their game ended this step.
        """
        states, actions, rewards, next_states, over, masks = transitions
        p, n = self.position, self.n
        self.states[p, copies] = states
        self.actions[p, copies] = actions
        self.rewards[p, copies] = rewards
        self.count[copies] = np.minimum(self.count[copies] + 1, n)
        self.position = (p + 1) % n
        mask_of = {} if masks is None else {"next_mask": masks}
        full = (self.count[copies] == n) & ~finished  # (playing,)
        if full.any():
            oldest, order = self.position, (self.position + np.arange(n)) % n
            k = copies[full]
            returns = self.powers @ self.rewards[order][:, k]  # (full,)
            memory.remember(
                self.states[oldest, k], self.actions[oldest, k], returns, next_states[full],
                False, steps=n, **{key: m[full] for key, m in mask_of.items()},
            )  # fmt: skip
        for i in np.flatnonzero(finished):  # once per game: a short loop is fine
            k, c = copies[i], self.count[copies[i]]
            order = (p - c + 1 + np.arange(c)) % n  # oldest to newest
            returns = np.zeros(c)
            future = 0.0
            for j in range(c - 1, -1, -1):
                future = self.rewards[order[j], k] + self.gamma * future
                returns[j] = future
            memory.remember(
                self.states[order, k], self.actions[order, k], returns,
                np.repeat(next_states[i : i + 1], c, axis=0), over[i], steps=c - np.arange(c),
                **{key: np.repeat(m[i : i + 1], c, axis=0) for key, m in mask_of.items()},
            )  # fmt: skip
            self.count[k] = 0
