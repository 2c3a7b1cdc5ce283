"""The sessions' audio, where the I/O side writes it and the inference loop reads it: one ring of input
samples per slot, the slot's counters and the capture stamps of its recent chunks, as arrays over slots
in one buffer (shared memory when the two sides are separate processes).

A chunk costs no message: the session's I/O side validates it, writes its samples into the slot's ring,
records its stamps and publishes the new sample count; the inference loop reads the counters of every
slot at once at the start of a tick. Publication takes `lock` (a process-shared lock, whose acquire and
release are memory barriers), so the loop never sees a count before the samples and stamps it covers.

Slots are claimed by the I/O side (`claim`, under the lock) and given back by the inference loop
(`release`) once it has stopped using them, so a new session never writes into a ring the loop still
reads for the previous one. Each claim bumps the slot's generation, which every frame carries back.

The table holds a few more slots than `session_limit`, the sessions it admits: a session that has ended
(`closing`) stops counting against the limit at once, while its slot waits a tick or two for the loop to
give it back, so a client that reconnects the moment its session ends is not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.synchronize import Lock
from typing import Any

import numpy as np

from emostream.runtime.shm import attach_segment, create_segment, held, unlink_segment


@dataclass(frozen=True)
class MirroredRing:
    """Geometry of a ring whose first `mirror` positions are also stored after its end: a row is
    `size + mirror` samples, a write at position p < mirror lands at p + size too, so a window of up to
    `mirror` samples starting anywhere is contiguous."""

    size: int
    mirror: int

    @property
    def row(self) -> int:
        return self.size + self.mirror

    def write(self, row: np.ndarray, start: int, samples: np.ndarray) -> None:
        """Writes `samples` at absolute position `start` (and onward) of one ring row, wrapping."""
        n = samples.size
        assert n <= self.size, "a write longer than the ring"
        p = start % self.size
        head = min(n, self.size - p)
        row[p : p + head] = samples[:head]
        row[: n - head] = samples[head:]
        for lo, hi in ((p, p + head), (0, n - head)):  # the parts that fall in the mirrored zone
            if lo < self.mirror and hi > lo:
                end = min(hi, self.mirror)
                row[self.size + lo : self.size + end] = row[lo:end]


INPUT_RING = MirroredRing(1 << 17, 512)  # per slot: 2.7 s at 48 kHz (room for the protocol's largest gap and
# chunk); the mirror is longer than any rate's hop input (462 samples at 48 kHz)
CHUNK_STAMPS = 64  # recent chunks whose stamps a slot keeps: 640 ms of 10 ms chunks
FREE = -1  # owner of an unclaimed slot

# name -> (dtype, shape after the slot axis)
_FIELDS: dict[str, tuple[type, tuple[int, ...]]] = {
    "pcm": (np.float32, (INPUT_RING.row,)),  # input samples, mirrored ring (runtime/batched_frontend.py)
    "written": (np.int64, ()),  # samples in the ring: the real ones and the silence appended after the end
    "real": (np.int64, ()),  # real samples received (no tail): frames after them have no capture stamp
    "consumed": (np.int64, ()),  # input samples before this one the loop no longer needs (room to write)
    "chunk_start": (np.int64, (CHUNK_STAMPS,)),  # media sample of each recent chunk's first sample
    "chunk_capture_us": (np.int64, (CHUNK_STAMPS,)),  # client clock at its capture (0: unknown)
    "chunk_received_us": (np.int64, (CHUNK_STAMPS,)),  # server clock when it arrived
    "chunk_count": (np.int64, ()),
    "owner": (np.int64, ()),  # FREE, or the I/O worker that holds the slot
    "closing": (np.int64, ()),  # 1 once the slot's session has ended, until the slot is claimed again
    "generation": (np.int64, ()),  # bumped at each claim
}


def _layout(n_slots: int) -> tuple[dict[str, tuple[int, np.dtype, tuple[int, ...]]], int]:
    offsets, size = {}, 0
    for name, (dtype, shape) in _FIELDS.items():
        dt = np.dtype(dtype)
        size = -(-size // 64) * 64  # each array on its own cache line
        offsets[name] = (size, dt, (n_slots, *shape))
        size += dt.itemsize * n_slots * int(np.prod(shape, dtype=np.int64))
    return offsets, size


@dataclass(frozen=True)
class AudioTableHandle:
    """What another process needs to attach to a shared table (picklable)."""

    name: str
    n_slots: int
    session_limit: int
    lock: Any  # a multiprocessing Lock


class AudioTable:
    """Arrays over slots; see the module docstring. `lock` is any lock object (a threading.Lock in one
    process, a multiprocessing.Lock across processes)."""

    pcm: np.ndarray
    written: np.ndarray
    real: np.ndarray
    consumed: np.ndarray
    chunk_start: np.ndarray
    chunk_capture_us: np.ndarray
    chunk_received_us: np.ndarray
    chunk_count: np.ndarray
    owner: np.ndarray
    closing: np.ndarray
    generation: np.ndarray

    def __init__(self, n_slots: int, lock: Any, buffer: Any = None, shm: shared_memory.SharedMemory | None = None,
                 session_limit: int | None = None) -> None:  # fmt: skip
        offsets, size = _layout(n_slots)
        self.n_slots, self.lock, self._shm = n_slots, lock, shm
        self.session_limit = n_slots if session_limit is None else session_limit
        assert 1 <= self.session_limit <= n_slots
        self._buffer = buffer if buffer is not None else bytearray(size)
        for name, (offset, dtype, shape) in offsets.items():
            setattr(self, name, np.ndarray(shape, dtype, self._buffer, offset))
        if buffer is None:
            self.owner[:] = FREE

    @classmethod
    def create_shared(cls, n_slots: int, lock: Lock, session_limit: int | None = None) -> AudioTable:
        """A table in a new shared-memory segment; `handle()` lets other processes attach to it."""
        shm = create_segment(_layout(n_slots)[1])
        table = cls(n_slots, lock, shm.buf, shm, session_limit)
        table.owner[:] = FREE
        return table

    @classmethod
    def attach(cls, handle: AudioTableHandle) -> AudioTable:
        shm = attach_segment(handle.name)
        return cls(handle.n_slots, handle.lock, shm.buf, shm, handle.session_limit)

    def handle(self) -> AudioTableHandle:
        assert self._shm is not None, "not a shared table"
        return AudioTableHandle(self._shm.name, self.n_slots, self.session_limit, self.lock)

    def close(self, unlink: bool = False) -> None:
        """Lets go of the shared segment (and removes it, for the process that made it)."""
        if self._shm is None:
            return
        for name in _FIELDS:  # numpy views must go before the buffer can be released
            setattr(self, name, None)
        self._buffer = None
        self._shm.close()
        if unlink:
            unlink_segment(self._shm)
        self._shm = None

    # -- the I/O side ------------------------------------------------------------------------------

    def claim(self, worker: int) -> tuple[int, int] | None:
        """A free slot for a new session of `worker`, reset to empty: (slot, generation), or None when
        `session_limit` sessions are open (or every slot is still in use)."""
        with held(self.lock):
            free = np.flatnonzero(self.owner == FREE)
            if free.size == 0 or self._open_sessions() >= self.session_limit:
                return None
            slot = int(free[0])
            self.owner[slot] = worker
            self.closing[slot] = 0
            self.generation[slot] += 1
            generation = int(self.generation[slot])
        self.pcm[slot] = 0.0  # samples before a stream's first read as silence from the ring's end
        self.written[slot] = self.real[slot] = self.consumed[slot] = self.chunk_count[slot] = 0
        return slot, generation

    def mark_closing(self, slot: int) -> None:
        """The slot's session has ended: it no longer counts against the limit (the loop still gives
        the slot back when done with it)."""
        with held(self.lock):
            self.closing[slot] = 1

    def _open_sessions(self) -> int:
        return int(np.count_nonzero((self.owner != FREE) & (self.closing == 0)))

    def free_slots(self) -> int:
        """How many more sessions `claim` would admit now."""
        free = int(np.count_nonzero(self.owner == FREE))
        return max(0, min(free, self.session_limit - self._open_sessions()))

    def room(self, slot: int) -> int:
        """Samples that can be written to the slot's ring now without overwriting what the loop needs."""
        return INPUT_RING.size - int(self.written[slot] - self.consumed[slot])

    def write(self, slot: int, start: int, samples: np.ndarray, capture_us: int, received_us: int) -> bool:
        """Appends a chunk of float32 samples whose first sample is media sample `start` (a gap since the
        last write is filled with silence). False, with nothing written, when the ring has no room."""
        end = int(self.written[slot])
        gap = start - end
        assert gap >= 0, "chunks are appended in order (the session core refuses overlaps)"
        if gap + samples.size > self.room(slot):
            return False
        row = self.pcm[slot]
        if gap:
            INPUT_RING.write(row, end, np.zeros(gap, np.float32))
        INPUT_RING.write(row, start, samples)
        k = int(self.chunk_count[slot]) % CHUNK_STAMPS
        self.chunk_start[slot, k], self.chunk_capture_us[slot, k] = start, capture_us
        self.chunk_received_us[slot, k] = received_us
        with held(self.lock):
            self.chunk_count[slot] += 1
            self.written[slot] = self.real[slot] = start + samples.size
        return True

    def append_silence(self, slot: int, n: int) -> bool:
        """n samples of silence after the real audio (the end of a session flushes its last frames)."""
        if n > self.room(slot):
            return False
        end = int(self.written[slot])
        INPUT_RING.write(self.pcm[slot], end, np.zeros(n, np.float32))
        with held(self.lock):
            self.written[slot] = end + n
        return True

    # -- the inference side ------------------------------------------------------------------------

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(written, real) of every slot, read together."""
        with held(self.lock):
            return self.written.copy(), self.real.copy()

    def release(self, slot: int) -> None:
        with held(self.lock):
            self.owner[slot] = FREE

    def stamps(self, slots: np.ndarray, newest: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(client capture time, server receive time) in microseconds of media sample `newest[i]` of slot
        `slots[i]`: its chunk's stamps, the capture moved on by the sample's offset in the chunk (0 where
        the client gave none). A sample older than the stamps kept takes the oldest chunk's."""
        entry = self._chunk_entries(slots, newest, depth=8)  # a frame's audio is almost always that recent
        missing = entry < 0
        if missing.any():
            entry[missing] = self._chunk_entries(slots[missing], newest[missing], depth=CHUNK_STAMPS)
        start = self.chunk_start[slots, entry]
        capture = self.chunk_capture_us[slots, entry]
        offset_us = np.round((newest - start) * 1e6 / rates).astype(np.int64)
        capture = np.where(capture != 0, capture + np.maximum(offset_us, 0), 0)
        return capture, self.chunk_received_us[slots, entry]

    def _chunk_entries(self, slots: np.ndarray, newest: np.ndarray, depth: int) -> np.ndarray:
        """The stamp entry of the newest chunk starting at or before `newest`, among each slot's `depth`
        most recent chunks; -1 where none does (with depth CHUNK_STAMPS: the oldest kept)."""
        count = self.chunk_count[slots][:, None]
        back = np.arange(depth)[None, :]  # 0: the newest chunk
        entries = (count - 1 - back) % CHUNK_STAMPS
        holds = (back < np.minimum(count, CHUNK_STAMPS)) & (
            self.chunk_start[slots[:, None], entries] <= newest[:, None]
        )
        first = holds.argmax(axis=1)
        found = holds[np.arange(slots.size), first]
        if depth == CHUNK_STAMPS:  # nothing old enough is kept: the oldest chunk there is
            oldest = np.minimum(count[:, 0], CHUNK_STAMPS) - 1
            return np.where(found, entries[np.arange(slots.size), first], (count[:, 0] - 1 - oldest) % CHUNK_STAMPS)
        return np.where(found, entries[np.arange(slots.size), first], -1)
