"""The inference loop in a child process of its own, so that it has a GIL of its own.

On a thread, the loop shares the server's GIL with the event loop: under load the two hand it to each
other thousands of times a second, and each waits for the other's Python work. Measured at 32 sessions on
the 2-core machine, the server process used about 1.05 cores while most of the other core idled, and
frames came late (docs/server.md, "Inference in its own process"). In a child process the loop and the
sockets each get a core.

`InferenceProcess` takes the same commands as `InferenceLoop` (runtime/inference.InferenceCommands) and
calls the same `deliver` and `on_error` callbacks, from a reader thread. Two pipes join the processes:
commands go down one, and the loop's thread in the child reads them straight from it (no relay thread
there); frames, session errors, the loop's stats and its log records come back up the other. The child
is started with `spawn` (a fork would copy torch's thread pools mid-state) and ends when told to or when
the pipe from its parent closes, so it never outlives the server. If the child dies, every open session
gets an error and new sessions are refused with one.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from emostream.runtime.inference import Command, InferenceCommands, InferenceLoop, LoopStats, OutFrame
from emostream.runtime.models.face import FaceNetwork
from emostream.runtime.models.gesture import GestureNetwork
from emostream.runtime.step import StepRunner, StreamingGenerator

log = logging.getLogger("emostream.inference")
START_TIMEOUT_S = 900.0  # exporting and warming every batch size of a large server takes minutes
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LoopSpec:
    """Everything the child needs to build its InferenceLoop; pickled across the process boundary."""

    network: FaceNetwork
    gesture: GestureNetwork | None
    max_sessions: int
    shed_after_frames: int
    shed_after_lag_ms: float
    make_runner: Callable[[StreamingGenerator], StepRunner] | None  # picklable: None or a BackendFactory
    warm_lookaheads: tuple[int, ...]
    torch_threads: int
    log_level: int


@dataclass(frozen=True)
class FrameBatch:
    """The frames of one delivery (one group's step: one stream, one degraded flag) as arrays: a few
    arrays to pickle instead of an object per frame."""

    stream: str
    degraded: bool
    session_ids: list[str]
    indices: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, channels) float32
    capture_time_us: np.ndarray  # (n,) int64
    received_us: np.ndarray  # (n,) int64

    @classmethod
    def pack(cls, frames: list[OutFrame]) -> FrameBatch:
        ints = np.array([(f.index, f.capture_time_us, f.received_us) for f in frames], np.int64).reshape(-1, 3)
        values = np.stack([f.values for f in frames])
        return cls(frames[0].stream, frames[0].degraded, [f.session_id for f in frames], ints[:, 0], values,
                   ints[:, 1], ints[:, 2])  # fmt: skip

    def unpack(self) -> list[OutFrame]:
        fields = zip(self.session_ids, self.indices.tolist(), self.values, self.capture_time_us.tolist(),
                     self.received_us.tolist(), strict=True)  # fmt: skip
        return [OutFrame(session_id, index, v, capture, received, self.degraded, self.stream)
                for session_id, index, v, capture, received in fields]  # fmt: skip


@dataclass(frozen=True)
class StatsUpdate:
    """The loop's counters, and the step durations since the last update."""

    ticks: int
    frames: int
    shed_frames: int
    eager_fallbacks: int
    new_tick_ms: list[float]


class PipeCommands:
    """The child loop's command queue: commands read straight from the pipe. A closed pipe (the server's
    process is gone) reads as a stop command."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, block: bool = True, timeout: float | None = None) -> Command:
        try:
            if not self.connection.poll(timeout if block else 0.0):
                raise queue.Empty
            command: Command = self.connection.recv()
            return command
        except (EOFError, OSError):
            return ("stop", ())

    def get_nowait(self) -> Command:
        return self.get(block=False)

    def put(self, command: Command) -> None:
        raise RuntimeError("the child's commands come from the server's process")


class _PipeLog:
    """The queue a QueueHandler in the child puts its (already formatted, picklable) records on."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self.send = send

    def put_nowait(self, record: logging.LogRecord) -> None:
        self.send(("log", record))


def _child_main(commands: Connection, results: Connection, spec: LoopSpec) -> None:
    """The child process: builds and warms the loop, says ready, and runs it until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the server stops us
    torch.set_num_threads(spec.torch_threads)
    send_lock = threading.Lock()
    reported = [0]  # ticks already reported

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            results.send(message)

    # Log records go up the pipe and out through the server's own handlers, in the server's format.
    root = logging.getLogger()
    root.handlers = [QueueHandler(_PipeLog(send))]  # type: ignore[arg-type]
    root.setLevel(spec.log_level)

    def stats_update(stats: LoopStats) -> StatsUpdate:
        new = min(stats.ticks - reported[0], len(stats.tick_ms))
        reported[0] = stats.ticks
        recent = [stats.tick_ms[-k] for k in range(new, 0, -1)]  # indexing from the end: no copy of the deque
        return StatsUpdate(stats.ticks, stats.frames, stats.shed_frames, stats.eager_fallbacks, recent)

    loop: InferenceLoop
    try:
        loop = InferenceLoop(
            spec.network, spec.max_sessions,
            lambda frames: send(("frames", FrameBatch.pack(frames), stats_update(loop.stats))),
            spec.shed_after_frames, spec.shed_after_lag_ms,
            on_error=lambda session_id, message: send(("error", session_id, message)),
            make_runner=spec.make_runner, gesture=spec.gesture,
        )  # fmt: skip
        loop.commands = PipeCommands(commands)
        loop.start(spec.warm_lookaheads)
    except BaseException:
        send(("failed", traceback.format_exc()))
        return
    import gc

    gc.collect()
    gc.freeze()  # the model and warm-up live as long as the process: keep them out of full collections
    send(("ready", stats_update(loop.stats)))
    loop.wait()
    send(("stopped", stats_update(loop.stats)))


def _log_record(record: logging.LogRecord) -> None:
    """A record from the child, through this process's handlers."""
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class InferenceProcess(InferenceCommands):
    """An InferenceLoop in a child process; same constructor, commands and callbacks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_sessions: set[str] = set()  # told of an error if the child dies
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._commands: Connection | None = None
        self._results: Connection | None = None
        self._send_lock = threading.Lock()  # commands come from the event loop and from stop()'s thread
        self._reader = threading.Thread(target=self._read, name="emostream-inference-reader", daemon=True)
        self._stopping = False
        self._dead = False

    def start(self, warm_lookaheads: tuple[int, ...] = (7,)) -> None:
        """Starts the child and returns once its loop is built and warm; raises RuntimeError with the
        child's traceback if it failed."""
        commands_in, self._commands = self._context.Pipe(duplex=False)
        self._results, results_out = self._context.Pipe(duplex=False)
        spec = LoopSpec(self.network, self.gesture, self.max_sessions, self.shed_after_frames,
                        self.shed_after_lag_ms, self.make_runner, warm_lookaheads, torch.get_num_threads(),
                        logging.getLogger().getEffectiveLevel())  # fmt: skip
        self._process = self._context.Process(
            target=_child_main, args=(commands_in, results_out, spec), name="emostream-inference", daemon=True
        )
        self._process.start()
        commands_in.close()  # the child's ends: closing ours lets each side see the other go
        results_out.close()
        message = self._start_message()
        if message[0] != "ready":
            self._process.join(STOP_TIMEOUT_S)
            raise RuntimeError(f"the inference process failed to start:\n{message[1]}")
        self._update(message[1])
        self._reader.start()
        log.info("inference process %d ready", self._process.pid)

    def _start_message(self) -> tuple[Any, ...]:
        """The child's first message that is not a log record (those, such as engine builds, are passed
        on): ready, or failed with its traceback."""
        assert self._process is not None and self._results is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._results.poll(1.0):
                message: tuple[Any, ...] = self._results.recv()
                if message[0] != "log":
                    return message
                _log_record(message[1])
            elif not self._process.is_alive():
                raise RuntimeError(f"the inference process exited while starting (code {self._process.exitcode})")
            elif time.monotonic() > deadline:
                self._process.kill()
                raise RuntimeError(f"the inference process was not ready within {START_TIMEOUT_S:.0f} s")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _put(self, kind: str, args: tuple[Any, ...]) -> None:
        if kind == "open":
            self.open_sessions.add(args[0])
        elif kind == "close":
            self.open_sessions.discard(args[0])
        if self._dead or self._commands is None:
            self._refuse(kind, args)
            return
        try:
            with self._send_lock:
                self._commands.send((kind, args))
        except (BrokenPipeError, OSError):  # the child is gone; the reader tells the open sessions
            self._refuse(kind, args)

    def _refuse(self, kind: str, args: tuple[Any, ...]) -> None:
        if kind == "open" and self.on_error is not None:
            self.open_sessions.discard(args[0])
            self.on_error(args[0], "the inference process is not running")

    def stop(self) -> None:
        """Stops the child (killing it if it does not stop in time) and the reader."""
        self._stopping = True
        if self._process is None:
            return
        self._put("stop", ())
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            log.warning("inference process %d did not stop in %.0f s; killing it", self._process.pid, STOP_TIMEOUT_S)
            self._process.kill()
            self._process.join(STOP_TIMEOUT_S)
        if self._reader.is_alive():
            self._reader.join(STOP_TIMEOUT_S)

    def _read(self) -> None:
        """The reader thread: frames, errors and stats from the child, until its pipe closes."""
        assert self._results is not None
        while True:
            try:
                message = self._results.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "frames":
                self._update(message[2])
                self.deliver(message[1].unpack())
            elif kind == "error":
                self.open_sessions.discard(message[1])
                if self.on_error is not None:
                    self.on_error(message[1], message[2])
            elif kind == "log":
                _log_record(message[1])
            elif kind == "stopped":
                self._update(message[1])
        self._dead = True
        if not self._stopping:
            exit_code = self._process.exitcode if self._process is not None else None
            log.error("the inference process died (exit code %s); its sessions end", exit_code)
            for session_id in list(self.open_sessions):
                self.open_sessions.discard(session_id)
                if self.on_error is not None:
                    self.on_error(session_id, "the inference process died")

    def _update(self, update: StatsUpdate) -> None:
        stats = self.stats
        stats.ticks, stats.frames = update.ticks, update.frames
        stats.shed_frames, stats.eager_fallbacks = update.shed_frames, update.eager_fallbacks
        stats.tick_ms.extend(update.new_tick_ms)
