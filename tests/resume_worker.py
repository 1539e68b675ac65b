"""A training run for test_resume.py: checkpoints, can pause to be killed, can resume.

python tests/resume_worker.py CHECKPOINT OUT.npz [--pause-after N] [--resume] [--modern] [--steps]

--modern adds a target network, Double DQN, 3-step returns and prioritized replay,
on 2 stacked frames (a memory that stores each frame once).
--steps counts in env steps: a step budget, learning_starts, gradient_steps=-1 and
a target network copied every N env steps.
"""

import argparse
import pathlib
import time

import keras
import numpy as np

from qlearning4k import Agent, PrioritizedExperienceReplay
from qlearning4k.games import Catch


class _PauseAfter(keras.callbacks.Callback):
    """Writes a marker after game `at` and waits there to be killed."""

    def __init__(self, at, marker):
        super().__init__()
        self.at, self.marker = at, marker

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            pathlib.Path(self.marker).write_text("paused")
            time.sleep(600)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--pause-after", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--modern", action="store_true")
    parser.add_argument("--steps", action="store_true")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((2 if args.modern else 1, 8, 8)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    memory = PrioritizedExperienceReplay(100, seed=1) if args.modern else None
    agent = Agent(model, memory=memory, memory_size=100, seed=0)
    modern = {"target_update": 5, "double_dqn": True, "n_step": 3} if args.modern else {}
    budget = {"nb_epoch": 24}
    if args.steps:
        budget = {"total_timesteps": 170, "learning_starts": 20, "train_freq": 2}
        budget.update(gradient_steps=-1, target_update_interval=12)
    callbacks = []
    if args.pause_after is not None:
        callbacks.append(_PauseAfter(args.pause_after, args.out + ".paused"))
    history = agent.train(
        Catch(8, seed=0), batch_size=8, epsilon=(1.0, 0.1), nb_parallel=2,
        checkpoint=5, checkpoint_path=args.checkpoint, resume=args.resume, verbose=0,
        callbacks=callbacks, **budget, **modern,
    )  # fmt: skip
    np.savez(
        args.out,
        *model.get_weights(),
        wins=np.array(history.history["win"]),
        steps=np.array(history.history["steps"]),
    )


if __name__ == "__main__":
    main()
