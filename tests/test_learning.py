"""End to end: an agent really learns Catch, on every Keras backend."""

import keras
import pytest

import qlearning4k
from qlearning4k import Agent, PrioritizedExperienceReplay
from qlearning4k.games import Catch


def _body():
    return [
        keras.Input((1, 10, 10)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
    ]


@pytest.mark.parametrize("modern", [False, True], ids=["original", "every-option"])
def test_agent_learns_catch(modern):
    """The original algorithm, and every modern option at once, learn Catch in 250 games."""
    if modern:
        model = qlearning4k.dueling(keras.Sequential(_body()), nb_actions=3)
        memory = PrioritizedExperienceReplay(1000, seed=0)
        options = {"target_update": 50, "double_dqn": True, "n_step": 3}
    else:
        model = keras.Sequential([*_body(), keras.layers.Dense(3)])
        memory, options = None, {}
    model.compile(keras.optimizers.Adam(learning_rate=1e-3), "mse")
    agent = Agent(model, memory=memory, seed=0)
    history = agent.train(Catch(seed=0), nb_epoch=250, batch_size=32, verbose=0, **options)
    assert history.history["win_rate"][-1] > 0.5  # it was learning along the way
    win_rate = agent.play(Catch(seed=12345), nb_epoch=200, visualize=False, verbose=0)
    # Untrained, the greedy policy wins 0.2 to 0.3, and no trivial policy
    # more than 0.39 of Catch(10) games. The original stays at 0.975 to 1.0
    # over seeds 0-2 at 250 games (TensorFlow). With every option the greedy
    # policy swings more from one checkpoint to the next at this budget:
    # seeds 0-2 gave 0.89/0.99/0.99 at 250 games, 0.85/1.0/0.855 at 300 and
    # 0.995/0.965/0.98 at 400, and leaving out any one option (dueling,
    # prioritized replay, the target network with Double DQN, 3-step returns)
    # still dipped to 0.87-0.935 on one seed: no one option is behind it, it
    # is the spread of a run this short. So its bar is lower.
    assert win_rate >= (0.8 if modern else 0.9)
