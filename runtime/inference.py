"""The one inference loop: a thread that owns the models and runs every session's audio through the
front-end and the batched face and gesture steps. The asyncio event loop never runs model code; it hands
the loop commands through a queue and receives frames through a callback.

Scheduling (continuous batching): the thread applies every queued command (audio, controls), then
steps each group (a timeline: one face lookahead, or the body) that has a ready slot, one batched step
over all its ready slots, the groups taking turns so that a backlog in one never holds the other's frames
back; then it waits for the next command. A lone session is stepped the moment its audio completes a
frame. Under load, audio that arrives while a step runs is queued and joins the next step, so batches
grow with the load and no frame ever waits for a batch to fill. (Waiting up to a quarter of a frame
period for more slots, and the earlier fixed 500 Hz clock, both measured worse: docs/server.md.)
A session's log-mel frames feed both its face and body slots.
Each group's batcher can swap between generators with different sampler step counts, which share weights
and state layout.
When the loop falls behind, it steps with one sampler step until it catches up: frames are flagged
degraded and counted. Behind means audio waited more than `shed_after_lag_ms` in the command queue before
this thread took it (the thread is saturated), or a group holds more than `shed_after_frames` frames of a
live session's audio (a client sent a burst; the silence that flushes a finished session's last frames
does not count).

Steps run on a runner made by `make_runner(generator)`: the generator itself (eager) or an engines
backend. Backends that export or compile are made before the thread starts, for the warmed lookaheads
and step counts; a combination first asked for later would stall every session while it builds, so it
runs eager instead (logged, and counted as `eager_fallbacks`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch

from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.batcher import StreamBatcher
from emostream.runtime.body_pose import body_frames
from emostream.runtime.errors import SessionError
from emostream.runtime.models.face import FaceGenerator, FaceNetwork
from emostream.runtime.models.gesture import GestureGenerator, GestureNetwork
from emostream.runtime.rigs import BODY_FPS, FACE_FPS
from emostream.runtime.step import StepRunner, StreamingGenerator

BODY_GROUP = -1  # the key of the body group among the face groups (keyed by lookahead)
COMMANDS_PER_PASS = 64

log = logging.getLogger("emostream.inference")


@dataclass(frozen=True)
class OutFrame:
    """A frame of one stream ("face" or "body") for one session, with what its wire header needs."""

    session_id: str
    index: int
    values: np.ndarray
    capture_time_us: int  # client clock of the newest audio sample this frame used
    received_us: int  # server clock when that sample's chunk arrived (for lateness)
    degraded: bool
    stream: str = "face"


@dataclass
class _Session:
    session_id: str
    slots: dict[int, int]  # group key (a face lookahead, or BODY_GROUP) -> the session's slot in it
    steps: int
    front_end: LogMelFrontEnd
    front_state: Any
    tail_features: int = 0  # the flush and silence queued when its audio ended (not a backlog)
    samples_in: int = 0
    chunks: deque[tuple[int, int, int]] = field(default_factory=deque)  # (start, capture us, received us)


@torch.no_grad()
def warm_up(generator: StreamingGenerator, runner: StepRunner, batch: int) -> None:
    state = runner.init_state(batch)
    device = next(iter(state.values())).device
    spec = generator.spec
    inputs = {t.name: torch.zeros(batch, *t.shape, device=device) for t in spec.inputs}
    masks = torch.zeros(batch, dtype=torch.bool, device=device), torch.ones(batch, dtype=torch.bool, device=device)
    runner.step(inputs, state, torch.zeros(batch, *spec.noise.shape, device=device), *masks)


Command = tuple[str, tuple[Any, ...]]


class CommandQueue(Protocol):
    """Where the loop's thread takes its commands from: a queue here, or the pipe from the server's
    process (runtime/inference_process.py). `get` raises queue.Empty when nothing came in time."""

    def get(self, block: bool = True, timeout: float | None = None) -> Command: ...

    def get_nowait(self) -> Command: ...

    def put(self, command: Command) -> None: ...


@dataclass
class LoopStats:
    ticks: int = 0  # batched steps run
    frames: int = 0  # frames delivered
    shed_frames: int = 0  # frames made with one sampler step because the loop was behind
    eager_fallbacks: int = 0  # generators run eager because their backend was not built at start
    tick_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))  # recent step durations


class _Group:
    """One timeline (a face lookahead, or the body): a batcher, and the generator and its runner for each
    sampler step count."""

    def __init__(
        self,
        make_generator: Callable[[int], StreamingGenerator],
        n_slots: int,
        make_runner: Callable[[StreamingGenerator], StepRunner],
        stream: str,
        fps: int,
        lookahead_s: float,
    ) -> None:
        self.make_generator, self.make_runner = make_generator, make_runner
        self.stream, self.fps = stream, fps
        self.lookahead_s = lookahead_s  # audio past a frame's media time that the frame uses
        self.generators: dict[int, StreamingGenerator] = {}
        self.runners: dict[int, StepRunner] = {}
        self.batcher = StreamBatcher(self.generator(2), n_slots, self.runner(2), fps=fps)

    def generator(self, steps: int) -> StreamingGenerator:
        if steps not in self.generators:
            self.generators[steps] = self.make_generator(steps).eval()
        return self.generators[steps]

    def runner(self, steps: int) -> StepRunner:
        if steps not in self.runners:
            self.runners[steps] = self.make_runner(self.generator(steps))
        return self.runners[steps]


class InferenceCommands:
    """What the server asks of the inference loop, the same whether the loop runs on a thread of this
    process (InferenceLoop) or in a child process (runtime/inference_process.py): every call queues a
    command and returns at once; callable from any thread. Both take the same constructor."""

    def __init__(
        self,
        network: FaceNetwork,
        max_sessions: int,
        deliver: Callable[[list[OutFrame]], None],
        shed_after_frames: int = 6,
        shed_after_lag_ms: float = 15.0,
        on_error: Callable[[str, str], None] | None = None,
        make_runner: Callable[[StreamingGenerator], StepRunner] | None = None,
        gesture: GestureNetwork | None = None,
    ) -> None:
        self.network = network
        self.gesture = gesture  # None: no body stream
        self.make_runner = make_runner  # None: eager
        self.max_sessions = max_sessions
        self.deliver = deliver  # called from the loop's (or the reader's) thread; must be thread-safe
        self.on_error = on_error  # (session id, message) when a session's command fails; thread-safe too
        self.shed_after_frames = shed_after_frames
        self.shed_after_lag_ms = shed_after_lag_ms
        self.stats = LoopStats()

    def _put(self, kind: str, args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def open(self, session_id: str, sample_rate_hz: int, seed: int, emotion: np.ndarray, lookahead: int,
             steps: int, style: np.ndarray | None = None, face: bool = True) -> None:  # fmt: skip
        """A new session; with a style embedding it also gets the body stream (the server needs a
        gesture model); with face=False it gets no face stream, and no face compute is spent on it."""
        self._put("open", (session_id, sample_rate_hz, seed, emotion, lookahead, steps, style, face))

    def audio(self, session_id: str, start_sample: int, capture_time_us: int, pcm: np.ndarray) -> None:
        received_us = time.time_ns() // 1000
        self._put("audio", (session_id, start_sample, capture_time_us, received_us, pcm))

    def set_emotion(self, session_id: str, emotion: np.ndarray, transition_ms: float) -> None:
        self._put("emotion", (session_id, emotion, transition_ms))

    def set_style(self, session_id: str, style: np.ndarray) -> None:
        self._put("style", (session_id, style))

    def set_steps(self, session_id: str, steps: int) -> None:
        self._put("steps", (session_id, steps))

    def finish(self, session_id: str) -> None:
        """No more audio: flush the front-end and feed silence until the last frame is out."""
        self._put("finish", (session_id,))

    def close(self, session_id: str) -> None:
        self._put("close", (session_id,))


class InferenceLoop(InferenceCommands):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio_lag_ms = 0.0  # how long the newest audio command waited in the queue for this thread
        self.commands: CommandQueue = queue.SimpleQueue()
        self.sessions: dict[str, _Session] = {}
        self.groups: dict[int, _Group] = {}
        self._thread = threading.Thread(target=self._run, name="emostream-inference", daemon=True)
        self._stopped = threading.Event()
        self._stopping = threading.Event()

    # -- called from any thread --------------------------------------------------------------------

    def start(self, warm_lookaheads: tuple[int, ...] = (7,)) -> None:
        """Starts the thread after one step at every batch size for the given lookaheads, so that no
        session pays for the first use of a shape (kernel selection, allocations) while streaming."""
        groups = [self._group(lookahead) for lookahead in warm_lookaheads]
        if self.gesture is not None:
            groups.append(self._group(BODY_GROUP))
        for group in groups:
            for steps in (1, 2):
                for batch in range(1, self.max_sessions + 1):
                    warm_up(group.generator(steps), group.runner(steps), batch)
        self._thread.start()

    def wait(self) -> None:
        """Returns once the thread has stopped."""
        self._stopped.wait()

    def _group(self, key: int) -> _Group:
        """The face group of a lookahead, or the body group for BODY_GROUP."""
        if key not in self.groups:
            if key == BODY_GROUP:
                gesture = self.gesture
                if gesture is None:
                    raise SessionError("this server has no gesture model")
                lookahead_s = GestureGenerator(gesture).lookahead_ms / 1000.0
                self.groups[key] = _Group(lambda steps: GestureGenerator(gesture, steps), self.max_sessions,
                                          self._make_runner, "body", BODY_FPS, lookahead_s)  # fmt: skip
            else:
                self.groups[key] = _Group(lambda steps: FaceGenerator(self.network, key, steps), self.max_sessions,
                                          self._make_runner, "face", FACE_FPS, key / 120.0)  # fmt: skip
        return self.groups[key]

    def _make_runner(self, generator: StreamingGenerator) -> StepRunner:
        if self.make_runner is None:
            return generator
        if self._thread.is_alive():
            self.stats.eager_fallbacks += 1
            log.warning("inference: %s was not built at start; it runs eager", generator.engine_name)
            return generator.to(next(self.network.parameters()).device)
        return self.make_runner(generator)

    def stop(self) -> None:
        self._stopping.set()
        self.commands.put(("stop", ()))
        self._stopped.wait(timeout=5)

    def _put(self, kind: str, args: tuple[Any, ...]) -> None:
        self.commands.put((kind, args))

    # -- the loop's own thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """Applies the queued commands, steps the groups with ready slots, then waits for a command."""
        try:
            while True:
                anything_ready = any(group.batcher.ready() for group in self.groups.values())
                handled = 0
                try:
                    command = self.commands.get(timeout=0.0 if anything_ready else None)
                    while True:
                        if command[0] == "stop":
                            return
                        self._handle(*command)
                        handled += 1
                        if handled == COMMANDS_PER_PASS:  # bounded, so a flood of audio cannot starve the steps
                            break
                        command = self.commands.get_nowait()
                except queue.Empty:
                    if handled == 0:  # nothing was waiting: the thread is not behind the clients
                        self.audio_lag_ms = 0.0
                try:
                    self._step_ready()
                except Exception:
                    log.exception("inference: a step failed; the loop goes on")
        finally:
            self._stopped.set()

    def _handle(self, kind: str, args: tuple[Any, ...]) -> None:
        try:
            getattr(self, f"_on_{kind}")(*args)
        except SessionError as exc:  # a vanished session's late audio, a full group: never fatal here
            log.debug("inference: %s %s", kind, exc)
        except Exception as exc:  # one session's bad command must not stop the loop that serves everyone
            log.exception("inference: %s command failed; the loop goes on", kind)
            session_id = args[0] if args and isinstance(args[0], str) else None
            if session_id is not None:
                self._on_close(session_id)
                if self.on_error is not None:
                    self.on_error(session_id, f"{kind} failed: {exc.__class__.__name__}")

    def _on_open(self, session_id: str, rate: int, seed: int, emotion: np.ndarray, lookahead: int, steps: int,
                 style: np.ndarray | None, face: bool) -> None:  # fmt: skip
        front_end = LogMelFrontEnd(rate)  # first: it refuses a bad rate before a slot is taken
        wanted = ([lookahead] if face else []) + ([BODY_GROUP] if style is not None else [])
        if not wanted:
            raise SessionError(f"session {session_id} asks for no stream")
        slots: dict[int, int] = {}
        try:
            for key in wanted:
                slots[key] = self._group(key).batcher.open(seed, emotion, style if key == BODY_GROUP else None)
        except SessionError:  # a full group: give back what was taken
            for key, slot in slots.items():
                self.groups[key].batcher.close(slot)
            raise
        self.sessions[session_id] = _Session(session_id, slots, steps, front_end, front_end.init_state())

    def _session(self, session_id: str) -> _Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise SessionError(f"no session {session_id}")
        return session

    def _on_audio(self, session_id: str, start: int, capture_us: int, received_us: int, pcm: np.ndarray) -> None:
        s = self._session(session_id)
        self.audio_lag_ms = (time.time_ns() // 1000 - received_us) / 1000
        if start > s.samples_in:  # a gap the client left: silence keeps media time right
            self._feed(s, np.zeros(start - s.samples_in, pcm.dtype))
        s.chunks.append((start, capture_us, received_us))
        while len(s.chunks) > 256:
            s.chunks.popleft()
        self._feed(s, pcm)

    def _feed(self, s: _Session, pcm: np.ndarray) -> None:
        features, s.front_state = s.front_end.push(s.front_state, pcm)
        s.samples_in += pcm.shape[0]
        self._feed_features(s, features)

    def _feed_features(self, s: _Session, features: np.ndarray) -> None:
        for key, slot in s.slots.items():
            self.groups[key].batcher.feed(slot, features)

    def _on_emotion(self, session_id: str, emotion: np.ndarray, transition_ms: float) -> None:
        for key, slot in self._session(session_id).slots.items():
            self.groups[key].batcher.slot(slot).emotion.set(emotion, transition_ms)

    def _on_style(self, session_id: str, style: np.ndarray) -> None:
        s = self._session(session_id)
        if BODY_GROUP in s.slots:
            self.groups[BODY_GROUP].batcher.set_style(s.slots[BODY_GROUP], style)

    def _on_steps(self, session_id: str, steps: int) -> None:
        self._session(session_id).steps = steps

    def _on_finish(self, session_id: str) -> None:
        s = self._session(session_id)
        features, s.front_state = s.front_end.flush(s.front_state)
        self._feed_features(s, features)
        # Silence past the end so the frames that wait for the lookahead come out.
        lookahead_s = max(self.groups[key].lookahead_s for key in s.slots)
        tail = int(np.ceil((lookahead_s + 0.05) * s.front_end.input_rate_hz))
        silent, s.front_state = s.front_end.push(s.front_state, np.zeros(tail, np.float32), max_seconds=None)
        self._feed_features(s, silent)
        s.tail_features = features.shape[0] + silent.shape[0]

    def _on_close(self, session_id: str) -> None:
        s = self.sessions.pop(session_id, None)
        if s is not None:
            for key, slot in s.slots.items():
                self.groups[key].batcher.close(slot)

    def _stamps(self, s: _Session, frame: int, group: _Group) -> tuple[int, int]:
        """(client capture time, server receive time) of the newest sample frame `frame` of `group` used:
        the sample at its media time plus the group's lookahead, plus the resampler's wait past it."""
        rate = s.front_end.input_rate_hz
        newest = min(s.samples_in - 1, s.front_end.newest_input_sample(frame / group.fps + group.lookahead_s))
        for start, capture_us, received_us in reversed(s.chunks):
            if start <= newest:
                capture = capture_us + round((newest - start) * 1e6 / rate) if capture_us else 0
                return capture, received_us
        return 0, 0

    def _step_ready(self) -> None:
        """Batched steps for each group with a ready slot, in proportion to the groups' frame rates (two
        face steps to one body step), so that under load every stream falls behind at the same pace; the
        group whose frame has waited longest goes first. A
        backlog takes its steps pass by pass, between passes over the commands, so a session that sent a
        second of audio at once delays no other's."""
        by_slot = {(key, slot): s for s in self.sessions.values() for key, slot in s.slots.items()}
        slowest = min((group.fps for group in self.groups.values()), default=1)
        ready = [(key, group, slots) for key, group in self.groups.items() if (slots := group.batcher.ready())]
        if len(ready) > 1:  # earliest deadline first: the group whose frame's audio came in longest ago
            ready.sort(key=lambda item: -self._waited_s(item[0], item[1], item[2], by_slot))
        for key, group, _ in ready:
            for _ in range(max(1, round(group.fps / slowest))):
                if not group.batcher.ready() or self._stopping.is_set():
                    break
                self._step_group(key, group, by_slot)

    @staticmethod
    def _waited_s(key: int, group: _Group, ready: list[int], by_slot: dict[tuple[int, int], _Session]) -> float:
        """How long (in media time) the newest audio that the most overdue frame of the group's `ready`
        slots needs has been in. A chunk that completes a face and a body frame completes them at different
        points: the one whose audio ended early in the chunk has already waited most of a chunk for the rest."""
        waited = -float("inf")
        for i in ready:
            if (s := by_slot.get((key, i))) is not None:
                frame = max(0, group.batcher.slot(i).steps_taken - group.batcher.delay)  # warm-up: for frame 0
                in_s = s.samples_in / s.front_end.input_rate_hz
                waited = max(waited, in_s - frame / group.fps - group.lookahead_s)
        return waited

    def _step_group(self, key: int, group: _Group, by_slot: dict[tuple[int, int], _Session]) -> None:
        batcher = group.batcher
        ready = batcher.ready()
        sessions = {i: by_slot.get((key, i)) for i in ready}  # None: no session (never expected; stepped anyway)
        queued = [batcher.slot(i).pending.shape[0] - (s.tail_features if s is not None else 0)
                  for i, s in sessions.items()]  # fmt: skip
        backlog = max(queued) // batcher.inputs_per_step
        shed = backlog > self.shed_after_frames or self.audio_lag_ms > self.shed_after_lag_ms
        steps_of = {i: s.steps if s is not None else 2 for i, s in sessions.items()}
        # Slots that asked for different step counts run in separate steps of the same batcher.
        for steps in sorted(set(steps_of.values())):
            batcher.runner = group.runner(1 if shed else steps)
            started = time.perf_counter()
            frames = batcher.tick(only={i for i in ready if steps_of[i] == steps})
            if group.stream == "body" and frames:  # pose features -> the wire layout
                wire = body_frames(np.stack([f.values for f in frames]))
                frames = [replace(f, values=v) for f, v in zip(frames, wire, strict=True)]
            self.stats.tick_ms.append((time.perf_counter() - started) * 1e3)
            self.stats.ticks += 1
            out = []
            for f in frames:
                if (s := sessions[f.slot]) is not None:
                    stamps = self._stamps(s, f.index, group)
                    out.append(OutFrame(s.session_id, f.index, f.values, *stamps, shed, group.stream))
            self.stats.frames += len(out)
            if shed:
                self.stats.shed_frames += len(out)
            if out:
                self.deliver(out)
