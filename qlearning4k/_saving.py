"""Saving and loading agents, checkpoints of training runs, and their restoring.

`Agent.save()` and `Agent.load()` check their arguments and call
`save_folder()` and `load_folder()`; a training run's checkpoints
(`save_checkpoint()`) are the same folders with the run's state added, which
`restore()` reads back for `train(resume=True)`. Every folder is written
next to its place and moved in whole, with the checksums of its files
(`qlearning4k._checkpoints`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import warnings

import keras
import numpy as np

from qlearning4k._checkpoints import (
    _SETTINGS_FILE,
    _damage,
    _replace_folder,
    _saved_folder,
    _saved_folders,
    _write_manifest,
)
from qlearning4k.distributional import _from_config, _to_config
from qlearning4k.memory import ExperienceReplay, Memory
from qlearning4k.prioritized_replay import PrioritizedExperienceReplay
from qlearning4k.sequence_replay import SequenceReplay

_SAVE_FORMAT = 1
_MODEL_FILE = "model.keras"
_MEMORY_FILE = "memory.npz"
_SAVED_MEMORIES = (ExperienceReplay, SequenceReplay)  # the memories saved with their contents
_RUN_FILE = "run.pkl"  # a checkpointed training run, for train(resume=True)


@contextlib.contextmanager
def _reading(folder: str, name: str):
    """Turns a failure to read a saved file into an error that names it."""
    try:
        yield
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, KeyError) as error:
        raise ValueError(
            f"Agent.load() could not read {name} in {folder!r}: it may be damaged "
            f"({type(error).__name__}: {error})"
        ) from error


def save_checkpoint(agent, path: str, run_state: dict | None = None, keep: int = 1) -> None:
    """`checkpoint=` in `train()`: the weights only, or the whole agent and run."""
    if str(path).endswith(".weights.h5"):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
        agent.model.save_weights(temporary)
        os.replace(temporary, path)
    else:
        save_folder(agent, path, include_memory=isinstance(agent.memory, _SAVED_MEMORIES),
                   run_state=run_state, keep=keep)  # fmt: skip


def save_folder(
    agent, path, include_memory: bool, run_state: dict | None = None, keep: int = 1
) -> None:
    """`save()`, plus the state of a training run for `train(resume=True)`."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        agent.model.save(os.path.join(temporary, _MODEL_FILE))
        memory = agent.memory
        settings = {
            "format": _SAVE_FORMAT,
            "nb_frames": agent.nb_frames,
            "distribution": _to_config(agent.distribution),
            "rng": agent.rng.bit_generator.state,
            "memory": {
                "class": type(memory).__name__,
                "memory_size": memory.memory_size,
                "rng": memory.rng.bit_generator.state if hasattr(memory, "rng") else None,
                "config": memory._config() if hasattr(memory, "_config") else {},
            },
        }
        with open(os.path.join(temporary, _SETTINGS_FILE), "w") as f:
            json.dump(settings, f, indent=2, default=int)
        if include_memory:
            np.savez(os.path.join(temporary, _MEMORY_FILE), **memory._get_state())
        if run_state is not None:
            with open(os.path.join(temporary, _RUN_FILE), "wb") as f:
                pickle.dump(run_state, f, protocol=pickle.HIGHEST_PROTOCOL)
        _write_manifest(temporary)
        _replace_folder(temporary, path, keep)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def load_folder(agent_class, path: str, memory: Memory | None):
    """`Agent.load()`: the saved folder at `path` (or the newest whole one in it),
    its checksums checked."""
    path = _saved_folder(path)
    damage = _damage(path)
    if damage is not None:
        raise ValueError(f"Agent.load() found a damaged save: {damage}. Received: path={path!r}")
    if not os.path.isfile(os.path.join(path, _SETTINGS_FILE)):
        raise FileNotFoundError(
            f"Agent.load() expects a folder written by Agent.save(). Received: {path!r} "
            f"(no {_SETTINGS_FILE} in it)"
        )
    settings_path = os.path.join(path, _SETTINGS_FILE)
    with _reading(path, _SETTINGS_FILE), open(settings_path) as f:
        settings = json.load(f)
    if settings.get("format") != _SAVE_FORMAT:
        raise ValueError(
            f"Agent.load() reads format {_SAVE_FORMAT}. "
            f"Received: format {settings.get('format')!r} in {settings_path}"
        )
    with _reading(path, _MODEL_FILE):
        model = keras.models.load_model(os.path.join(path, _MODEL_FILE))
    saved_memory = settings["memory"]
    if memory is None:
        kinds = {kind.__name__: kind for kind in (PrioritizedExperienceReplay, SequenceReplay)}
        kind = kinds.get(saved_memory["class"], ExperienceReplay)
        memory = kind(saved_memory["memory_size"], **saved_memory.get("config", {}))
        memory_file = os.path.join(path, _MEMORY_FILE)
        if os.path.isfile(memory_file):
            with _reading(path, _MEMORY_FILE), np.load(memory_file) as arrays:
                memory._set_state(dict(arrays))
        if saved_memory.get("rng"):
            memory.rng.bit_generator.state = saved_memory["rng"]
    agent = agent_class(
        model,
        memory=memory,
        nb_frames=settings["nb_frames"],
        distribution=_from_config(settings.get("distribution")),
    )
    agent.rng.bit_generator.state = settings["rng"]
    return agent


def restore(agent, path: str) -> dict | None:
    """Loads the newest intact checkpoint of `path` into this agent.

    Returns its run state, or `None` when there is no checkpoint of a
    run. Damaged checkpoints are skipped with a warning that names them.
    """
    damaged = []
    for folder in _saved_folders(path):
        damage = _damage(folder)
        if damage is None:
            break
        damaged.append(f"{folder}: {damage}")
        warnings.warn(f"resume=True skips a damaged checkpoint ({damage}): {folder}", stacklevel=4)
    else:
        if damaged:
            raise ValueError(
                "resume=True found no intact checkpoint. Received: checkpoint_path="
                f"{path!r}, whose checkpoints are damaged: " + "; ".join(damaged)
            )
        return None
    if damaged:
        warnings.warn(f"resume=True continues from the older checkpoint {folder}", stacklevel=4)
    run_file = os.path.join(folder, _RUN_FILE)
    if not os.path.isfile(run_file):
        return None
    saved = load_folder(type(agent), folder, None)
    model, optimizer = agent.model, agent.model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    pairs = [
        (model.trainable_variables, saved.model.trainable_variables),
        (model.non_trainable_variables, saved.model.non_trainable_variables),
        (optimizer.variables, saved.model.optimizer.variables),
    ]
    for mine, theirs in pairs:
        if len(mine) != len(theirs):
            raise ValueError(
                f"resume=True needs the model of the checkpoint in {folder!r}: it has "
                f"{len(theirs)} variables of a kind where this model has {len(mine)}."
            )
    for mine, theirs in pairs:
        for variable, value in zip(mine, theirs, strict=True):
            variable.assign(value)
    if isinstance(agent.memory, _SAVED_MEMORIES):
        agent.memory = saved.memory
    agent.rng = saved.rng
    with _reading(folder, _RUN_FILE), open(run_file, "rb") as f:
        return pickle.load(f)


def keras_seed_state():
    """The state of Keras' global seed generator (unseeded `keras.random` calls)."""
    from keras.src.random.seed_generator import global_seed_generator

    try:
        return keras.ops.convert_to_numpy(global_seed_generator().state.value)
    except Exception:  # not created yet, or not there in this Keras
        return None


def set_keras_seed_state(value) -> None:
    if value is None:
        return
    from keras.src.random.seed_generator import global_seed_generator

    global_seed_generator().state.assign(value)
