"""The learner: compiled Q-learning steps, one implementation per Keras backend.

As Keras keeps `keras/src/backend/{tensorflow,jax,torch}/`, this package keeps
one module per backend with the same shape (`tensorflow.py`, `jax.py`,
`torch.py`, each a subclass of `learner.Learner`) and the shared logic above
them: `config.py` (`StepConfig`, what a step does), `batch.py` (the named
batch and the packing of a call's arrays), `rules.py` (TD targets, the next
action's choice, TD errors, the target network's update). Only the active
backend's module is imported, when this package is; on JAX that import makes
JAX dispatch CPU computations inline (see `jax._dispatch_inline`).
"""

from __future__ import annotations

import keras

from qlearning4k._learner.batch import (
    CallBuffers,
    Rows,
    SequenceBatch,
    SequenceBuffers,
    StepBatch,
    bootstrapped_returns,
)
from qlearning4k._learner.config import SequenceConfig, StepConfig
from qlearning4k._learner.learner import Learner
from qlearning4k._learner.sequence import SequenceLearner

_BACKEND = keras.backend.backend()
if _BACKEND == "tensorflow":
    from qlearning4k._learner.tensorflow import TensorFlowLearner as _Active
elif _BACKEND == "jax":
    from qlearning4k._learner.jax import JaxLearner as _Active
elif _BACKEND == "torch":
    from qlearning4k._learner.torch import TorchLearner as _Active
else:
    _Active = None


def make_learner(model: keras.Model, config: StepConfig) -> Learner:
    """Returns the learner of `model` and `config` on the current Keras backend."""
    if _Active is None:
        raise ValueError(
            "qlearning4k runs on the tensorflow, jax and torch Keras backends. "
            f"Received: KERAS_BACKEND={_BACKEND!r}"
        )
    if config.sequences is not None:
        return SequenceLearner(model, config)
    return _Active(model, config)


__all__ = [
    "CallBuffers",
    "Learner",
    "Rows",
    "SequenceBatch",
    "SequenceBuffers",
    "SequenceConfig",
    "SequenceLearner",
    "StepBatch",
    "StepConfig",
    "bootstrapped_returns",
    "make_learner",
]
