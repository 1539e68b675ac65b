"""Agent.save / Agent.load and checkpoints."""

import os

import numpy as np
import pytest
from conftest import make_model

from qlearning4k import Agent, ExperienceReplay
from qlearning4k.games import Catch


def _q(agent, states):
    return agent._learner().q_values(states)


@pytest.fixture
def trained():
    agent = Agent(make_model(), memory_size=200, seed=0)
    agent.train(Catch(seed=0), nb_epoch=8, batch_size=8, verbose=0)
    return agent


@pytest.mark.parametrize("include_memory", [False, True])
def test_save_and_load_round_trip(tmp_path, trained, include_memory):
    path = tmp_path / "agent"
    trained.save(path, include_memory=include_memory)
    assert sorted(os.listdir(path)) == sorted(
        ["agent.json", "model.keras"] + (["memory.npz"] if include_memory else [])
    )
    loaded = Agent.load(path)
    states = np.stack([Catch(seed=seed).get_frame() for seed in range(32)])[:, None]
    np.testing.assert_array_equal(_q(loaded, states), _q(trained, states))
    assert loaded.memory_size == 200 and loaded.nb_frames == 1
    assert loaded.rng.random() == trained.rng.random()
    if include_memory:
        assert len(loaded.memory) == len(trained.memory) == 72
        np.testing.assert_array_equal(
            loaded.memory.sample(64).states, trained.memory.sample(64).states
        )
    else:
        assert len(loaded.memory) == 0
    assert [p for p in os.listdir(tmp_path) if p != "agent"] == []


def test_loaded_agent_continues_training_like_the_original(tmp_path, trained):
    trained.save(tmp_path / "agent", include_memory=True)
    loaded = Agent.load(tmp_path / "agent")
    assert int(loaded.model.optimizer.iterations) == int(trained.model.optimizer.iterations)
    for agent in (trained, loaded):
        agent.train(Catch(seed=3), nb_epoch=2, batch_size=8, epsilon=0.2, verbose=0)
    for a, b in zip(trained.model.get_weights(), loaded.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_replaces_an_existing_save(tmp_path, trained):
    path = tmp_path / "agent"
    trained.save(path, include_memory=True)
    trained.save(path)
    assert "memory.npz" not in os.listdir(path)
    assert os.listdir(tmp_path) == ["agent"]


def test_checkpoint_writes_a_loadable_agent(tmp_path):
    agent = Agent(make_model(), seed=0)
    path = tmp_path / "ckpt"
    agent.train(Catch(seed=0), nb_epoch=3, batch_size=4, checkpoint=2, checkpoint_path=str(path),
                verbose=0)  # fmt: skip
    loaded = Agent.load(path)
    assert len(loaded.memory) == 27
    for a, b in zip(agent.model.get_weights(), loaded.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unbounded_memory_round_trip(tmp_path):
    agent = Agent(make_model(), memory_size=-1, seed=0)
    agent.train(Catch(seed=0), nb_epoch=2, batch_size=4, verbose=0)
    agent.save(tmp_path / "a", include_memory=True)
    loaded = Agent.load(tmp_path / "a")
    assert loaded.memory_size == -1 and len(loaded.memory) == 18


@pytest.mark.parametrize(
    ("prepare", "error", "match"),
    [
        (lambda p: None, FileNotFoundError, "Agent.save"),
        (
            lambda p: (p.mkdir(), (p / "agent.json").write_text('{"format": 99}')),
            ValueError,
            "format 99",
        ),
    ],
)
def test_load_rejects_what_is_not_a_saved_agent(tmp_path, prepare, error, match):
    path = tmp_path / "agent"
    prepare(path)
    with pytest.raises(error, match=match):
        Agent.load(path)


def test_include_memory_needs_an_experience_replay(tmp_path):
    class Other(ExperienceReplay.__base__):
        memory_size = 1

    agent = Agent(make_model(), memory=Other(), seed=0)
    with pytest.raises(ValueError, match="ExperienceReplay"):
        agent.save(tmp_path / "a", include_memory=True)
    assert os.listdir(tmp_path) == []


def test_a_save_killed_between_its_two_renames_leaves_the_previous_one_loadable(tmp_path, trained):
    path = tmp_path / "agent"
    trained.save(path, include_memory=True)
    # save() moves the old folder aside, then the new one into place: a kill
    # between the two leaves only the old one, beside the path.
    os.replace(path, tmp_path / "agent.old-12345")
    loaded = Agent.load(path)
    assert len(loaded.memory) == len(trained.memory)
