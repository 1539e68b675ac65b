"""Every public entry point turns malformed input into a clear error.

Each case runs in an empty folder: the error comes before anything is
trained or written.
"""

import os

import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay, History
from qlearning4k.games import Catch, Snake
from qlearning4k.render import save_gif, save_video
from qlearning4k.testing import check_game

NAN = float("nan")
FRAME = np.zeros((1, 1, 10, 10), dtype=np.uint8)


def _agent():
    return Agent(make_model(), seed=0)


def _train(**kwargs):
    return lambda: _agent().train(Catch(seed=0), **{"nb_epoch": 2, "verbose": 0, **kwargs})


def _play(**kwargs):
    return lambda: _agent().play(Catch(seed=0), **{"nb_epoch": 2, "verbose": 0, **kwargs})


CASES = [
    # Agent(...)
    ("agent-model-none", lambda: Agent(None), TypeError, "keras.Model"),
    ("agent-nb-frames-0", lambda: Agent(make_model(), nb_frames=0), ValueError, "nb_frames"),
    ("agent-nb-frames-str", lambda: Agent(make_model(), nb_frames="1"), TypeError, "nb_frames"),
    (
        "agent-memory-size-neg",
        lambda: Agent(make_model(), memory_size=-5),
        ValueError,
        "memory_size",
    ),
    (
        "agent-memory-size-float",
        lambda: Agent(make_model(), memory_size=2.0),
        TypeError,
        "memory_size",
    ),
    # Agent.train(...)
    ("train-nb-epoch-neg", _train(nb_epoch=-5), ValueError, "nb_epoch"),
    ("train-batch-size-str", _train(batch_size="32"), TypeError, "batch_size"),
    ("train-batch-size-neg", _train(batch_size=-1), ValueError, "batch_size"),
    ("train-gamma-nan", _train(gamma=NAN), ValueError, "gamma"),
    ("train-gamma-neg", _train(gamma=-0.1), ValueError, "gamma"),
    ("train-epsilon-nan", _train(epsilon=(NAN, 0.1)), ValueError, r"epsilon\[0\]"),
    ("train-epsilon-none", _train(epsilon=None), TypeError, "epsilon"),
    ("train-epsilon-empty", _train(epsilon=[]), ValueError, "pair"),
    ("train-epsilon-rate-nan", _train(epsilon_rate=NAN), ValueError, "epsilon_rate"),
    ("train-observe-float", _train(observe=1.5), ValueError, "observe"),
    ("train-checkpoint-neg", _train(checkpoint=-1), ValueError, "checkpoint"),
    ("train-checkpoint-path-h5", _train(checkpoint=1, checkpoint_path="m.h5"), ValueError, "h5"),
    ("train-keep-checkpoints-0", _train(keep_checkpoints=0), ValueError, "keep_checkpoints"),
    ("train-nb-parallel-neg", _train(nb_parallel=-2), ValueError, "nb_parallel"),
    ("train-train-freq-0", _train(train_freq=0), ValueError, "train_freq"),
    ("train-gradient-steps-str", _train(gradient_steps="2"), TypeError, "gradient_steps"),
    ("train-max-steps-0", _train(max_steps=0), ValueError, "max_steps"),
    ("train-on-nan", _train(on_nan="ignore"), ValueError, "on_nan"),
    ("train-verbose", _train(verbose=True), ValueError, "verbose"),
    ("train-callbacks", _train(callbacks=[print]), TypeError, "Callback"),
    ("train-game-none", lambda: _agent().train(None), TypeError, "Game"),
    ("train-game-snake", lambda: _agent().train(Snake(seed=0)), ValueError, "nb_actions"),
    # Agent.play(...)
    ("play-nb-epoch-0", _play(nb_epoch=0), ValueError, "nb_epoch"),
    ("play-epsilon-2", _play(epsilon=2), ValueError, "epsilon"),
    ("play-verbose", _play(verbose=2), ValueError, "verbose"),
    ("play-max-steps-neg", _play(max_steps=-1), ValueError, "max_steps"),
    ("play-game-class", lambda: _agent().play(Catch), TypeError, "Game"),
    # Agent.load(...)
    ("load-missing", lambda: Agent.load("nowhere"), FileNotFoundError, "Agent.save"),
    # ExperienceReplay
    ("memory-size-0", lambda: ExperienceReplay(0), ValueError, "memory_size"),
    (
        "memory-size-setter",
        lambda: setattr(ExperienceReplay(5), "memory_size", 0),
        ValueError,
        "memory_size",
    ),
    (
        "remember-1d",
        lambda: ExperienceReplay(5).remember(np.zeros(3), 0, 0.0, np.zeros(3), 0),
        ValueError,
        "leading batch axis",
    ),
    (
        "remember-nan-reward",
        lambda: ExperienceReplay(5).remember(FRAME, 0, NAN, FRAME, 0),
        ValueError,
        "finite",
    ),
    (
        "remember-shapes",
        lambda: ExperienceReplay(5).remember(FRAME, 0, 0.0, FRAME[:, :, :5], 0),
        ValueError,
        "shape",
    ),
    ("sample-empty", lambda: ExperienceReplay(5).sample(2), ValueError, "empty"),
    (
        "get-batch-empty",
        lambda: ExperienceReplay(5).get_batch(make_model(), 4),
        ValueError,
        "empty",
    ),
    # games
    ("catch-grid", lambda: Catch(grid_size=-1), ValueError, "grid_size"),
    ("snake-length", lambda: Snake(snake_length=0), ValueError, "snake_length"),
    ("catch-action-nan", lambda: Catch(seed=0).play(NAN), TypeError, "action"),
    ("snake-action-bool", lambda: Snake(seed=0).play(True), TypeError, "action"),
    # render, history, testing
    ("gif-empty", lambda: save_gif([], "x.gif"), ValueError, "at least one frame"),
    ("gif-grey", lambda: save_gif([np.zeros((4, 4))], "x.gif"), ValueError, "RGB"),
    (
        "gif-shapes",
        lambda: save_gif([np.zeros((4, 4, 3)), np.zeros((5, 4, 3))], "x.gif"),
        ValueError,
        "one shape",
    ),
    ("gif-fps", lambda: save_gif([np.zeros((4, 4, 3))], "x.gif", fps=0), ValueError, "fps"),
    ("video-ending", lambda: save_video([np.zeros((4, 4, 3))], "x.avi"), ValueError, ".mp4"),
    ("video-empty", lambda: save_video([], "x.mp4"), ValueError, "at least one frame"),
    ("gif-scale", lambda: save_gif([np.zeros((4, 4, 3))], "x.gif", scale=0), ValueError, "scale"),
    ("plot-empty", lambda: History().plot("h.png"), ValueError, "at least one"),
    ("check-game-model", lambda: check_game(make_model()), TypeError, "Game"),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_input_is_a_clear_error_and_writes_nothing(
    tmp_path, monkeypatch, call, error, match
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        call()
    assert os.listdir(tmp_path) == []


def test_plot_rejects_a_bad_window(tmp_path):
    history = Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=1, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="window"):
        history.plot(str(tmp_path / "h.png"), window=0)
    assert os.listdir(tmp_path) == []
