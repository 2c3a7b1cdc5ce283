"""A bounded byte queue between two processes in shared memory, with a pipe to wake the reader.

One producer and one consumer. `put` never blocks: it returns False when the queue is full, and the
producer decides what to do (keep the message for later, or drop it and count). `get_all` never blocks
either. Records are length-prefixed and may wrap around the end of the ring. The head and tail counters
are published under a process-shared lock, whose acquire and release are memory barriers, so a reader
never sees a head before the bytes it covers.

`Waker` is the other half: the producer writes a byte to a non-blocking pipe after a put (a full pipe
means the reader has wake-ups pending anyway); the reader waits on the pipe's file descriptor with
select or an event loop's add_reader, then drains it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from emostream.runtime.shm import attach_segment, create_segment, held, unlink_segment

_HEADER = 16  # head and tail, uint64 each: bytes ever written and ever read
_LENGTH = np.dtype("<u4")


@dataclass(frozen=True)
class QueueHandle:
    """What the other process needs to attach (picklable)."""

    name: str
    capacity: int
    lock: Any


class ShmQueue:
    def __init__(self, capacity: int, lock: Any, shm: shared_memory.SharedMemory) -> None:
        self.capacity, self.lock, self._shm = capacity, lock, shm
        self._counters = np.ndarray((2,), np.uint64, shm.buf, 0)
        self._data = np.ndarray((capacity,), np.uint8, shm.buf, _HEADER)

    @classmethod
    def create(cls, capacity: int, lock: Any) -> ShmQueue:
        shm = create_segment(_HEADER + capacity)
        queue = cls(capacity, lock, shm)
        queue._counters[:] = 0
        return queue

    @classmethod
    def attach(cls, handle: QueueHandle) -> ShmQueue:
        shm = attach_segment(handle.name)
        return cls(handle.capacity, handle.lock, shm)

    def handle(self) -> QueueHandle:
        return QueueHandle(self._shm.name, self.capacity, self.lock)

    def close(self, unlink: bool = False) -> None:
        del self._counters, self._data
        self._shm.close()
        if unlink:
            unlink_segment(self._shm)

    def used(self) -> int:
        with held(self.lock):
            head, tail = (int(v) for v in self._counters)
        return head - tail

    def put(self, payload: bytes | memoryview) -> bool:
        """Appends one record; False (nothing written) when it does not fit now."""
        n = len(payload)
        need = _LENGTH.itemsize + n
        with held(self.lock):
            head, tail = (int(v) for v in self._counters)
        if need > self.capacity - (head - tail):
            return False
        self._write(head, np.array([n], _LENGTH).view(np.uint8))
        self._write(head + _LENGTH.itemsize, np.frombuffer(payload, np.uint8))
        with held(self.lock):
            self._counters[0] = head + need
        return True

    def get_all(self) -> list[bytes]:
        """Every record written since the last call, oldest first."""
        with held(self.lock):
            head, tail = (int(v) for v in self._counters)
        records = []
        position = tail
        while position < head:
            n = int(self._read(position, _LENGTH.itemsize).view(_LENGTH)[0])
            records.append(self._read(position + _LENGTH.itemsize, n).tobytes())
            position += _LENGTH.itemsize + n
        if position != tail:
            with held(self.lock):
                self._counters[1] = position
        return records

    def _write(self, position: int, data: np.ndarray) -> None:
        start = position % self.capacity
        first = min(data.size, self.capacity - start)
        self._data[start : start + first] = data[:first]
        self._data[: data.size - first] = data[first:]

    def _read(self, position: int, n: int) -> np.ndarray:
        start = position % self.capacity
        if start + n <= self.capacity:
            return self._data[start : start + n].copy()
        return np.concatenate([self._data[start:], self._data[: n - (self.capacity - start)]])


class Waker:
    """A pipe used only to wake its reader: `wake` from the producer, `fileno` and `drain` for the reader.
    Built from a multiprocessing Pipe so both ends can be handed to a spawned process; both are made
    non-blocking here, which carries over to the copies another process gets (they share the open file)."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader, self.writer = reader, writer
        os.set_blocking(reader.fileno(), False)
        os.set_blocking(writer.fileno(), False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):  # full: a wake-up is pending
            os.write(self.writer.fileno(), b"\0")

    def fileno(self) -> int:
        return self.reader.fileno()

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.reader.fileno(), 4096):
                pass
