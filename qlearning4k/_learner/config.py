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
