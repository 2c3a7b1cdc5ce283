"""An I/O process's link to the inference loop: a queue of commands down, a queue of records up (frame
blocks and session errors), and a wake-up pipe each way (runtime/shm_queue.py)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from emostream.runtime.shm_queue import QueueHandle, ShmQueue, Waker

FRAMES_RECORD, ERROR_RECORD = b"F", b"E"  # the two kinds of record an I/O process receives
PENDING_BLOCKS = 256  # frame blocks kept for an I/O process whose queue is full; older ones are dropped


@dataclass(frozen=True)
class LinkHandles:
    """One I/O process's connection to the loop (picklable)."""

    commands: QueueHandle  # I/O -> loop
    frames: QueueHandle  # loop -> I/O
    to_loop: Waker
    to_worker: Waker


@dataclass
class Link:
    commands: ShmQueue
    frames: ShmQueue
    to_loop: Waker
    to_worker: Waker
    pending: deque[bytes] = field(default_factory=deque)  # records that did not fit in `frames` yet

    @classmethod
    def attach(cls, handles: LinkHandles) -> Link:
        return cls(ShmQueue.attach(handles.commands), ShmQueue.attach(handles.frames), handles.to_loop,
                   handles.to_worker)  # fmt: skip

    def send(self, record: bytes) -> bool:
        """Queues a record for the I/O process, behind any that wait; False if one had to be dropped."""
        self.pending.append(record)
        dropped = len(self.pending) > PENDING_BLOCKS
        if dropped:
            self.pending.popleft()
        self.flush()
        return not dropped

    def flush(self) -> None:
        """Moves what waits into the queue, as far as it has room."""
        while self.pending and self.frames.put(self.pending[0]):
            self.pending.popleft()
