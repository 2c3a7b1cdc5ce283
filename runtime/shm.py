"""Shared-memory segments that the process which made them owns: created and attached without Python's
resource tracker, which in 3.11 would unlink a segment when any process attached to it exits (3.13 adds
`track=False` for this). The creator unlinks it when the server stops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from multiprocessing import resource_tracker, shared_memory
from typing import Any

from emostream.runtime.errors import SharedStateError


def create_segment(size: int) -> shared_memory.SharedMemory:
    return _untracked(shared_memory.SharedMemory(create=True, size=size))


def attach_segment(name: str) -> shared_memory.SharedMemory:
    return _untracked(shared_memory.SharedMemory(name=name))


def _untracked(shm: shared_memory.SharedMemory) -> shared_memory.SharedMemory:
    with contextlib.suppress(Exception):  # not tracked in this process: nothing to undo
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def unlink_segment(shm: shared_memory.SharedMemory) -> None:
    """Removes the segment (its creator does, once every process has let go). `unlink` tells the tracker
    to forget it, so it is registered first: the tracker would report a name it never saw."""
    with contextlib.suppress(Exception):
        resource_tracker.register(shm._name, "shared_memory")  # type: ignore[attr-defined]
    shm.unlink()


LOCK_TIMEOUT_S = 1.0  # a shared lock is held for microseconds; one held this long belongs to a dead process


@contextlib.contextmanager
def held(lock: Any) -> Iterator[None]:
    """Holds a lock shared with another process; raises SharedStateError if it cannot be had within
    LOCK_TIMEOUT_S (that process died holding it: the caller's side of the server cannot go on)."""
    if not lock.acquire(timeout=LOCK_TIMEOUT_S):
        raise SharedStateError(f"a lock shared with another server process was not released in {LOCK_TIMEOUT_S} s")
    try:
        yield
    finally:
        lock.release()
