"""Saved folders on disk: atomic replacement, the last few kept, checksums of every file.

`Agent.save` and the checkpoints of `Agent.train` write a folder next to its
place and move it in with renames, so a process killed at any moment leaves a
whole folder behind. Each folder records the size and SHA-256 of its files in
`checksums.json`, written last; `_damage` compares them, so that a file
truncated or altered later (a full disk, a copy cut short, a bad sync between
machines) is named instead of failing somewhere inside Keras or pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

_SETTINGS_FILE = "agent.json"  # every saved folder has it
_MANIFEST_FILE = "checksums.json"
_CHUNK = 1 << 22


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: str) -> None:
    """Records the size and SHA-256 of each file of `folder`, in `checksums.json`."""
    files = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name != _MANIFEST_FILE and os.path.isfile(path):
            files[name] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    with open(os.path.join(folder, _MANIFEST_FILE), "w") as f:
        json.dump({"algorithm": "sha256", "files": files}, f, indent=2)


def _damage(folder: str) -> str | None:
    """What is wrong with the files of `folder`, or `None` if they are as saved.

    Folders saved before checksums were recorded (no `checksums.json`) are
    taken as they are.
    """
    manifest = os.path.join(folder, _MANIFEST_FILE)
    if not os.path.isfile(manifest):
        return None
    try:
        with open(manifest) as f:
            files = json.load(f)["files"]
        expected = {name: (int(e["bytes"]), str(e["sha256"])) for name, e in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"{_MANIFEST_FILE} is damaged (it cannot be read)"
    for name, (size, checksum) in expected.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        actual = os.path.getsize(path)
        if actual != size:
            return f"{name} is damaged: it has {actual:,} bytes where {size:,} were saved"
        if _sha256(path) != checksum:
            return f"{name} is damaged: its contents differ from the checksum recorded when saved"
    return None


def _replace_folder(new: str, path: str, keep: int = 1) -> None:
    """Moves folder `new` to `path`, never leaving neither.

    With `keep > 1` the folder it replaces becomes `path.1`, `path.1` becomes
    `path.2`, and so on up to `path.{keep - 1}`; older ones are removed.
    """
    parent, name = os.path.split(os.path.abspath(path))
    if keep > 1:
        numbered = re.compile(re.escape(name) + r"\.(\d+)")
        for entry in os.listdir(parent):
            match = numbered.fullmatch(entry)
            if match and int(match.group(1)) >= keep - 1:
                _remove(os.path.join(parent, entry))
        for index in range(keep - 2, 0, -1):
            if os.path.exists(f"{path}.{index}"):
                os.replace(f"{path}.{index}", f"{path}.{index + 1}")
        if os.path.exists(path):
            os.replace(path, f"{path}.1")
        os.replace(new, path)
        return
    if not os.path.exists(path):
        os.replace(new, path)
        return
    old = f"{path}.old-{os.getpid()}"
    os.replace(path, old)
    os.replace(new, path)
    _remove(old)


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _saved_folders(path: str) -> list[str]:
    """The saved folders of `path`, newest first.

    `path` itself; then the one a process killed while replacing it left
    beside it (`path.old-<pid>`); then the older checkpoints kept beside it
    (`path.1`, `path.2`, ...).
    """
    parent, name = os.path.split(os.path.abspath(path))
    entries = os.listdir(parent) if os.path.isdir(parent) else []
    leftovers = sorted(
        (os.path.join(parent, entry) for entry in entries if entry.startswith(f"{name}.old-")),
        key=os.path.getmtime,
        reverse=True,
    )
    numbered = re.compile(re.escape(name) + r"\.(\d+)")
    older = sorted(
        (int(match.group(1)), os.path.join(parent, entry))
        for entry in entries
        if (match := numbered.fullmatch(entry))
    )
    folders = [path, *leftovers, *(folder for _, folder in older)]
    return [folder for folder in folders if _is_saved(folder)]


def _is_saved(folder: str) -> bool:
    """Whether `folder` is a save, whole or damaged."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in _MARKERS)


_MARKERS = (_SETTINGS_FILE, _MANIFEST_FILE)


def _saved_folder(path: str) -> str:
    """`path`, or the previous save a process killed while replacing it left beside it."""
    folders = _saved_folders(path)
    return folders[0] if folders else path
