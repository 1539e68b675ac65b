"""Agent.save / Agent.load and checkpoints."""

import json
import os
import re
import warnings

import keras
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
        ["agent.json", "checksums.json", "model.keras"] + (["memory.npz"] if include_memory else [])
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


# -- damaged files -------------------------------------------------------------


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _alter(path):
    with open(path, "r+b") as f:  # one byte in the middle, the size unchanged
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


# Checksums are files and bytes: once, on the default backend (resume runs on every one).
@pytest.mark.backend_free
@pytest.mark.parametrize("name", ["model.keras", "agent.json", "memory.npz", "checksums.json"])
@pytest.mark.parametrize(
    "damage, match",
    [(_truncate, "damaged: it has"), (_alter, "damaged"), (os.remove, "missing")],
    ids=["truncated", "altered", "removed"],
)
def test_load_names_the_damaged_file(tmp_path, trained, name, damage, match):
    path = tmp_path / "agent"
    trained.save(path, include_memory=True)
    damage(path / name)
    if name == "checksums.json":
        if damage is os.remove:  # a save without checksums, as before they were recorded
            assert len(Agent.load(path).memory) == len(trained.memory)
            return
        match = r"damaged \(it cannot be read\)"
    with pytest.raises(ValueError, match=rf"damaged save: {re.escape(name)} is {match}"):
        Agent.load(path)


@pytest.mark.backend_free
def test_a_damaged_save_without_checksums_still_names_its_file(tmp_path, trained):
    path = tmp_path / "agent"
    trained.save(path)
    os.remove(path / "checksums.json")
    _truncate(path / "model.keras")
    with pytest.raises(ValueError, match=r"could not read model\.keras"):
        Agent.load(path)


class _Killed(Exception):
    pass


class _KillAfter(keras.callbacks.Callback):
    """Stops the run with an error after game `games`, as a killed process would."""

    def __init__(self, games):
        super().__init__()
        self.games = games

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.games:
            raise _Killed


def _train_with_checkpoints(path, keep=2, resume=False, killed_after=None):
    keras.utils.set_random_seed(0)  # the same model in each run
    agent = Agent(make_model(), memory_size=100, seed=0)
    history = agent.train(
        Catch(seed=0), nb_epoch=12, batch_size=4, checkpoint=4, checkpoint_path=str(path),
        keep_checkpoints=keep, resume=resume, verbose=0,
        callbacks=[_KillAfter(killed_after)] if killed_after else None,
    )  # fmt: skip
    return agent, history


def _killed_after(path, games):
    with pytest.raises(_Killed):
        _train_with_checkpoints(path, killed_after=games)


@pytest.mark.backend_free
@pytest.mark.parametrize("keep, kept", [(1, []), (2, ["ckpt.1"]), (3, ["ckpt.1", "ckpt.2"])])
def test_keep_checkpoints_keeps_the_last_few(tmp_path, keep, kept):
    _train_with_checkpoints(tmp_path / "ckpt", keep=keep)
    assert sorted(os.listdir(tmp_path)) == ["ckpt", *kept]
    games = [
        len(Agent.load(tmp_path / folder).memory) and _games_of(tmp_path / folder)
        for folder in ["ckpt", *kept]
    ]
    assert games == [12, 8, 4][: len(games)]  # newest first, every 4 games


def _games_of(folder):
    import pickle

    with open(folder / "run.pkl", "rb") as f:
        state = pickle.load(f)
    return state["finished"] + len(state["ended"])


@pytest.mark.parametrize("damage", [_truncate, _alter], ids=["truncated", "altered"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, damage):
    reference, reference_history = _train_with_checkpoints(tmp_path / "ref")
    # A run checkpointed at games 4 and 8, then killed: its newest checkpoint
    # is damaged afterwards, so resuming starts again from game 4.
    _killed_after(tmp_path / "ckpt", 9)
    damage(tmp_path / "ckpt" / "model.keras")
    with pytest.warns(UserWarning, match="skips a damaged checkpoint.*model.keras") as caught:
        resumed, history = _train_with_checkpoints(tmp_path / "ckpt", resume=True)
    assert any("continues from the older checkpoint" in str(w.message) for w in caught)
    assert _games_of(tmp_path / "ckpt") == 12
    assert history.history["steps"] == reference_history.history["steps"]
    assert history.epoch == reference_history.epoch == list(range(12))  # one per game
    for a, b in zip(reference.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_with_every_checkpoint_damaged_names_them(tmp_path):
    _killed_after(tmp_path / "ckpt", 9)
    _truncate(tmp_path / "ckpt" / "memory.npz")
    _alter(tmp_path / "ckpt.1" / "run.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"no intact checkpoint.*memory\.npz.*run\.pkl"):
            _train_with_checkpoints(tmp_path / "ckpt", resume=True)


@pytest.mark.backend_free
def test_checksums_record_every_file(tmp_path, trained):
    trained.save(tmp_path / "agent", include_memory=True)
    with open(tmp_path / "agent" / "checksums.json") as f:
        manifest = json.load(f)
    assert manifest["algorithm"] == "sha256"
    assert sorted(manifest["files"]) == ["agent.json", "memory.npz", "model.keras"]
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == os.path.getsize(tmp_path / "agent" / name)
