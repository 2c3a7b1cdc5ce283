"""`emostream serve`: the WebSocket server. Thin asyncio glue around the Sans-I/O session protocol and
the inference loop: sessions, controls, clock sync, per-client bounded senders, /healthz and /metrics.

One slow or broken client never hurts the others: each session has its own sender task and a bounded
outbox that keeps only the newest frames (dropped ones are counted and announced in the next frame's
header); the inference loop never waits on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import http
import logging
import math
import secrets
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from emostream.runtime import protocol as P
from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.errors import ProtocolError
from emostream.runtime.event_loop import INFERENCE_MODES
from emostream.runtime.inference import InferenceLoop, OutFrame
from emostream.runtime.inference_process import InferenceProcess
from emostream.runtime.models.face import FEATURE_MS, FaceNetwork, lookahead_from_ms
from emostream.runtime.models.gesture import GestureGenerator, GestureNetwork, style_embedding
from emostream.runtime.rigs import BODY_CHANNELS, BODY_FPS, FACE_CHANNELS, FACE_FPS, apply_face_strength
from emostream.runtime.session_protocol import ServerSessionProtocol
from emostream.runtime.step import StepRunner, StreamingGenerator
from emostream.runtime.stream import emotion_vector
from emostream.runtime.zmq_publisher import PublishedFrame, ZmqPublisher

log = logging.getLogger("emostream.server")
GIL_SWITCH_INTERVAL_S = 0.0005  # see serve_forever

DEFAULT_CONTROLS = P.Controls(
    emotion="neutral", intensity=1.0, transition_ms=300.0, seed=0, steps=2, lookahead_ms=60.0, style="ada",
    face_strength={"lower": 1.0, "upper": 1.0, "head": 1.0, "eyes": 1.0},
)  # fmt: skip
OUTBOX_HARD_LIMIT = 240  # frames (4 s of face): the bound on any client's queue, whatever happens
STREAM_INFO = {"face": P.StreamInfo(FACE_FPS, FACE_CHANNELS), "body": P.StreamInfo(BODY_FPS, BODY_CHANNELS)}
TICK_BUCKETS_MS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 33.0, 66.0)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    max_sessions: int = 32  # beyond this, new sessions are refused with server_full
    token: str | None = None  # when set, hello must carry it (compared in constant time)
    certfile: Path | None = None  # TLS when both are given
    keyfile: Path | None = None
    idle_timeout_s: float = 30.0  # a session with no message for this long is closed
    hello_timeout_s: float = 10.0  # time allowed between connecting and hello
    outbox_frames: int = 8  # frames queued for a client that is not keeping up; older ones are dropped
    stats_interval_s: float = 1.0  # how often each client gets a stats message
    send_buffer_bytes: int | None = None  # kernel send buffer per connection; small keeps slow clients fresh
    shed_after_frames: int = 6  # backlog (frames) beyond which a group steps with one sampler step
    shed_after_lag_ms: float = 15.0  # audio that waited this long for the inference thread: one step too
    backend: str = "eager"  # eager, compiled, onnx or tensorrt (engines/)
    device: str = "cpu"
    engine_cache: Path | None = None  # default: engines.cache.default_cache_root()
    zmq_bind: str | None = None  # also publish every frame on a ZeroMQ PUB socket (runtime/zmq_publisher.py)
    body: bool = True  # serve the body stream (needs a gesture model)
    face: bool = True  # serve the face stream (off: a body-only server; the face still runs to pace sessions)
    inference: str = "thread"  # where the inference loop runs: "thread" (this process) or "process" (its own)

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.outbox_frames < 1 or self.idle_timeout_s <= 0:
            raise ValueError(f"invalid server config: {self}")
        if not (self.face or self.body):
            raise ValueError("a server must serve the face, the body or both")
        if self.inference not in INFERENCE_MODES:
            raise ValueError(f"inference runs in a {' or a '.join(INFERENCE_MODES)}, not {self.inference!r}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("TLS needs both certfile and keyfile")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Session:
    id: str
    connection: ServerConnection
    hello: P.Hello
    controls: P.Controls
    lookahead: int
    streams: tuple[str, ...] = ("face",)  # what this session receives
    outbox: deque[OutFrame] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped_since_send: int = 0
    frames_sent: dict[str, int] = field(default_factory=dict)
    frames_dropped: dict[str, int] = field(default_factory=dict)
    late_frames: dict[str, int] = field(default_factory=dict)
    degraded_frames: int = 0
    expected_frames: dict[str, int] | None = None  # per stream, known once the client ends the audio
    finals_left: set[str] = field(default_factory=set)
    samples: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, counter: dict[str, int], stream: str) -> None:
        counter[stream] = counter.get(stream, 0) + 1

    def stats(self) -> dict[str, float]:
        per_stream: dict[str, float] = {f"{name}.{stream}": counter.get(stream, 0) for stream in self.streams
                      for name, counter in (("frames_sent", self.frames_sent), ("frames_dropped", self.frames_dropped),
                                            ("late_frames", self.late_frames))}  # fmt: skip
        return per_stream | {"shed_steps": self.degraded_frames, "audio_samples": self.samples,
                             "queue_depth": len(self.outbox)}  # fmt: skip


class EmostreamServer:
    """`gesture`: the gesture network and its style names; the body stream is served when it is given and
    config.body is on."""

    def __init__(
        self,
        network: FaceNetwork,
        config: ServerConfig = ServerConfig(),
        gesture: tuple[GestureNetwork, list[str]] | None = None,
    ) -> None:
        self.config = config
        self.network = network
        self.gesture = gesture if config.body else None
        self.served = (("face",) if config.face else ()) + (("body",) if self.gesture is not None else ())
        self.body_lookahead_ms = GestureGenerator(self.gesture[0]).lookahead_ms if self.gesture is not None else 0.0
        if not self.served:
            raise ValueError("--no-face needs the body: a gesture model and body on")
        self.sessions: dict[str, Session] = {}
        self.refused = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.late_frames = 0
        loop_class = InferenceProcess if config.inference == "process" else InferenceLoop
        self.inference: InferenceLoop | InferenceProcess = loop_class(
            network, config.max_sessions, self._deliver_threadsafe, shed_after_frames=config.shed_after_frames,
            shed_after_lag_ms=config.shed_after_lag_ms,
            on_error=self._session_failed_threadsafe, make_runner=self._runner_factory(),
            gesture=self.gesture[0] if self.gesture is not None else None,
        )  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self.zmq: ZmqPublisher | None = None

    def _runner_factory(self) -> Callable[[StreamingGenerator], StepRunner] | None:
        """How the inference loop wraps each generator: None runs it eager on the CPU."""
        config = self.config
        if config.backend == "eager" and config.device == "cpu":
            return None
        from emostream.engines.factory import BackendFactory

        buckets = tuple(b for b in (1, 8, 32, 128) if b < config.max_sessions) + (config.max_sessions,)
        return BackendFactory(config.backend, config.device, buckets, config.engine_cache)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> int:
        """Starts listening; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        if self.config.zmq_bind:
            self.zmq = ZmqPublisher(self.config.zmq_bind)
            log.info("publishing frames on ZeroMQ %s", self.zmq.endpoint)
        self.inference.start()
        # Everything allocated so far (the model, warm-up) lives as long as the server: keep it out of the
        # collector's full passes, which otherwise stall every stream for tens of milliseconds.
        gc.collect()
        gc.freeze()
        ssl_context = None
        if self.config.certfile and self.config.keyfile:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(self.config.certfile, self.config.keyfile)
        listener = socket.create_server((self.config.host, self.config.port))
        if self.config.send_buffer_bytes:  # accepted connections inherit it
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.send_buffer_bytes)
        self._server = await serve(
            self._handle, sock=listener, process_request=self._http, ssl=ssl_context,
            max_size=2 * P.MAX_BINARY_BYTES, max_queue=32, compression=None, ping_interval=10, ping_timeout=20,
        )  # fmt: skip
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("listening on %s:%d (max %d sessions)", self.config.host, port, self.config.max_sessions)
        return port

    async def stop(self) -> None:
        """Ends every session with shutting_down, then stops the server and the inference loop."""
        stopping = ProtocolError("shutting_down", "server is stopping", fatal=True)
        for session in list(self.sessions.values()):
            await self._close_with_error(session.connection, stopping)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self.inference.stop)
        if self.zmq is not None:
            self.zmq.close()

    # -- HTTP on the same port --------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return self._text(http.HTTPStatus.OK, "ok\n")
        if request.path == "/metrics":
            return self._text(http.HTTPStatus.OK, self.metrics(), "text/plain; version=0.0.4")
        return None  # a WebSocket handshake

    @staticmethod
    def _text(status: http.HTTPStatus, body: str, content_type: str = "text/plain") -> Response:
        data = body.encode()
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return Response(status.value, status.phrase, headers, data)

    def metrics(self) -> str:
        """Prometheus text format."""
        ticks = list(self.inference.stats.tick_ms)
        lines = [
            "# HELP emostream_sessions Open sessions.", "# TYPE emostream_sessions gauge",
            f"emostream_sessions {len(self.sessions)}",
            "# HELP emostream_sessions_refused_total Sessions refused (full, bad token, bad hello).",
            "# TYPE emostream_sessions_refused_total counter", f"emostream_sessions_refused_total {self.refused}",
            "# TYPE emostream_frames_sent_total counter", f"emostream_frames_sent_total {self.frames_sent}",
            "# TYPE emostream_frames_dropped_total counter", f"emostream_frames_dropped_total {self.frames_dropped}",
            "# HELP emostream_late_frames_total Frames sent more than one frame period after their audio arrived.",
            "# TYPE emostream_late_frames_total counter", f"emostream_late_frames_total {self.late_frames}",
            "# TYPE emostream_shed_frames_total counter",
            f"emostream_shed_frames_total {self.inference.stats.shed_frames}",
            "# HELP emostream_eager_fallbacks_total Generators run eager because their engine was not built at start.",
            "# TYPE emostream_eager_fallbacks_total counter",
            f"emostream_eager_fallbacks_total {self.inference.stats.eager_fallbacks}",
            "# HELP emostream_tick_seconds Duration of one batched model step (recent ticks).",
            "# TYPE emostream_tick_seconds histogram",
        ]  # fmt: skip
        for bound in TICK_BUCKETS_MS:
            lines.append(f'emostream_tick_seconds_bucket{{le="{bound / 1000}"}} {sum(t <= bound for t in ticks)}')
        lines.append(f'emostream_tick_seconds_bucket{{le="+Inf"}} {len(ticks)}')
        lines.append(f"emostream_tick_seconds_sum {sum(ticks) / 1000:.6f}")
        lines.append(f"emostream_tick_seconds_count {len(ticks)}")
        return "\n".join(lines) + "\n"

    # -- frames from the inference thread ------------------------------------------------------

    def _deliver_threadsafe(self, frames: list[OutFrame]) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is gone: we are shutting down
                self._loop.call_soon_threadsafe(self._route, frames)

    def _session_failed_threadsafe(self, session_id: str, message: str) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._fail(session_id, message), self._loop)

    async def _fail(self, session_id: str, message: str) -> None:
        """The inference thread could not serve this session: tell its client and close it; others go on."""
        session = self.sessions.get(session_id)
        if session is not None:
            await self._close_with_error(session.connection, ProtocolError("internal", message, fatal=True))

    def _route(self, frames: list[OutFrame]) -> None:
        for frame in frames:
            session = self.sessions.get(frame.session_id)
            if session is None:
                continue
            if frame.stream not in session.streams:
                continue  # computed for every session, sent only to those that asked
            if session.expected_frames is not None and frame.index >= session.expected_frames[frame.stream]:
                continue  # silence fed past the end to flush the lookahead
            # Drop only for a client that reads too slowly (bytes pile up in its socket's write buffer) and
            # keep the newest frames; a burst from the inference loop to a client that keeps up loses nothing.
            behind = session.connection.transport.get_write_buffer_size() > 0
            behind = behind and len(session.outbox) >= self.config.outbox_frames
            if behind or len(session.outbox) >= OUTBOX_HARD_LIMIT:
                session.outbox.popleft()
                dropped = session.outbox.popleft()
                session.dropped_since_send += 1
                session.count(session.frames_dropped, dropped.stream)
                self.frames_dropped += 1
            session.outbox.append(frame)
            session.wake.set()
            if self.zmq is not None:  # independent of the WebSocket client's pace
                fps = STREAM_INFO[frame.stream].fps
                self.zmq.publish(PublishedFrame(frame.stream, session.id, frame.index, frame.index / fps,
                                                frame.capture_time_us, now_us(), frame.degraded,
                                                self._values(session, frame)))  # fmt: skip

    @staticmethod
    def _values(session: Session, frame: OutFrame) -> np.ndarray:
        if frame.stream == "face":
            return apply_face_strength(frame.values, dict(session.controls.face_strength or {}))
        return frame.values

    async def _sender(self, session: Session) -> None:
        """Sends the outbox oldest first; after the last expected frame, the end message."""
        while True:
            await session.wake.wait()
            session.wake.clear()
            while session.outbox:
                frame = session.outbox.popleft()
                expected = session.expected_frames
                final = expected is not None and frame.index == expected[frame.stream] - 1
                send_us = now_us()
                flags = (P.FRAME_FLAG_DEGRADED if frame.degraded else 0) | (P.FRAME_FLAG_FINAL if final else 0)
                fps = STREAM_INFO[frame.stream].fps
                data = P.encode_frame(P.Frame(
                    frame.stream, frame.index, P.frame_media_sample(frame.index, session.hello.sample_rate_hz, fps),
                    frame.capture_time_us, send_us, session.dropped_since_send, self._values(session, frame), flags,
                ))  # fmt: skip
                session.dropped_since_send = 0
                await session.connection.send(data)
                session.count(session.frames_sent, frame.stream)
                self.frames_sent += 1
                session.degraded_frames += frame.degraded
                if frame.received_us and send_us - frame.received_us > 1e6 / fps:
                    session.count(session.late_frames, frame.stream)
                    self.late_frames += 1
                if final:
                    session.finals_left.discard(frame.stream)
                    if not session.finals_left:
                        session.done.set()

    async def _stats(self, session: Session) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            await session.connection.send(P.encode_control(P.Stats(session.stats())))

    # -- one connection ------------------------------------------------------------------------------

    async def _send_error(self, connection: ServerConnection, exc: ProtocolError) -> None:
        await connection.send(P.encode_control(P.error_message(exc)))

    async def _close_with_error(self, connection: ServerConnection, exc: ProtocolError) -> None:
        """Tells the client why, then closes with the error's close code; a vanished client is no error."""
        with contextlib.suppress(ConnectionClosed):
            await self._send_error(connection, exc)
            await connection.close(ERROR_CLOSE[exc.code], exc.message[:120])

    async def _refuse(self, connection: ServerConnection, exc: ProtocolError) -> None:
        self.refused += 1
        log.info("refused a session: %s", exc)
        await self._close_with_error(connection, exc)

    async def _handle(self, connection: ServerConnection) -> None:
        raw = connection.transport.get_extra_info("socket")
        if raw is not None:  # frames are small and latency-bound: never let Nagle hold one back
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = ServerSessionProtocol()
        try:
            first = await asyncio.wait_for(connection.recv(), self.config.hello_timeout_s)
            if isinstance(first, bytes):
                protocol.receive_binary(first)  # raises: audio before hello
            hello = protocol.receive_text(first)
            assert isinstance(hello, P.Hello)
            self._admit(hello)
        except ProtocolError as exc:
            await self._refuse(connection, exc)
            return
        except (TimeoutError, ConnectionClosed):
            return
        try:
            session = await self._open(connection, hello)
        except ConnectionClosed:
            return
        tasks = [asyncio.create_task(self._sender(session)), asyncio.create_task(self._stats(session))]
        try:
            await self._session_loop(session, protocol)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            self.inference.close(session.id)
            self.sessions.pop(session.id, None)
            if self.zmq is not None:
                self.zmq.end_session(session.id)
            log.info("session %s closed: %d frames sent, %d dropped", session.id, sum(session.frames_sent.values()),
                     sum(session.frames_dropped.values()))  # fmt: skip

    def _admit(self, hello: P.Hello) -> None:
        token = self.config.token
        if token is not None and not hmac.compare_digest((hello.token or "").encode(), token.encode()):
            raise ProtocolError("unauthorized", "missing or wrong token", fatal=True)
        if len(self.sessions) >= self.config.max_sessions:
            raise ProtocolError("server_full", f"all {self.config.max_sessions} sessions are taken", fatal=True)
        if not set(hello.streams) & set(self.served):
            raise ProtocolError("bad_message", f"this server streams {', '.join(self.served)} only", fatal=True)
        style = hello.controls.style
        if style is not None and "body" in self.served and not self._style_known(style):
            raise ProtocolError("bad_control", f"unknown style {style!r}", fatal=True)

    def _style_known(self, style: str) -> bool:
        return self.gesture is not None and style in self.gesture[1]

    def _style(self, style: str) -> np.ndarray:
        assert self.gesture is not None
        network, names = self.gesture
        return style_embedding(network, names, style)

    async def _open(self, connection: ServerConnection, hello: P.Hello) -> Session:
        controls = DEFAULT_CONTROLS.merged(hello.controls)
        assert controls.lookahead_ms is not None
        lookahead = lookahead_from_ms(controls.lookahead_ms)
        controls = controls.merged(P.Controls(lookahead_ms=round(lookahead * FEATURE_MS, 3)))
        streams = tuple(s for s in self.served if s in hello.streams)
        session = Session(secrets.token_hex(6), connection, hello, controls, lookahead, streams)
        self.sessions[session.id] = session
        infos = {name: STREAM_INFO[name] for name in streams}
        if self.zmq is not None:
            self.zmq.start_session(session.id, infos)
        emotion = emotion_vector(controls.emotion or "neutral", controls.intensity or 0.0)
        style = self._style(controls.style or "") if "body" in streams else None
        self.inference.open(session.id, hello.sample_rate_hz, controls.seed or 0, emotion, lookahead,
                            controls.steps or 2, style, face="face" in streams)  # fmt: skip
        resampler_ms = 1000 * LogMelFrontEnd(hello.sample_rate_hz).resampler_delay_s
        lookahead_ms = lookahead * FEATURE_MS if "face" in streams else self.body_lookahead_ms
        header = P.Header(
            session_id=session.id, sample_rate_hz=hello.sample_rate_hz, streams=infos,
            algorithmic_latency_ms=lookahead_ms + resampler_ms, controls=controls, server_time_us=now_us(),
        )  # fmt: skip
        await connection.send(P.encode_control(header))
        log.info(
            "session %s opened: %d Hz, lookahead %.1f ms", session.id, hello.sample_rate_hz, lookahead * FEATURE_MS
        )
        return session

    async def _session_loop(self, session: Session, protocol: ServerSessionProtocol) -> None:
        connection = session.connection
        while True:
            try:
                message = await asyncio.wait_for(connection.recv(), self.config.idle_timeout_s)
            except TimeoutError:
                await self._close_with_error(
                    connection, ProtocolError("idle_timeout", "no message for too long", fatal=True)
                )
                return
            try:
                if isinstance(message, bytes):
                    accepted = protocol.receive_binary(message)
                    chunk = accepted.chunk
                    session.samples = chunk.start_sample + chunk.samples.size
                    self.inference.audio(session.id, chunk.start_sample, chunk.capture_time_us, chunk.samples)
                    continue
                request = protocol.receive_text(message)
                if isinstance(request, P.ControlUpdate):
                    await self._apply_controls(session, request)
                elif isinstance(request, P.ClockPing):
                    received = now_us()
                    await connection.send(P.encode_control(P.ClockPong(request.client_send_us, received, now_us())))
                elif isinstance(request, P.EndRequest):
                    await self._end(session)
                    return
            except ProtocolError as exc:
                if exc.fatal:
                    await self._close_with_error(connection, exc)
                    return
                await self._send_error(connection, exc)

    async def _apply_controls(self, session: Session, request: P.ControlUpdate) -> None:
        update = request.controls
        if update.lookahead_ms is not None and lookahead_from_ms(update.lookahead_ms) != session.lookahead:
            raise ProtocolError("bad_control", "lookahead is fixed for a session; set it in hello")
        session.controls = session.controls.merged(update)
        c = session.controls
        if update.emotion is not None or update.intensity is not None:
            assert c.emotion is not None
            self.inference.set_emotion(
                session.id, emotion_vector(c.emotion, c.intensity or 0.0), c.transition_ms or 0.0
            )
        if update.steps is not None:
            self.inference.set_steps(session.id, update.steps)
        if update.style is not None and "body" in session.streams:
            if not self._style_known(update.style):
                raise ProtocolError("bad_control", f"unknown style {update.style!r}")
            self.inference.set_style(session.id, self._style(update.style))
        await session.connection.send(P.encode_control(P.Ack(request.request_id, c, session.samples)))

    async def _end(self, session: Session) -> None:
        rate = session.hello.sample_rate_hz
        expected = {s: math.ceil(session.samples / rate * STREAM_INFO[s].fps) for s in session.streams}
        session.finals_left = {s for s, n in expected.items() if n > 0}
        session.expected_frames = expected
        if not session.finals_left:
            session.done.set()
        self.inference.finish(session.id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.done.wait(), timeout=10)
        await session.connection.send(P.encode_control(P.EndOfSession("client ended", session.stats())))
        await session.connection.close(1000, "session ended")


ERROR_CLOSE = {code: close for code, (_, close) in P.ERROR_CODES.items()}


async def serve_forever(
    network: FaceNetwork, config: ServerConfig, gesture: tuple[GestureNetwork, list[str]] | None = None
) -> None:
    # The event loop and the inference thread hand the GIL to each other several times per frame; at
    # Python's default 5 ms switch interval a waiting thread can lose up to 5 ms at each hand-over.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    server = EmostreamServer(network, config, gesture)
    port = await server.start()
    print(f"emostream serve: ws://{config.host}:{port} (health: /healthz, metrics: /metrics); Ctrl-C stops",
          flush=True)  # fmt: skip
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
