"""The one seam through which qlearning4k's tests and benchmarks reach its internals.

Not public API: these names may change in any release. They are gathered
here so that tests and benchmarks import no private module of the package
directly, and so that a change inside the package has one place to update
for them (see `docs/design.md`).
"""

from qlearning4k import _affinity as affinity
from qlearning4k import _settings as settings
from qlearning4k._config import check_config, override, read_preset, read_zoo, zoo_literal
from qlearning4k._export import FORMATS as EXPORT_FORMATS
from qlearning4k._export import artifact_inputs
from qlearning4k._frame_parts import FrameParts
from qlearning4k._learner import (
    CallBuffers,
    Learner,
    Rows,
    SequenceBuffers,
    SequenceConfig,
    SequenceLearner,
    StepBatch,
    StepConfig,
    bootstrapped_returns,
    make_learner,
)
from qlearning4k._learner.rules import narrow_kernels
from qlearning4k._nstep import NStep
from qlearning4k._replay_states import _FrameOnceStates as FrameOnceStates
from qlearning4k.games.snake import _EMPTY as SNAKE_EMPTY
from qlearning4k.games.snake import _FRUIT as SNAKE_FRUIT
from qlearning4k.noisy_dense import _counter_normal as counter_normal
from qlearning4k.noisy_dense import _reseed as reseed
from qlearning4k.prioritized_replay import _SumTree as SumTree

__all__ = [
    "EXPORT_FORMATS",
    "SNAKE_EMPTY",
    "SNAKE_FRUIT",
    "CallBuffers",
    "FrameOnceStates",
    "FrameParts",
    "Learner",
    "NStep",
    "Rows",
    "SequenceBuffers",
    "SequenceConfig",
    "SequenceLearner",
    "StepBatch",
    "StepConfig",
    "SumTree",
    "affinity",
    "artifact_inputs",
    "bootstrapped_returns",
    "check_config",
    "counter_normal",
    "make_learner",
    "narrow_kernels",
    "override",
    "read_preset",
    "read_zoo",
    "reseed",
    "settings",
    "zoo_literal",
]
