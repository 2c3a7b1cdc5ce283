"""Named float64 counters in shared memory, one row per process that writes them, read by any process
(the metrics endpoint of whichever I/O worker answers sums the rows). A row has one writer, so counters
need no lock: a reader may see one of them a moment behind another, never a torn value (aligned 8-byte
stores)."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from emostream.runtime.shm import attach_segment, create_segment, unlink_segment


@dataclass(frozen=True)
class CountersHandle:
    name: str
    fields: tuple[str, ...]
    rows: int


class SharedCounters:
    def __init__(self, fields: tuple[str, ...], rows: int, shm: shared_memory.SharedMemory | None = None) -> None:
        self.fields, self.rows, self._shm = fields, rows, shm
        self._index = {name: i for i, name in enumerate(fields)}
        buffer = shm.buf if shm is not None else bytearray(8 * rows * len(fields))
        self.values = np.ndarray((rows, len(fields)), np.float64, buffer)

    @classmethod
    def create(cls, fields: tuple[str, ...], rows: int = 1, shared: bool = True) -> SharedCounters:
        if not shared:
            return cls(fields, rows)
        shm = create_segment(8 * rows * len(fields))
        counters = cls(fields, rows, shm)
        counters.values[:] = 0.0
        return counters

    @classmethod
    def attach(cls, handle: CountersHandle) -> SharedCounters:
        shm = attach_segment(handle.name)
        return cls(handle.fields, handle.rows, shm)

    def handle(self) -> CountersHandle:
        assert self._shm is not None, "not shared"
        return CountersHandle(self._shm.name, self.fields, self.rows)

    def add(self, name: str, amount: float = 1.0, row: int = 0) -> None:
        self.values[row, self._index[name]] += amount

    def set(self, name: str, value: float, row: int = 0) -> None:
        self.values[row, self._index[name]] = value

    def get(self, name: str, row: int | None = None) -> float:
        """One row's value, or the sum over rows."""
        column = self.values[:, self._index[name]]
        return float(column.sum() if row is None else column[row])

    def close(self, unlink: bool = False) -> None:
        if self._shm is None:
            return
        del self.values
        self._shm.close()
        if unlink:
            unlink_segment(self._shm)
        self._shm = None
