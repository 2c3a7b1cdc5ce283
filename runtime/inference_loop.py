"""The inference loop: owns the models, reads every session's audio from the audio table, ticks the slot
table, and hands the frames to the I/O processes. It runs on a thread (`InferenceThread`, for tests and
small setups) or in a process of its own (`InferenceProcess`, what `emostream serve` runs), with the same
code: everything it shares with the I/O side lives in shared memory (runtime/audio_table.py,
runtime/shm_queue.py, runtime/shared_counters.py).

Scheduling: the loop sleeps until an I/O process wakes it (audio or a command came in), then ticks, but
never sooner than `min_tick_ms` after the previous tick began. Under load, everything that arrived
during that interval joins one tick, so batches grow with the load while a lone session waits at most
`min_tick_ms`. A tick: apply the queued commands of every I/O process, run the front-end, step every
timeline's ready slots (runtime/slot_table.py), write one frame block per stream to each I/O process
that has frames in it, and wake those processes. A slot with more audio than one tick's rounds use is
stepped again at once, without waiting for new audio.

There is no shedding: a loop that falls behind makes its frames late, and counts them, but never with
fewer sampler steps than the session asked for. One step is not within the lip-sync targets (the mouth
gapes: docs/server.md), and a balancer is told how many slots are free (runtime/balancer.py) so that new
sessions go to another worker before this one is overloaded.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler
from typing import Any

import numpy as np
import torch

from emostream.runtime.audio_table import AudioTable, AudioTableHandle
from emostream.runtime.errors import StartInterrupted
from emostream.runtime.links import ERROR_RECORD, FRAMES_RECORD, Link, LinkHandles
from emostream.runtime.messages import (
    VOICE_EMOTION,
    CloseSlot,
    Command,
    ControlSlot,
    FrameBlock,
    OpenSlot,
    StreamFrames,
    decode_commands,
)
from emostream.runtime.metrics import LOOP_FIELDS, TICK_BUCKETS_MS
from emostream.runtime.models.face import FaceNetwork
from emostream.runtime.models.gesture import GestureNetwork
from emostream.runtime.models.voice_emotion import VoiceEmotion
from emostream.runtime.noise import noise_bank
from emostream.runtime.shared_counters import CountersHandle, SharedCounters
from emostream.runtime.shm_queue import ShmQueue, Waker
from emostream.runtime.slot_table import SlotTable
from emostream.runtime.step import StepRunner, StreamingGenerator
from emostream.runtime.timelines import BODY, DEFAULT_STEPS, server_timelines, voice_track

log = logging.getLogger("emostream.inference")
IDLE_WAIT_S = 0.5  # the longest the loop sleeps without a wake-up (it then checks for a stop)


@dataclass(frozen=True)
class LoopConfig:
    max_sessions: int  # sessions admitted at once (runtime/audio_table.py: slots beyond it cover releases)
    min_tick_ms: float = 4.0  # ticks begin at least this far apart (docs/server.md: the latency it costs)
    # Steps per timeline per tick for one slot. One: a slot whose audio completes two frames at once makes
    # the second at the next tick, which keeps every step a full batch (docs/server.md has the figures).
    max_rounds: int = 1
    mode: str = "compact"  # runtime/slot_table.py: "masked" on a GPU
    device: str = "cpu"
    torch_threads: int = 1
    warm_lookaheads: tuple[int, ...] = (7,)  # face lookaheads built and warmed before the first session

    @property
    def slots(self) -> int:
        """Rows of the tables: the sessions plus a few whose sessions have ended and that the loop has
        not given back yet (a tick or two)."""
        return self.max_sessions + max(2, -(-self.max_sessions // 8))


class InferenceLoop:
    """The loop itself. `make_runner` wraps each generator for a backend (None: eager on config.device)."""

    def __init__(
        self,
        config: LoopConfig,
        face: FaceNetwork | None,
        gesture: GestureNetwork | None,
        audio: AudioTable,
        links: list[Link],
        stats: SharedCounters,
        make_runner: Callable[[StreamingGenerator], StepRunner] | None = None,
        voice: VoiceEmotion | None = None,
    ) -> None:
        self.config, self.audio, self.links, self.stats = config, audio, links, stats
        self.device = torch.device(config.device)
        self._factory = make_runner
        self._started = False
        face = face.to(self.device) if face is not None else None
        gesture = gesture.to(self.device) if gesture is not None else None
        masks = config.mode == "masked"
        timelines = server_timelines(face, gesture, config.slots, self._runner, masks=masks)
        track = None if voice is None else voice_track(voice.to(self.device), config.slots, self._runner, masks)
        self.table = SlotTable(audio, timelines, self.device, config.max_rounds, config.mode, track)
        self.has_body = gesture is not None
        self.has_face = face is not None
        self.generation = np.zeros(config.slots, np.int64)  # of the session each slot serves
        self.owner = np.full(config.slots, -1, np.int64)  # the link each slot's frames go to
        self.stop_event = threading.Event()
        self.wake_stop = Waker(*multiprocessing.Pipe(duplex=False))

    def _runner(self, generator: StreamingGenerator) -> StepRunner:
        if self._factory is None:
            return generator.to(self.device)
        if self._started:  # building (exporting, compiling) now would stall every session
            self.stats.add("eager_fallbacks")
            log.warning("inference: %s was not built at start; it runs eager", generator.engine_name)
            return generator.to(self.device)
        return self._factory(generator)

    def warm(self) -> None:
        """Builds the runners of the default timelines and steps each once at every batch size, so that no
        session pays for the first use of a shape while streaming."""
        noise_bank()  # made once, here rather than at the first session's first step
        keys: list[str | int] = list(self.config.warm_lookaheads) if self.has_face else []
        keys += [BODY] if self.has_body else []
        for key in keys:
            timeline = self.table.timeline(key)
            runner = timeline.runner(DEFAULT_STEPS)
            spec = timeline.generator(DEFAULT_STEPS).spec
            for batch in range(1, self.config.slots + 1):
                _warm_step(runner, spec, batch, timeline.device)
        if (voice := self.table.voice) is not None:
            for batch in range(1, self.config.slots + 1):
                _warm_step(voice.runner, voice.generator.spec, batch, voice.device)
        self._started = True

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Until `stop`: wait for a wake-up, tick, repeat."""
        poller = select.poll()
        for waker in [link.to_loop for link in self.links] + [self.wake_stop]:
            poller.register(waker.fileno(), select.POLLIN)
        min_tick_s = self.config.min_tick_ms / 1000
        last_tick = 0.0
        while not self.stop_event.is_set():
            busy = self.table.has_backlog()
            poller.poll(0 if busy else int(IDLE_WAIT_S * 1000))
            for waker in [link.to_loop for link in self.links]:
                waker.drain()
            wait = last_tick + min_tick_s - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            last_tick = time.perf_counter()
            try:
                self.tick()
            except Exception:
                log.exception("inference: a tick failed; the loop goes on")
            self.stats.set("heartbeat_s", time.time())

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_stop.wake()

    def tick(self) -> None:
        started = time.perf_counter()
        before = dict(self.table.seconds)
        for index, link in enumerate(self.links):
            for record in link.commands.get_all():
                for command in decode_commands(record):
                    self._apply(index, command)
        self.table.run_frontend()
        steps_before = self.table.voice_steps
        estimates = self.table.step_voice()  # before the timelines, whose emotion may follow it
        self.stats.add("voice_estimates", self.table.voice_steps - steps_before)
        if estimates is not None:
            self._deliver(estimates)
        # Each timeline's frames go out as soon as they are made: the face does not wait for the body.
        for timeline in list(self.table.timelines.values()):
            frames = self.table.step_timeline(timeline)
            if frames is not None:
                self._deliver(frames)
        for link in self.links:
            link.flush()
        elapsed = time.perf_counter() - started
        self.stats.add("ticks")
        self.stats.add("tick_seconds", elapsed)
        for key in ("step", "frontend"):
            self.stats.add(f"{key}_seconds", self.table.seconds[key] - before[key])
        elapsed_ms = elapsed * 1000
        for bound in TICK_BUCKETS_MS:
            if elapsed_ms <= bound:
                self.stats.add(f"tick_le_{bound}")

    def _deliver(self, frames: StreamFrames) -> None:
        """One frame block per I/O process that has sessions among `frames`, and a wake-up for each."""
        if frames.stream != VOICE_EMOTION:
            self.stats.add(f"frames_{frames.stream}", len(frames))
        owners = self.owner[frames.slots]
        for index in np.unique(owners).tolist():
            if index < 0:  # a slot closed while its frames were made
                continue
            block = FrameBlock.of(frames, self.generation, np.flatnonzero(owners == index))
            if not self.links[index].send(FRAMES_RECORD + block.encode()):
                self.stats.add("blocks_dropped")
            self.links[index].to_worker.wake()

    def _apply(self, link: int, command: Command) -> None:
        slot, generation = command.slot, command.generation
        try:
            if isinstance(command, OpenSlot):
                self.table.open(slot, command.settings)
                self.generation[slot], self.owner[slot] = generation, link
            elif self.generation[slot] != generation:
                if isinstance(command, CloseSlot) and self.audio.generation[slot] == generation:
                    self.audio.release(slot)  # its open failed or never came: give the slot back anyway
                return
            elif isinstance(command, ControlSlot):
                self.table.control(slot, command.change, command.from_sample)
            elif isinstance(command, CloseSlot):
                self.table.close(slot)
                self.owner[slot] = -1
                self.audio.release(slot)
        except Exception as exc:  # one session's bad command must not stop the loop that serves everyone
            log.exception("inference: %s for slot %d failed", type(command).__name__, slot)
            self.stats.add("commands_failed")
            self.table.close(slot)
            self.owner[slot] = -1
            self.links[link].send(ERROR_RECORD + pickle.dumps((slot, generation, f"{type(exc).__name__}: {exc}")))
            self.links[link].to_worker.wake()


@torch.no_grad()
def _warm_step(runner: StepRunner, spec: Any, batch: int, device: torch.device) -> None:
    state = runner.init_state(batch)
    inputs = {t.name: torch.zeros(batch, *t.shape, device=device) for t in spec.inputs}
    masks = torch.zeros(batch, dtype=torch.bool, device=device), torch.ones(batch, dtype=torch.bool, device=device)
    runner.step(inputs, state, torch.zeros(batch, *spec.noise.shape, device=device), *masks)


# -- where the loop runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopSpec:
    """Everything a child process needs to build the loop (picklable)."""

    config: LoopConfig
    face: FaceNetwork | None
    gesture: GestureNetwork | None
    audio: AudioTableHandle
    links: tuple[LinkHandles, ...]
    stats: CountersHandle
    make_runner: Callable[[StreamingGenerator], StepRunner] | None
    log_level: int
    voice: VoiceEmotion | None = None


def _child_main(spec: LoopSpec, ready: Any, log_queue: Any) -> None:
    """The child process: builds and warms the loop, says ready, runs until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group; the server stops us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers = [QueueHandler(log_queue)]
    root.setLevel(spec.log_level)
    torch.set_num_threads(spec.config.torch_threads)
    try:
        audio = AudioTable.attach(spec.audio)
        links = [Link.attach(handles) for handles in spec.links]
        stats = SharedCounters.attach(spec.stats)
        loop = InferenceLoop(spec.config, spec.face, spec.gesture, audio, links, stats, spec.make_runner, spec.voice)
        loop.warm()
    except BaseException:
        ready.send(("failed", traceback.format_exc()))
        return
    import gc

    gc.collect()
    gc.freeze()  # the models and warm-up live as long as the process: keep them out of full collections
    stats.set("pid", os.getpid())
    stats.set("heartbeat_s", time.time())  # alive from now: the I/O workers watch this
    ready.send(("ready", ""))
    parent = os.getppid()

    def watch_parent() -> None:  # never outlive the server
        while not loop.stop_event.wait(1.0):
            if os.getppid() != parent:
                loop.stop()

    def wait_for_stop() -> None:  # any message from the server, or its end of the pipe closing: stop
        with contextlib.suppress(EOFError, OSError):
            ready.recv()
        loop.stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    threading.Thread(target=wait_for_stop, daemon=True).start()
    loop.run()


COMMAND_QUEUE_BYTES = 1 << 20  # per I/O process: thousands of commands
FRAME_QUEUE_BYTES = 16 << 20  # per I/O process: about a second of frames at the largest batch
START_TIMEOUT_S = 900.0  # exporting and warming every batch size of a large server takes minutes
STOP_TIMEOUT_S = 5.0
WHERE = ("thread", "process")


class InferenceHost:
    """Makes what the loop shares with the I/O side (the audio table, the loop's counters, one link per
    I/O process) and runs the loop on a thread of this process or in a child process of its own (its own
    GIL: the default for `emostream serve`). The child is spawned (a fork would copy torch's thread pools
    mid-state), logs through this process's handlers, and ends when told to or when this process is gone."""

    def __init__(
        self,
        config: LoopConfig,
        face: FaceNetwork | None,
        gesture: GestureNetwork | None,
        make_runner: Callable[[StreamingGenerator], StepRunner] | None = None,
        n_workers: int = 1,
        where: str = "process",
        voice: VoiceEmotion | None = None,
    ) -> None:
        if where not in WHERE:
            raise ValueError(f"the inference loop runs on a {' or in a '.join(WHERE)}, not {where!r}")
        self.config, self.face, self.gesture, self.make_runner, self.where = config, face, gesture, make_runner, where
        self.voice = voice
        self._context = multiprocessing.get_context("spawn")
        self.audio = AudioTable.create_shared(config.slots, self._context.Lock(), config.max_sessions)
        self.stats = SharedCounters.create(LOOP_FIELDS)
        self._queues: list[ShmQueue] = []
        self.links: list[LinkHandles] = []
        for _ in range(n_workers):
            commands = ShmQueue.create(COMMAND_QUEUE_BYTES, self._context.Lock())
            frames = ShmQueue.create(FRAME_QUEUE_BYTES, self._context.Lock())
            self._queues += [commands, frames]
            self.links.append(LinkHandles(commands.handle(), frames.handle(), Waker(*self._context.Pipe(False)),
                                          Waker(*self._context.Pipe(False))))  # fmt: skip
        self._loop: InferenceLoop | None = None
        self._thread: threading.Thread | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: Any = None
        self._listener: Any = None
        self._interrupted = False  # `interrupt` came before the loop was ready
        self._ready = False

    def start(self) -> None:
        """Returns once the loop is built, warm and running; raises RuntimeError if it could not start, and
        StartInterrupted if `interrupt` came first."""
        if self.where == "thread":
            links = [Link.attach(handles) for handles in self.links]
            self._loop = InferenceLoop(self.config, self.face, self.gesture, self.audio, links, self.stats,
                                       self.make_runner, self.voice)  # fmt: skip
            self._loop.warm()
            self.stats.set("pid", os.getpid())
            self.stats.set("heartbeat_s", time.time())
            self._thread = threading.Thread(target=self._loop.run, name="emostream-inference", daemon=True)
            self._thread.start()
            return
        from logging.handlers import QueueListener

        log_queue = self._context.Queue()
        self._listener = QueueListener(log_queue, _ForwardToLogger(), respect_handler_level=False)
        self._listener.start()
        self._control, child_end = self._context.Pipe(duplex=True)
        spec = LoopSpec(self.config, self.face, self.gesture, self.audio.handle(), tuple(self.links),
                        self.stats.handle(), self.make_runner, logging.getLogger().getEffectiveLevel(),
                        self.voice)  # fmt: skip
        self._process = self._context.Process(target=_child_main, args=(spec, child_end, log_queue),
                                              name="emostream-inference", daemon=True)  # fmt: skip
        self._process.start()
        child_end.close()
        if self._interrupted:  # a signal while the process was being made
            self._process.kill()
        if not self._control.poll(START_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError(f"the inference process was not ready within {START_TIMEOUT_S:.0f} s")
        try:
            status, detail = self._control.recv()
        except EOFError:
            status, detail = "failed", f"it exited (code {self._process.exitcode})"
        if self._interrupted:  # killed, or ready a moment before it was killed
            self._process.join(STOP_TIMEOUT_S)
            raise StartInterrupted("stopped before the inference process was ready")
        if status != "ready":
            self._process.join(STOP_TIMEOUT_S)
            raise RuntimeError(f"the inference process failed to start:\n{detail}")
        self._ready = True
        log.info("inference process %d ready", self._process.pid)

    def interrupt(self) -> None:
        """Ends a start in progress at once (a stop signal during the first start's export would otherwise
        wait for it, tens of seconds): the inference process is killed and `start` raises StartInterrupted.
        Safe from a signal handler or another thread; nothing once the loop is ready, or on a thread."""
        if self._ready or self.where == "thread":
            return
        self._interrupted = True
        if self._process is not None and self._process.pid is not None:
            with contextlib.suppress(OSError):
                self._process.kill()

    @property
    def loop(self) -> InferenceLoop | None:
        """The loop itself when it runs on a thread here (None in a child process)."""
        return self._loop

    def alive(self) -> bool:
        if self._thread is not None:
            return self._thread.is_alive()
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else os.getpid()

    def stop(self) -> None:
        """Stops the loop (killing a child that does not stop in time)."""
        if self._loop is not None and self._thread is not None:
            self._loop.stop()
            self._thread.join(STOP_TIMEOUT_S)
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._control.send("stop")
            self._process.join(STOP_TIMEOUT_S)
            if self._process.is_alive():
                log.warning("inference process %d did not stop in %.0f s; killing it", self._process.pid,
                            STOP_TIMEOUT_S)  # fmt: skip
                self._process.kill()
                self._process.join(STOP_TIMEOUT_S)
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def close(self) -> None:
        """Frees the shared memory (after stop, and after every I/O process has let go)."""
        self.audio.close(unlink=True)
        self.stats.close(unlink=True)
        for queue in self._queues:
            queue.close(unlink=True)
        self._queues = []


class _ForwardToLogger(logging.Handler):
    """A record from the child, through this process's logger of the same name and its handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
