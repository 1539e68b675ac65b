"""`StepConfig`: what one compiled step does."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What one compiled step does; the agent keeps one learner per config."""

    batch_size: int = 1
    max_steps: int = 1
    target_update: int | float | None = None  # int: hard copy every N steps; float: tau
    # A target network that the steps never update: the training loop copies
    # the online weights into it between calls (`copy_target`), every N env steps.
    target_copied: bool = False
    double_dqn: bool = False
    masked: bool = False
    prioritized: bool = False
    # `qlearning4k.distributional.C51` or `QuantileRegression`: the model
    # outputs each action's distribution, and its loss replaces the model's.
    distribution: object | None = None
    # Acting calls run the model in training mode, so that its noise layers
    # (`qlearning4k.NoisyDense`) draw new noise at each call.
    noisy: bool = False
    # A game of several action parts (`qlearning4k.branching`): the actions
    # of each part, whose Q-values follow one another in the model's output.
    action_parts: tuple[int, ...] | None = None
    # A recurrent model (`qlearning4k.recurrent`): the sequences it learns from.
    sequences: SequenceConfig | None = None


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """The sequences a recurrent model learns from (`qlearning4k.SequenceReplay`'s)."""

    length: int  # steps of a sequence, the burn-in included
    burn_in: int  # steps unrolled without gradient first
    state_sizes: tuple[int, ...]  # the sizes of the model's state inputs

    @property
    def learned(self) -> int:
        return self.length - self.burn_in

    @property
    def state_size(self) -> int:
        return sum(self.state_sizes)
