"""One server session as a Sans-I/O state machine: it is fed the client's messages, the inference loop's
frames and the time, and it decides everything the session says and does; the asyncio server only moves
bytes (websockets' protocol/connection split, runtime/server.py being the thin half).

It owns: hello and admission (token, streams, styles, a slot), the header, clock pongs, controls (checked
whole, then applied whole: a refused update changes nothing), audio checks (every bad chunk is answered
with `bad_audio` and dropped; the session goes on and hears silence in its place), the outbox policy
(a client that reads too slowly is sent the newest frames; the rest are dropped and counted per stream),
the end (the last frame of each stream flagged FINAL, then `end`), idle and stats timers.

Its effects on the world go through two narrow ports: `AudioPort` (claim a slot, write samples) and
`CommandPort` (messages to the inference loop). What it has to send is taken with `next_message`; when
`close_code` is set after the outbox is empty, the connection is closed with it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from emostream.runtime import protocol as P
from emostream.runtime.audio import LogMelFrontEnd, validate_pcm
from emostream.runtime.controls import FEATURE_MS, emotion_controls, lookahead_from_ms
from emostream.runtime.errors import AudioFormatError, ProtocolError
from emostream.runtime.messages import (
    VOICE_EMOTION,
    CloseSlot,
    Command,
    ControlSlot,
    OpenSlot,
    SlotChange,
    SlotSettings,
)
from emostream.runtime.rigs import BODY_CHANNELS, BODY_FPS, FACE_CHANNELS, FACE_FPS, face_strength_gains

STREAM_INFO = {"face": P.StreamInfo(FACE_FPS, FACE_CHANNELS), "body": P.StreamInfo(BODY_FPS, BODY_CHANNELS)}
OUTBOX_HARD_LIMIT = 240  # frames per stream (4 s of face) queued for a client, whatever happens
MAX_GAP_SAMPLES = 48_000  # a larger forward jump in start_sample is refused
TAIL_SECONDS = 0.05  # silence past the longest lookahead that the end appends, so every frame completes
END_TIMEOUT_US = 10_000_000  # after `end`, the session closes within this even if frames went missing

DEFAULT_CONTROLS = P.Controls(
    emotion="neutral", intensity=1.0, auto_weight=0.0, transition_ms=300.0, seed=0, steps=2, lookahead_ms=60.0,
    style="ada",
    face_strength={"lower": 1.0, "upper": 1.0, "head": 1.0, "eyes": 1.0},
)  # fmt: skip


class AudioPort(Protocol):
    """Where a session's audio goes: runtime/audio_table.AudioTable."""

    def claim(self, worker: int) -> tuple[int, int] | None: ...

    def mark_closing(self, slot: int) -> None: ...

    def write(self, slot: int, start: int, samples: np.ndarray, capture_us: int, received_us: int) -> bool: ...

    def append_silence(self, slot: int, n: int) -> bool: ...


class CommandPort(Protocol):
    """Where a session's messages to the inference loop go (queued; never blocks)."""

    def send(self, command: Command) -> None: ...


@dataclass(frozen=True)
class ServerOffer:
    """What the server serves, the same for every session."""

    streams: tuple[str, ...]  # of "face", "body"
    styles: Mapping[str, np.ndarray]  # body style name -> embedding (empty without a body stream)
    body_lookahead_ms: float = 200.0
    token: str | None = None  # when set, hello must carry it
    worker: int = 0  # this I/O process's number (slots are claimed in its name)
    voice_emotion: bool = False  # the loop has a voice-emotion estimator: emotion "auto" and auto_weight work


@dataclass(frozen=True)
class SessionTimers:
    idle_timeout_s: float = 30.0  # no message for this long: the session is closed
    stats_interval_s: float = 1.0  # how often the client gets a stats message
    outbox_frames: int = 8  # frames per stream kept for a client that is not keeping up; older ones drop


class Phase(Enum):
    AWAIT_HELLO = "await_hello"
    STREAMING = "streaming"
    ENDING = "ending"  # the client sent end; the last frames are on their way
    CLOSED = "closed"


@dataclass
class _Queued:
    """A frame waiting to be sent."""

    stream: str
    index: int
    values: np.ndarray
    capture_us: int
    received_us: int
    order: int  # arrival order across streams


@dataclass
class StreamCounts:
    produced: int = 0  # frames of this stream that reached the session (or were lost on the way)
    sent: int = 0
    dropped: int = 0  # produced but not sent: the client read too slowly, or the frame was lost
    late: int = 0  # sent more than one frame period after their audio arrived
    next_index: int = 0  # the index the next frame should have
    last_sent: int = -1  # index of the last frame sent
    final_sent: bool = False


@dataclass
class SessionCore:
    offer: ServerOffer
    audio: AudioPort
    commands: CommandPort
    session_id: str
    now_us: int  # when the connection opened
    timers: SessionTimers = field(default_factory=SessionTimers)
    phase: Phase = Phase.AWAIT_HELLO
    hello: P.Hello | None = None
    controls: P.Controls = DEFAULT_CONTROLS
    streams: tuple[str, ...] = ()
    slot: int = -1
    generation: int = 0
    lookahead: int = 0  # face lookahead in feature frames
    close_code: tuple[int, str] | None = None  # set: close the connection once the outbox is empty
    counts: dict[str, StreamCounts] = field(default_factory=dict)
    samples: int = 0  # real audio samples accepted (media time of the next chunk's first sample)
    overloaded_chunks: int = 0  # chunks dropped because the loop was too far behind to take them
    expected: dict[str, int] | None = None  # frames per stream, known once the client ends its audio
    voice_emotion: np.ndarray | None = None  # the newest estimate of the voice's emotion, when asked for
    _texts: deque[str] = field(default_factory=deque)
    _frames: dict[str, deque[_Queued]] = field(default_factory=dict)
    _order: int = 0
    _last_seq: int = -1
    _last_message_us: int = 0
    _next_stats_us: int = 0
    _end_deadline_us: int = 0
    _tail_left: int = 0  # silence still to append after the end (the ring was full)

    def __post_init__(self) -> None:
        self._last_message_us = self.now_us

    # -- input from the client ---------------------------------------------------------------------

    def receive(self, message: str | bytes, now_us: int) -> None:
        """One WebSocket message from the client."""
        if self.phase is Phase.CLOSED:
            return
        self._last_message_us = now_us
        try:
            if isinstance(message, bytes | bytearray | memoryview):
                self._audio(bytes(message), now_us)
            else:
                self._text(message, now_us)
        except ProtocolError as exc:
            self._error(exc)

    def _text(self, text: str, now_us: int) -> None:
        message = P.decode_client_control(text)
        if self.phase is Phase.AWAIT_HELLO:
            if not isinstance(message, P.Hello):
                raise ProtocolError("out_of_order", f"{message.type!r} before hello", fatal=True)
            self._open(message, now_us)
        elif isinstance(message, P.Hello):
            raise ProtocolError("out_of_order", "hello may be sent only once")
        elif self.phase is Phase.ENDING:
            raise ProtocolError("out_of_order", f"{message.type!r} after end")
        elif isinstance(message, P.ControlUpdate):
            self._apply_controls(message)
        elif isinstance(message, P.ClockPing):
            self._say(P.ClockPong(message.client_send_us, now_us, now_us))
        elif isinstance(message, P.EndRequest):
            self._end(now_us)

    def _open(self, hello: P.Hello, now_us: int) -> None:
        offer = self.offer
        if hello.sample_rate_hz not in P.SAMPLE_RATES_HZ:
            raise ProtocolError("bad_audio", f"sample rate {hello.sample_rate_hz} Hz; use one of "
                                f"{P.SAMPLE_RATES_HZ}", fatal=True)  # fmt: skip
        if offer.token is not None and not _same_secret(hello.token or "", offer.token):
            raise ProtocolError("unauthorized", "missing or wrong token", fatal=True)
        streams = tuple(s for s in offer.streams if s in hello.streams)
        if not streams:
            raise ProtocolError("bad_message", f"this server streams {', '.join(offer.streams)} only", fatal=True)
        controls = DEFAULT_CONTROLS.merged(hello.controls)
        if "body" in streams and controls.style not in offer.styles:
            raise ProtocolError("bad_control", f"unknown style {controls.style!r}; the presets are "
                                f"{', '.join(offer.styles)}", fatal=True)  # fmt: skip
        self._check_voice_emotion(controls, fatal=True)
        claimed = self.audio.claim(offer.worker)
        if claimed is None:
            raise ProtocolError("server_full", "every session slot is taken; try again later or another worker",
                                fatal=True)  # fmt: skip
        self.slot, self.generation = claimed
        assert controls.lookahead_ms is not None and controls.seed is not None and controls.steps is not None
        self.lookahead = lookahead_from_ms(controls.lookahead_ms)
        self.controls = controls.merged(P.Controls(lookahead_ms=round(self.lookahead * FEATURE_MS, 3)))
        self.hello, self.streams, self.phase = hello, streams, Phase.STREAMING
        self.counts = {s: StreamCounts() for s in streams}
        self._frames = {s: deque() for s in streams}
        self._next_stats_us = now_us + int(self.timers.stats_interval_s * 1e6)
        emotion, auto = self._emotion()
        settings = SlotSettings(
            hello.sample_rate_hz, controls.seed, emotion, controls.steps,
            self.lookahead if "face" in streams else None,
            offer.styles[controls.style] if "body" in streams and controls.style else None,
            self._gains(), auto,
        )  # fmt: skip
        self.commands.send(OpenSlot(self.slot, self.generation, settings))
        resampler_ms = 1000 * LogMelFrontEnd(hello.sample_rate_hz).resampler_delay_s
        lookahead_ms = self.lookahead * FEATURE_MS if "face" in streams else offer.body_lookahead_ms
        self._say(P.Header(
            session_id=self.session_id, sample_rate_hz=hello.sample_rate_hz,
            streams={name: STREAM_INFO[name] for name in streams},
            algorithmic_latency_ms=lookahead_ms + resampler_ms, controls=self.controls, server_time_us=now_us,
        ))  # fmt: skip

    def _emotion(self) -> tuple[np.ndarray, float]:
        """The chosen emotion's vector and the scale of the voice's estimate (runtime/controls.py)."""
        c = self.controls
        return emotion_controls(c.emotion or "neutral", c.intensity or 0.0, c.auto_weight or 0.0)

    def _check_voice_emotion(self, controls: P.Controls, fatal: bool = False) -> None:
        if (controls.emotion == P.AUTO_EMOTION or (controls.auto_weight or 0.0) > 0) and not self.offer.voice_emotion:
            raise ProtocolError("bad_control", "this server has no voice-emotion estimator: emotion \"auto\" and "
                                "auto_weight are not served", fatal=fatal)  # fmt: skip

    def _gains(self) -> np.ndarray | None:
        strengths = dict(self.controls.face_strength or {})
        return None if all(v == 1.0 for v in strengths.values()) else face_strength_gains(strengths)

    def _apply_controls(self, request: P.ControlUpdate) -> None:
        update = request.controls
        # Everything is checked before anything changes: a refused update leaves the session as it was.
        if update.lookahead_ms is not None and lookahead_from_ms(update.lookahead_ms) != self.lookahead:
            raise ProtocolError("bad_control", "lookahead is fixed for a session; set it in hello")
        if update.style is not None and "body" in self.streams and update.style not in self.offer.styles:
            raise ProtocolError("bad_control", f"unknown style {update.style!r}; the presets are "
                                f"{', '.join(self.offer.styles)}")  # fmt: skip
        self._check_voice_emotion(self.controls.merged(update))
        self.controls = self.controls.merged(update)
        emotion_changed = update.emotion is not None or update.intensity is not None or update.auto_weight is not None
        emotion, auto = self._emotion()
        style = update.style if update.style is not None and "body" in self.streams else None
        gains = self._gains()
        change = SlotChange(
            emotion=emotion if emotion_changed else None, auto_emotion=auto,
            transition_ms=self.controls.transition_ms or 0.0,
            steps=update.steps, seed=update.seed, style=self.offer.styles[style] if style else None,
            face_gains=(gains if gains is not None else face_strength_gains({}))
            if update.face_strength is not None else None,
        )  # fmt: skip
        self.commands.send(ControlSlot(self.slot, self.generation, change, self.samples))
        self._say(P.Ack(request.request_id, self.controls, self.samples))

    def _audio(self, data: bytes, now_us: int) -> None:
        if self.phase is Phase.AWAIT_HELLO:
            raise ProtocolError("out_of_order", "audio before hello", fatal=True)
        chunk = P.decode_audio(data)
        if self.phase is Phase.ENDING:
            raise ProtocolError("out_of_order", "audio after end")
        assert self.hello is not None
        expected = np.dtype(np.int16 if self.hello.sample_format == "s16le" else np.float32)
        if chunk.samples.dtype != expected:
            raise ProtocolError("bad_audio", f"audio is {chunk.samples.dtype}, hello said {self.hello.sample_format}")
        if chunk.seq <= self._last_seq:
            raise ProtocolError("out_of_order", f"seq {chunk.seq} after {self._last_seq}; seq must increase")
        gap = chunk.start_sample - self.samples
        if gap < 0:
            raise ProtocolError("out_of_order", f"chunk starts at sample {chunk.start_sample}, before {self.samples}")
        if gap > MAX_GAP_SAMPLES:
            raise ProtocolError("out_of_order", f"gap of {gap} samples exceeds {MAX_GAP_SAMPLES}")
        try:
            samples = validate_pcm(chunk.samples, self.hello.sample_rate_hz).astype(np.float32)
        except AudioFormatError as exc:
            raise ProtocolError("bad_audio", f"{exc}; the chunk is dropped (heard as silence)") from None
        self._last_seq = chunk.seq
        if not self.audio.write(self.slot, chunk.start_sample, samples, chunk.capture_time_us, now_us):
            self.overloaded_chunks += 1
            raise ProtocolError("overloaded", "the server is behind; this chunk is dropped (heard as silence)")
        self.samples = chunk.start_sample + samples.size

    def _end(self, now_us: int) -> None:
        assert self.hello is not None
        rate = self.hello.sample_rate_hz
        self.phase = Phase.ENDING
        self.expected = {s: math.ceil(self.samples / rate * STREAM_INFO[s].fps) for s in self.streams}
        lookahead_s = max(self.lookahead * FEATURE_MS, self.offer.body_lookahead_ms) / 1000
        # Silence past the longest lookahead, plus the resampler's wait (20 ms covers every rate).
        self._tail_left = math.ceil((lookahead_s + TAIL_SECONDS + 0.02) * rate)
        self._end_deadline_us = now_us + END_TIMEOUT_US
        self._append_tail()
        self._finish_if_done()

    def _append_tail(self) -> None:
        if self._tail_left and self.audio.append_silence(self.slot, self._tail_left):
            self._tail_left = 0

    # -- input from the inference loop -------------------------------------------------------------

    def frame(self, stream: str, index: int, values: np.ndarray, capture_us: int, received_us: int,
              congested: bool) -> bool:  # fmt: skip
        """A frame the loop made for this session; False if it is not one to send (made from the silence
        that flushes the end, or for a closed session). `congested`: the client's socket still holds
        unsent bytes, so it is not keeping up. The voice-emotion estimate is kept for the stats, not sent."""
        if stream == VOICE_EMOTION:
            self.voice_emotion = np.array(values, np.float32)
            return False
        counts = self.counts.get(stream)
        if counts is None or self.phase is Phase.CLOSED or index < counts.next_index:
            return False
        if self.expected is not None and index >= self.expected[stream]:
            return False
        lost = index - counts.next_index  # frames that never reached us (a block the loop had to drop)
        counts.next_index = index + 1
        counts.produced += lost + 1
        counts.dropped += lost
        queue = self._frames[stream]
        limit = self.timers.outbox_frames if congested else OUTBOX_HARD_LIMIT
        while len(queue) >= limit:  # keep the newest: drop the oldest queued frame of this stream
            queue.popleft()
            counts.dropped += 1
        self._order += 1
        queue.append(_Queued(stream, index, values, capture_us, received_us, self._order))
        return True

    def fail(self, code: str, message: str) -> None:
        """A fatal error from outside the session (the loop could not serve it, the server stops)."""
        self._error(ProtocolError(code, message, fatal=True))

    # -- time --------------------------------------------------------------------------------------

    def poll(self, now_us: int) -> None:
        """Timers: stats due, the idle timeout, a tail that did not fit, the end's deadline."""
        if self.phase in (Phase.CLOSED, Phase.AWAIT_HELLO):
            return
        if self.phase is Phase.STREAMING and now_us - self._last_message_us > self.timers.idle_timeout_s * 1e6:
            self._error(ProtocolError("idle_timeout", "no message for too long", fatal=True))
            return
        if now_us >= self._next_stats_us:
            self._next_stats_us = now_us + int(self.timers.stats_interval_s * 1e6)
            self._say(P.Stats(self.stats()))
        if self.phase is Phase.ENDING:
            self._append_tail()
            if now_us >= self._end_deadline_us:  # frames went missing: end with what was sent
                for counts in self.counts.values():
                    counts.final_sent = True
                self._finish_if_done()

    # -- output ------------------------------------------------------------------------------------

    def next_message(self, now_us: int) -> str | bytes | None:
        """The next message for the client (text first, then frames in the order they came), or None."""
        if self._texts:
            return self._texts.popleft()
        heads = [q[0] for q in self._frames.values() if q]
        if not heads:
            return None
        item = min(heads, key=lambda q: q.order)
        self._frames[item.stream].popleft()
        assert self.hello is not None
        counts = self.counts[item.stream]
        final = self.expected is not None and item.index == self.expected[item.stream] - 1
        fps = STREAM_INFO[item.stream].fps
        data = P.encode_frame(P.Frame(
            item.stream, item.index, P.frame_media_sample(item.index, self.hello.sample_rate_hz, fps),
            item.capture_us, now_us, item.index - counts.last_sent - 1, item.values,
            P.FRAME_FLAG_FINAL if final else 0,
        ))  # fmt: skip
        counts.sent += 1
        counts.last_sent = item.index
        if item.received_us and now_us - item.received_us > 1e6 / fps:
            counts.late += 1
        if final:
            counts.final_sent = True
            self._finish_if_done()
        return data

    def queued(self, stream: str) -> int:
        """Frames of `stream` waiting to be sent."""
        return len(self._frames.get(stream, ()))

    def stats(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for stream, c in self.counts.items():
            values |= {f"frames_sent.{stream}": c.sent, f"frames_dropped.{stream}": c.dropped,
                       f"late_frames.{stream}": c.late}  # fmt: skip
        if self.voice_emotion is not None:  # blend (one value per emotion), arousal, valence
            names = [*P.EMOTIONS, "arousal", "valence"]
            values |= {f"voice.{name}": round(float(v), 4) for name, v in zip(names, self.voice_emotion, strict=True)}
        queued = sum(len(q) for q in self._frames.values())
        return values | {"audio_samples": self.samples, "queue_depth": queued,
                         "overloaded_chunks": self.overloaded_chunks}  # fmt: skip

    def connection_lost(self) -> None:
        """The socket is gone: give the slot back."""
        if self.phase is not Phase.CLOSED:
            self._close_slot()
            self.phase = Phase.CLOSED

    # -- internals ---------------------------------------------------------------------------------

    def _finish_if_done(self) -> None:
        if self.phase is not Phase.ENDING or self.expected is None:
            return
        if all(c.final_sent or self.expected[s] == 0 for s, c in self.counts.items()):
            self._say(P.EndOfSession("client ended", self.stats()))
            self._close(1000, "session ended")

    def _say(self, message: P.ServerControl) -> None:
        self._texts.append(P.encode_control(message))

    def _error(self, exc: ProtocolError) -> None:
        self._say(P.error_message(exc))
        if exc.fatal:
            self._close(ERROR_CLOSE_CODES[exc.code], exc.message[:120])

    def _close(self, code: int, reason: str) -> None:
        try:
            self._close_slot()
        finally:  # closed even where the shared table could not be told (its other side has died)
            for stream, queue in self._frames.items():  # never to be sent: dropped
                self.counts[stream].dropped += len(queue)
                queue.clear()
            self.phase = Phase.CLOSED
            self.close_code = (code, reason)

    def _close_slot(self) -> None:
        if self.slot >= 0 and self.phase is not Phase.CLOSED:
            self.audio.mark_closing(self.slot)
            self.commands.send(CloseSlot(self.slot, self.generation))


ERROR_CLOSE_CODES = {code: close for code, (_, close) in P.ERROR_CODES.items()}


def _same_secret(given: str, expected: str) -> bool:
    import hmac

    return hmac.compare_digest(given.encode(), expected.encode())


SessionFactory = Callable[[str, int], SessionCore]
