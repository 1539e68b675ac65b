"""qlearning4k: Q-learning for Keras.

Train any compiled Keras model to play a game by deep Q-learning:

```python
agent = Agent(model)
agent.train(Catch())
agent.play(Catch())
```
"""

from qlearning4k.agent import Agent
from qlearning4k.branching import branching
from qlearning4k.callbacks import EvalCallback
from qlearning4k.distributional import C51, QuantileRegression
from qlearning4k.dueling import dueling
from qlearning4k.frame_stack import FrameStack
from qlearning4k.history import History
from qlearning4k.memory import Batch, ExperienceReplay, Memory
from qlearning4k.noisy_dense import NoisyDense
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay
from qlearning4k.recurrent import recurrent
from qlearning4k.run_folder import RunFolder
from qlearning4k.sb3 import from_sb3
from qlearning4k.sequence_replay import SequenceReplay

__version__ = "1.1.0"

__all__ = [
    "C51",
    "Agent",
    "Batch",
    "EvalCallback",
    "ExperienceReplay",
    "FrameStack",
    "History",
    "Memory",
    "NoisyDense",
    "PrioritizedExperienceReplay",
    "QuantileRegression",
    "RunFolder",
    "SequenceReplay",
    "__version__",
    "branching",
    "dueling",
    "from_sb3",
    "recurrent",
]
