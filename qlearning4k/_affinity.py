"""Confining a training run to one CPU core: `Agent.train(single_core=True)`.

Each compiled call hands its work from the Python thread to the backend's
worker threads and back. When those threads run on another core, every hand-off
wakes that core first, which costs a small model more than its arithmetic
(tens of microseconds a call on the shared 2-core machines this was measured
on). With every thread of the process on the core the training thread runs
on, a hand-off is a switch between threads on the same core.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

_TASKS = "/proc/self/task"  # Linux: one entry per thread of this process


def _supported() -> bool:
    return hasattr(os, "sched_setaffinity") and os.path.isdir(_TASKS)


def _thread_ids() -> list[int]:
    return [int(tid) for tid in os.listdir(_TASKS)]


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on now, from `/proc/thread-self/stat`."""
    try:
        with open("/proc/thread-self/stat") as stat:
            # Field 39, counted after the command name (which may hold spaces).
            return int(stat.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


class _OneCore:
    """Context manager: every thread of the process on one CPU core, then back.

    The core is the one the calling thread runs on when it enters (within
    the cores it may use). On leaving, each thread gets back the cores it
    had; threads started meanwhile get the calling thread's former cores.
    `paused()` gives every thread its former cores for a while (compiling
    is faster on all of them). Threads that end meanwhile are skipped. Where
    the system cannot do this (not Linux) it warns and does nothing.
    """

    def __init__(self):
        self.saved = None  # thread id -> the cores it had
        self.core = None

    def __enter__(self) -> _OneCore:
        if not _supported():
            warnings.warn(
                "single_core=True needs Linux (os.sched_setaffinity and /proc); "
                "training runs on all cores.",
                stacklevel=3,
            )
            return self
        allowed = os.sched_getaffinity(0)
        current = _current_cpu()
        self.core = current if current in allowed else min(allowed)
        self.saved = {}
        for tid in _thread_ids():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                self.saved[tid] = os.sched_getaffinity(tid)
        self.main = self.saved.get(threading.get_native_id(), allowed)
        self._pin()
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            self._restore()
            self.saved = None

    @contextlib.contextmanager
    def paused(self):
        """Every thread back on its former cores inside the `with` block."""
        if self.saved is None:
            yield
            return
        self._restore()
        try:
            yield
        finally:
            self._pin()

    def _pin(self) -> None:
        for tid in _thread_ids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, {self.core})
        torch = _torch()
        if torch is not None:
            # OpenMP workers spin while they wait: on one core a spinning
            # worker takes the time of the thread it waits for.
            self.torch_threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def _restore(self) -> None:
        for tid in _thread_ids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, self.saved.get(tid, self.main))
        torch = _torch()
        if torch is not None:
            torch.set_num_threads(self.torch_threads)


def _torch():
    """The `torch` module when Keras runs on it, else `None`."""
    import keras

    if keras.backend.backend() != "torch":
        return None
    import torch

    return torch
