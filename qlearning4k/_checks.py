"""Argument checks shared by the public entry points.

Each raises `TypeError` or `ValueError` with what was expected and what was
received, in the Keras way.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _did_you_mean(name, known) -> str:
    """` (did you mean 'x'?)` for the entry of `known` nearest `name`, or `""`."""
    near = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _unknown_key(where: str, key, known: Sequence[str], value) -> ValueError:
    """The error of a key of a config section that is not one of `known`."""
    return ValueError(
        f"Unknown key {where}{key}{_did_you_mean(key, known)}: known keys are "
        f"{', '.join(known)}. Received: {key}={value!r}"
    )


def _check_keys(where: str, section: Any, known: Sequence[str]) -> dict:
    """`section` as a dict, checked: a mapping of keys of `known` (`where` prefixes them)."""
    if not isinstance(section, Mapping):
        raise ValueError(f"{where.rstrip('.') or 'The config'} must be a mapping. "
                         f"Received: {section!r}")  # fmt: skip
    for key, value in section.items():
        if key not in known:
            raise _unknown_key(where, key, known, value)
    return dict(section)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_positive_int(name: str, value) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int. Received: {name}={value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive. Received: {name}={value}")
    return int(value)


def _check_unit(name: str, value) -> float:
    """Checks a number in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")
    return float(value)


def _check_epsilon(epsilon) -> tuple[float, float]:
    """Returns `(start, end)` of the exploration schedule."""
    if isinstance(epsilon, (list, tuple, np.ndarray)):
        if len(epsilon) != 2:
            raise ValueError(
                "epsilon must be a number or a pair [start, end]. "
                f"Received: epsilon={epsilon!r} (of length {len(epsilon)})"
            )
        return _check_unit("epsilon[0]", epsilon[0]), _check_unit("epsilon[1]", epsilon[1])
    value = _check_unit("epsilon", epsilon)
    return value, value


def _check_score(game, score) -> float:
    if type(score) in (float, int) and math.isfinite(score):  # the usual cases, checked first
        return float(score)
    if isinstance(score, (bool, np.bool_)) or not isinstance(score, (numbers.Real, np.number)):
        raise TypeError(
            f"{type(game).__name__}.get_score() must return a finite number. "
            f"Received: {score!r} (of type {type(score).__name__})"
        )
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(
            f"{type(game).__name__}.get_score() must return a finite number. Received: {score!r}"
        )
    return value


def _check_memory_size(memory_size) -> int:
    if isinstance(memory_size, bool) or not isinstance(memory_size, (int, np.integer)):
        raise TypeError(
            f"memory_size must be an int (-1 for no limit). Received: memory_size={memory_size!r}"
        )
    if memory_size == 0 or memory_size < -1:
        raise ValueError(
            "memory_size must be a positive number of transitions, or -1 for no limit. "
            f"Received: memory_size={memory_size}"
        )
    return int(memory_size)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int. Received: batch_size={batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive. Received: batch_size={batch_size}")
    return int(batch_size)
