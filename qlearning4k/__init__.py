"""qlearning4k: Q-learning for Keras.

Train any compiled Keras model to play a game by deep Q-learning:

```python
agent = Agent(model)
agent.train(Catch())
agent.play(Catch())
```
"""

from qlearning4k.agent import Agent
from qlearning4k.history import History
from qlearning4k.memory import Batch, ExperienceReplay, Memory

__version__ = "1.0.0"

__all__ = ["Agent", "Batch", "ExperienceReplay", "History", "Memory", "__version__"]
