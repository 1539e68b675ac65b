"""`GradientQueue`: gradient steps sampled as they are due, run together in one compiled call.

A compiled call costs far more than the arithmetic of a small model's
gradient step, so a training run samples each gradient step's batch when
the step is due and runs every queued step in the next call that it makes
anyway (for Q-values to act on) or when the queue is full: the same batches
in the same order on the same weights as one call a step, in fewer calls.
The training run and the Ray actors' learner share it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from qlearning4k._learner import Learner
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.sequence_replay import SequenceReplay


class GradientQueue:
    """Up to `learner.max_steps` gradient steps of `learner`, sampled from `memory`.

    Args:
        learner: The learner whose calls run the steps.
        memory: The memory each batch is sampled from.
        gamma: Discount factor of the bootstrap.
        nb_act: States each call acts on.
        state_shape: `(nb_frames,) + frame_shape`.
        dtype: The states' dtype.
        n_step: The n-step returns of a `SequenceReplay`'s sequences (other
            memories hold theirs). Defaults to 1.
    """

    def __init__(
        self, learner: Learner, memory: Memory, gamma: float, nb_act: int, state_shape, dtype,
        n_step: int = 1,
    ):  # fmt: skip
        self.learner, self.memory, self.gamma, self.n_step = learner, memory, gamma, n_step
        self.size = learner.max_steps
        self.buffers = learner.call_buffers(nb_act, state_shape, dtype)
        self.sampled = np.zeros((self.size, learner.batch_size), dtype=np.int64)  # for priorities
        self.queued_at = np.zeros(self.size, dtype=np.int64)  # a step number of each, for errors
        self.pending = 0

    @property
    def full(self) -> bool:
        return self.pending == self.size

    def add(self, at: int = 0) -> None:
        """Samples the next gradient step's batch (`at`: the run's step, for errors)."""
        slot, into = self.pending, self.buffers.batches[self.pending]
        if isinstance(self.memory, SequenceReplay):
            self.sampled[slot] = self.memory._sample_into(into, self.gamma, self.n_step)
        elif isinstance(self.memory, ExperienceReplay):
            self.sampled[slot] = self.memory._sample_into(into, self.gamma)
        else:  # a memory of the user's: its sample(), written through the batch's names
            batch = self.memory.sample(self.learner.batch_size)
            into.states[...], into.next_states[...] = batch.states, batch.next_states
            steps = 1 if batch.steps is None else np.asarray(batch.steps)
            into.actions[:], into.rewards[:] = batch.actions, batch.rewards
            into.discounts[:] = self.gamma**steps * ~np.asarray(batch.game_over, dtype=bool)
            into.weights[:] = 1.0 if batch.weights is None else batch.weights
            if into.next_mask is not None:
                into.next_mask[:] = True if batch.next_mask is None else batch.next_mask
        self.queued_at[slot] = at
        self.pending += 1

    def run(
        self,
        act_states: np.ndarray | None,
        on_non_finite: Callable[[np.ndarray], None] | None = None,
    ) -> tuple[float, int, np.ndarray]:
        """Runs the queued steps, then the Q-values of `act_states`, in one call.

        `on_non_finite(losses)` is called with the call's losses when their
        sum is not finite, before anything else (it may raise); priorities
        are updated only when it is finite. Returns `(loss, count, q)`: the
        summed loss of the `count` steps run, and the Q-values.
        """
        count = self.pending
        if act_states is not None:
            self.buffers.set_act(act_states)
        losses, q, td = self.learner.step(self.buffers, count)
        loss = float(losses[:count].sum())
        if not math.isfinite(loss) and on_non_finite is not None:
            on_non_finite(losses[:count])
        if td is not None and math.isfinite(loss):
            done = count * (len(td) // self.size)  # a step's transitions (or sequences' steps)
            self.memory.update_priorities(self.sampled[:count].ravel(), td[:done])
        self.pending = 0
        return loss, count, q

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Q-values of `states` `(n, nb_actions)`, in a call that runs no gradient step."""
        self.buffers.set_act(states)
        return self.learner.step(self.buffers, 0)[1]


def non_finite_error(loss, where: str) -> FloatingPointError:
    """The error that stops training at a non-finite loss (with `on_nan="raise"`)."""
    return FloatingPointError(
        f"Non-finite loss {loss} {where}: training stopped. Lower the learning rate, clip "
        "gradients (the optimizer's clipnorm), or pass on_nan='continue' to keep going."
    )
