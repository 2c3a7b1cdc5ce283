"""`emostream serve`: the WebSocket server, as thin asyncio glue around the Sans-I/O session core
(runtime/session_core.py) and the inference loop (runtime/inference_loop.py).

One I/O process (`IoServer`) accepts connections, feeds each session core the client's messages and the
loop's frames, and sends what the core says to send; with `workers > 1` several I/O processes share the
port (SO_REUSEPORT) and one inference loop. A session's audio goes from its core straight into the
shared audio table; its frames come back in one block per stream per tick. One slow client never stalls
another: each session has its own sender task and its core keeps only the newest frames for a client
that does not keep up; the loop never waits on a socket.

HTTP on the same port: /healthz (200 with the free slots, 503 when the loop is gone or the server
stops), /metrics (Prometheus) and, when given a web root, the browser page at / (clients/web). With
`agent_port`, an HAProxy agent answers on that port with the
share of free slots, or `drain` when none is left (runtime/balancer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import logging
import multiprocessing
import os
import pickle
import secrets
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from emostream.runtime import protocol as P
from emostream.runtime.audio_table import AudioTable, AudioTableHandle
from emostream.runtime.balancer import agent_reply, serve_agent
from emostream.runtime.errors import ConfigError, ServerError, SharedStateError, StartInterrupted
from emostream.runtime.links import ERROR_RECORD, FRAMES_RECORD, LinkHandles
from emostream.runtime.messages import Command, FrameBlock, encode_commands
from emostream.runtime.metrics import WORKER_FIELDS, ServerCollector, render
from emostream.runtime.session_core import STREAM_INFO, Phase, ServerOffer, SessionCore, SessionTimers
from emostream.runtime.shared_counters import CountersHandle, SharedCounters
from emostream.runtime.shm_queue import ShmQueue
from emostream.runtime.web_files import WebFiles
from emostream.runtime.zmq_publisher import PublishedFrame, ZmqPublisher

log = logging.getLogger("emostream.server")
TIMER_S = 0.05  # how often session timers run and counters are published
GIL_SWITCH_INTERVAL_S = 0.0005  # see serve_forever


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
    outbox_frames: int = 8  # frames per stream queued for a client that is not keeping up; older ones drop
    stats_interval_s: float = 1.0  # how often each client gets a stats message
    send_buffer_bytes: int | None = None  # kernel send buffer per connection; small keeps slow clients fresh
    backend: str = "eager"  # auto, eager, compiled, onnx or tensorrt (engines/; auto: engines.factory)
    device: str = "cpu"
    engine_cache: Path | None = None  # default: engines.cache.default_cache_root()
    zmq_bind: str | None = None  # also publish every frame on a ZeroMQ PUB socket (one I/O process only)
    body: bool = True  # serve the body stream (needs a gesture model)
    face: bool = True  # serve the face stream
    voice_emotion: bool = True  # run the voice-emotion estimator for sessions that ask for emotion "auto"
    inference: str = "thread"  # where the loop runs: "thread" (this process) or "process" (its own)
    workers: int = 1  # I/O processes; more than one share the port and need inference="process"
    min_tick_ms: float = 4.0  # the loop's ticks begin at least this far apart (docs/server.md)
    step_mode: str = "auto"  # runtime/slot_table.py: "compact" rows, or "masked"; auto: masked on a GPU
    agent_port: int | None = None  # HAProxy agent-check port (runtime/balancer.py)
    web: WebFiles = field(default_factory=WebFiles)  # the browser page and its files (runtime/web_files.py)

    def __post_init__(self) -> None:
        for name, value in (("max_sessions", self.max_sessions), ("outbox_frames", self.outbox_frames),
                            ("workers", self.workers), ("idle_timeout_s", self.idle_timeout_s)):  # fmt: skip
            if not value > 0:
                raise ConfigError(f"{name} must be positive, not {value}")
        if not (self.face or self.body):
            raise ConfigError("a server must serve the face, the body or both")
        if self.inference not in ("thread", "process"):
            raise ConfigError(f"inference runs on a thread or in a process, not {self.inference!r}")
        if self.workers > 1 and (self.inference != "process" or self.zmq_bind):
            raise ConfigError("several I/O workers need the inference loop in its own process, and no --zmq")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("TLS needs both certfile and keyfile")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(eq=False)
class _Client:
    connection: ServerConnection
    core: SessionCore
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class _Commands:
    """The I/O side of a link's command queue: commands collect during one pass of the event loop and go
    to the inference loop as one record; what does not fit waits for the next timer tick."""

    def __init__(self, queue: ShmQueue, wake_loop: Callable[[], None], event_loop: asyncio.AbstractEventLoop,
                 on_broken: Callable[[str], None]) -> None:  # fmt: skip
        self.queue, self.wake_loop, self.event_loop, self.on_broken = queue, wake_loop, event_loop, on_broken
        self.pending: list[Command] = []
        self._scheduled = False

    def send(self, command: Command) -> None:
        self.pending.append(command)
        if not self._scheduled:
            self._scheduled = True
            self.event_loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        try:
            if self.pending and self.queue.put(encode_commands(self.pending)):
                self.pending = []
                self.wake_loop()
        except SharedStateError as exc:
            self.pending = []
            self.on_broken(str(exc))


@dataclass(frozen=True)
class IoSpec:
    """What one I/O process needs (picklable, for a worker process)."""

    config: ServerConfig
    offer: ServerOffer
    audio: AudioTableHandle
    link: LinkHandles
    loop_stats: CountersHandle
    worker_stats: CountersHandle
    worker: int


class IoServer:
    """One I/O process: the WebSocket and HTTP side of the server."""

    def __init__(self, spec: IoSpec, inference_alive: Callable[[], bool]) -> None:
        self.spec, self.config, self.offer, self.worker = spec, spec.config, spec.offer, spec.worker
        self.audio = AudioTable.attach(spec.audio)
        self.commands_queue = ShmQueue.attach(spec.link.commands)
        self.frames_queue = ShmQueue.attach(spec.link.frames)
        self.link = spec.link
        self.loop_stats = SharedCounters.attach(spec.loop_stats)
        self.worker_stats = SharedCounters.attach(spec.worker_stats)
        self.collector = ServerCollector(self.loop_stats, self.worker_stats, self.audio)
        self.inference_alive = inference_alive
        self.sessions: dict[int, _Client] = {}  # by slot
        self.clients: set[_Client] = set()
        self.closed_counts: dict[str, float] = {name: 0.0 for name in WORKER_FIELDS}
        self.stopping = False
        self.loop_dead = False
        self.zmq: ZmqPublisher | None = None
        self._server: Server | None = None
        self._agent: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._loop_wake_scheduled = False
        self._no_clients = asyncio.Event()
        self.loop_lost = asyncio.Event()  # set when the inference loop cannot serve any more

    async def start(self, sock: socket.socket | None = None) -> int:
        """Starts listening (on `sock` if given); returns the bound port."""
        config = self.config
        self._event_loop = asyncio.get_running_loop()
        self.commands = _Commands(self.commands_queue, self.link.to_loop.wake, self._event_loop, self._loop_gone)
        self._event_loop.add_reader(self.link.to_worker.fileno(), self._on_frames)
        if config.zmq_bind:
            self.zmq = ZmqPublisher(config.zmq_bind)
            log.info("publishing frames on ZeroMQ %s", self.zmq.endpoint)
        ssl_context = tls_context(config)
        if sock is None:
            sock = socket.create_server((config.host, config.port))
        if config.send_buffer_bytes:  # accepted connections inherit it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes)
        self._server = await serve(
            self._handle, sock=sock, process_request=self._http, ssl=ssl_context,
            max_size=2 * P.MAX_BINARY_BYTES, max_queue=32, compression=None, ping_interval=10, ping_timeout=20,
        )  # fmt: skip
        if config.agent_port is not None and self.worker == 0:
            self._agent = await serve_agent(config.host, config.agent_port, self._agent_reply)
        self._timer = asyncio.create_task(self._timers())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Ends every session with shutting_down, then stops listening."""
        self.stopping = True
        for client in list(self.clients):
            self._fail(client, "shutting_down", "the server is stopping")
        if self.clients:  # the senders say why and close
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_clients.wait(), 2.0)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._agent is not None:
            self._agent.close()
        if self._timer is not None:
            self._timer.cancel()
        if self._event_loop is not None:  # started (also where the start failed part way)
            self._event_loop.remove_reader(self.link.to_worker.fileno())
            self.commands.flush()
        if self.zmq is not None:
            self.zmq.close()

    def close(self) -> None:
        """Lets go of the shared memory (after stop)."""
        for shared in (self.audio, self.commands_queue, self.frames_queue, self.loop_stats, self.worker_stats):
            shared.close()

    # -- HTTP --------------------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            free, total = self.audio.free_slots(), self.audio.session_limit
            if self.stopping or self.loop_dead:
                return _text(http.HTTPStatus.SERVICE_UNAVAILABLE, "stopping\n" if self.stopping else "no loop\n")
            return _text(http.HTTPStatus.OK, f"ok {free} of {total} slots free\n")
        if request.path == "/metrics":
            self._publish_counts()  # this process's own counters as of now; the others' as last published
            return _text(http.HTTPStatus.OK, render(self.collector).decode(), "text/plain; version=0.0.4")
        if self.config.web.root is not None or self.config.web.extra:
            return self.config.web.respond(request)  # a file, a 404, or None for a WebSocket handshake
        return None  # a WebSocket handshake

    def _agent_reply(self) -> str:
        alive = not (self.stopping or self.loop_dead)
        return agent_reply(self.audio.free_slots(), self.audio.session_limit, alive=alive)

    # -- one connection ----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        raw = connection.transport.get_extra_info("socket")
        if raw is not None:  # frames are small and latency-bound: never let Nagle hold one back
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        timers = SessionTimers(self.config.idle_timeout_s, self.config.stats_interval_s, self.config.outbox_frames)
        core = SessionCore(self.offer, self.audio, self.commands, secrets.token_hex(6), now_us(), timers)
        client = _Client(connection, core)
        self.clients.add(client)
        self._no_clients.clear()
        sender = asyncio.create_task(self._send(client))
        try:
            if self.stopping or self.loop_dead:
                core.fail("shutting_down" if self.stopping else "internal", "the server cannot take sessions now")
                client.wake.set()
            else:
                first = await asyncio.wait_for(connection.recv(), self.config.hello_timeout_s)
                self._receive(client, first)
                async for message in connection:
                    self._receive(client, message)
        except (TimeoutError, ConnectionClosed):
            pass
        finally:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, ConnectionClosed):
                await asyncio.wait_for(asyncio.shield(sender), 1.0)  # what the core still has to say
            sender.cancel()
            self._forget(client)

    def _receive(self, client: _Client, message: str | bytes) -> None:
        core = client.core
        before = core.phase
        try:
            core.receive(message, now_us())
        except SharedStateError as exc:
            self._loop_gone(str(exc))
            return
        except Exception:  # a fault of ours: this session ends with `internal`, the others go on
            log.exception("session %s: a message could not be handled", core.session_id)
            core.fail("internal", "the server could not handle that message")
        if before is Phase.AWAIT_HELLO and core.phase is Phase.STREAMING:
            self.sessions[core.slot] = client
            if self.zmq is not None:
                self.zmq.start_session(core.session_id, {s: STREAM_INFO[s] for s in core.streams})
            log.info("session %s opened: slot %d, %d Hz, streams %s", core.session_id, core.slot,
                     core.hello.sample_rate_hz if core.hello else 0, ",".join(core.streams))  # fmt: skip
        elif before is Phase.AWAIT_HELLO and core.close_code is not None:
            self.closed_counts["refused"] += 1
            log.info("refused a session: %s", core.close_code[1])
        self._wake_loop_soon()  # new audio, or the silence an end appends, for the loop
        client.wake.set()

    async def _send(self, client: _Client) -> None:
        """Sends what the core has to say, then closes the connection when the core says so."""
        core, connection = client.core, client.connection
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                while (message := core.next_message(now_us())) is not None:
                    await connection.send(message)
                if core.close_code is not None:
                    await connection.close(*core.close_code)
                    return
        except ConnectionClosed:
            return

    def _forget(self, client: _Client) -> None:
        core = client.core
        core.connection_lost()
        self.clients.discard(client)
        if not self.clients:
            self._no_clients.set()
        if self.sessions.get(core.slot) is client:
            del self.sessions[core.slot]
            for name, value in core.stats().items():
                key = name.replace(".", "_")
                if key in self.closed_counts:
                    self.closed_counts[key] += value
            if self.zmq is not None:
                self.zmq.end_session(core.session_id)
            log.info("session %s closed: %s", core.session_id, {k: v for k, v in core.stats().items()
                                                                  if k.startswith("frames")})  # fmt: skip

    # -- the inference loop's side -----------------------------------------------------------------

    def _wake_loop_soon(self) -> None:
        """One wake-up for all the audio that arrives in one pass of the event loop."""
        if not self._loop_wake_scheduled and self._event_loop is not None:
            self._loop_wake_scheduled = True
            self._event_loop.call_soon(self._wake_loop)

    def _wake_loop(self) -> None:
        self._loop_wake_scheduled = False
        self.link.to_loop.wake()

    def _on_frames(self) -> None:
        """Frame blocks (and session errors) from the inference loop, to their sessions."""
        self.link.to_worker.drain()
        woken: set[_Client] = set()
        try:
            records = self.frames_queue.get_all()
        except SharedStateError as exc:
            self._loop_gone(str(exc))
            return
        for record in records:
            kind, body = record[:1], record[1:]
            if kind == ERROR_RECORD:
                slot, generation, message = pickle.loads(body)
                client = self.sessions.get(slot)
                if client is not None and client.core.generation == generation:
                    client.core.fail("internal", message)
                    woken.add(client)
                continue
            assert kind == FRAMES_RECORD
            block = FrameBlock.decode(body)
            fields = zip(block.slots.tolist(), block.generations.tolist(), block.indices.tolist(),
                         block.capture_us.tolist(), block.received_us.tolist(), block.values, strict=True)  # fmt: skip
            for slot, generation, index, capture, received, values in fields:
                client = self.sessions.get(slot)
                if client is None or client.core.generation != generation:
                    continue  # a session that has gone, or the slot's previous one
                congested = client.connection.transport.get_write_buffer_size() > 0
                if not client.core.frame(block.stream, index, values, capture, received, congested):
                    continue
                woken.add(client)
                if self.zmq is not None:
                    fps = STREAM_INFO[block.stream].fps
                    self.zmq.publish(PublishedFrame(block.stream, client.core.session_id, index, index / fps,
                                                    capture, now_us(), False, values))  # fmt: skip
        for client in woken:
            client.wake.set()

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(TIMER_S)
            now = now_us()
            try:
                for client in list(self.clients):
                    client.core.poll(now)
                    client.wake.set()
            except SharedStateError as exc:
                self._loop_gone(str(exc))
            self.commands.flush()
            self._publish_counts()
            if not self.loop_dead and not self.stopping and not self.inference_alive():
                self._loop_gone("the inference process died")

    def _loop_gone(self, reason: str) -> None:
        """The inference loop cannot serve: every session ends with `internal`, new ones are refused."""
        if self.loop_dead:
            return
        self.loop_dead = True
        self.loop_lost.set()
        log.error("the inference loop is gone (%s); its sessions end", reason)
        for client in list(self.clients):
            self._fail(client, "internal", "the inference process died")

    def _fail(self, client: _Client, code: str, message: str) -> None:
        """Ends a session with a fatal error. Where the loop died holding the shared table's lock the
        session cannot give its slot back, and need not: it closes all the same."""
        with contextlib.suppress(SharedStateError):
            client.core.fail(code, message)
        client.wake.set()

    def _publish_counts(self) -> None:
        totals = dict(self.closed_counts)
        totals["sessions"] = len(self.sessions)
        for client in self.sessions.values():
            for name, value in client.core.stats().items():
                key = name.replace(".", "_")
                if key in totals:
                    totals[key] += value
        for name in WORKER_FIELDS:
            self.worker_stats.set(name, totals.get(name, 0.0), row=self.worker)


def _text(status: http.HTTPStatus, body: str, content_type: str = "text/plain") -> Response:
    data = body.encode()
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return Response(status.value, status.phrase, headers, data)


def build_offer(config: ServerConfig, gesture: tuple[Any, list[str]] | None, worker: int = 0) -> ServerOffer:
    """What the server serves: its streams, the style presets' embeddings, the body's lookahead."""
    streams = (("face",) if config.face else ()) + (("body",) if gesture is not None and config.body else ())
    if not streams:
        raise ValueError("--no-face needs the body: a gesture model and body on")
    styles: dict[str, Any] = {}
    body_lookahead_ms = 0.0
    if "body" in streams and gesture is not None:
        from emostream.runtime.models.gesture import GestureGenerator, style_embedding

        network, names = gesture
        styles = {name: style_embedding(network, names, name) for name in names}
        body_lookahead_ms = GestureGenerator(network).lookahead_ms
    return ServerOffer(streams, styles, body_lookahead_ms, config.token, worker, config.voice_emotion)


def _voice_estimator(config: ServerConfig) -> Any:
    """The shipped voice-emotion estimator when the server serves emotion "auto", else None."""
    if not config.voice_emotion:
        return None
    from emostream.runtime.models.voice_emotion import load_voice_emotion

    return load_voice_emotion()[0]


def _runner_factory(config: ServerConfig) -> Any:
    """How the loop wraps each generator: None runs it eager on the CPU."""
    if config.backend == "eager" and config.device == "cpu":
        return None
    from emostream.engines.factory import AUTO, BackendFactory, resolve_backend

    kind = resolve_backend(config.backend, config.device)
    slots = _loop_config(config).slots
    buckets = tuple(b for b in (1, 8, 32, 128, 512) if b < slots) + (slots,)
    return BackendFactory(kind, config.device, buckets, config.engine_cache, config.backend == AUTO)


def _loop_config(config: ServerConfig) -> Any:
    from emostream.runtime.inference_loop import LoopConfig

    mode = config.step_mode if config.step_mode != "auto" else ("masked" if config.device.startswith("cuda")
                                                                 else "compact")  # fmt: skip
    return LoopConfig(config.max_sessions, min_tick_ms=config.min_tick_ms, mode=mode, device=config.device)


class EmostreamServer:
    """The server in this process: the inference loop (on a thread, or in a child process) and one I/O
    side. `gesture`: the gesture network and its style names; the body stream is served when it is given
    and config.body is on. (More I/O processes: `serve_forever` with config.workers > 1.)"""

    def __init__(self, network: Any, config: ServerConfig = ServerConfig(),
                 gesture: tuple[Any, list[str]] | None = None) -> None:  # fmt: skip
        from emostream.runtime.inference_loop import InferenceHost

        if config.workers != 1:
            raise ValueError("EmostreamServer runs one I/O side; serve_forever runs several")
        self.config = config
        gesture = gesture if config.body else None
        self.offer = build_offer(config, gesture)
        face = network if config.face else None
        self.host = InferenceHost(_loop_config(config), face, gesture[0] if gesture else None,
                                  _runner_factory(config), 1, config.inference, _voice_estimator(config))  # fmt: skip
        self.worker_stats = SharedCounters.create(WORKER_FIELDS)
        spec = IoSpec(config, self.offer, self.host.audio.handle(), self.host.links[0], self.host.stats.handle(),
                      self.worker_stats.handle(), 0)  # fmt: skip
        self.io = IoServer(spec, self.host.alive)

    async def start(self, sock: socket.socket | None = None) -> int:
        """Takes the port, builds and warms the loop (before any session; on a thread, so that the event loop
        hears a stop signal meanwhile and can `interrupt` it), then listens; returns the port. A port in use
        fails at once, not after the engines are built; any later failure (a bad certificate, a ZeroMQ
        endpoint in use, StartInterrupted) stops the loop it started, so no process is left behind."""
        try:
            if sock is None:
                sock = socket.create_server((self.config.host, self.config.port))
            await asyncio.to_thread(self.host.start)
            # Everything allocated so far (the models, warm-up) lives as long as the server: keep it out of
            # the collector's full passes, which otherwise stall every stream for tens of milliseconds.
            gc.collect()
            gc.freeze()
            port = await self.io.start(sock)
        except BaseException:
            if sock is not None:
                sock.close()
            await self.stop()  # the shared memory too, made when this server was
            raise
        log.info("listening on %s:%d (max %d sessions)", self.config.host, port, self.config.max_sessions)
        return port

    async def stop(self) -> None:
        await self.io.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.host.stop)
        self.io.close()
        self.host.close()
        self.worker_stats.close(unlink=True)

    @property
    def sessions(self) -> dict[int, _Client]:
        return self.io.sessions

    @property
    def refused(self) -> int:
        return int(self.io.closed_counts["refused"])

    @property
    def frames_sent(self) -> int:
        """Frames sent to clients so far, every stream."""
        self.io._publish_counts()
        return int(sum(self.worker_stats.get(f"frames_sent_{s}") for s in STREAM_INFO))

    def metrics(self) -> str:
        """What /metrics answers."""
        self.io._publish_counts()
        return render(self.io.collector).decode()


def tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server's TLS context where a certificate and its key are given; a ConfigError naming them
    where they cannot be loaded."""
    if not (config.certfile and config.keyfile):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except OSError as exc:  # ssl.SSLError included
        raise ConfigError(f"cannot load the TLS certificate {config.certfile} with the key {config.keyfile}: "
                          f"{exc.strerror or exc}") from None  # fmt: skip
    return context


def _reuse_port_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    """A socket on host:port that other processes may bind too: listening, the kernel spreads connections
    over every process listening on the port; bound only, it holds the port without taking connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    return sock


def _wait_until_listening(host: str, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
            return
        time.sleep(0.05)
    raise RuntimeError(f"no I/O process listened on {host}:{port} within {timeout_s:.0f} s")


def _worker_main(spec: IoSpec, port: int, event_loop: str | None) -> None:
    """One of several I/O processes: listens on the shared port until SIGTERM."""
    from emostream.runtime.event_loop import run as run_event_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor turns Ctrl-C into SIGTERM for us
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    async def main() -> None:
        stats = SharedCounters.attach(spec.loop_stats)

        def loop_alive() -> bool:  # another process's loop: alive while its heartbeat is fresh
            return time.time() - stats.get("heartbeat_s") < 5.0

        io = IoServer(spec, loop_alive)
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        await io.start(_reuse_port_socket(spec.config.host, port))
        parent = os.getppid()
        while not stopped.is_set():  # never outlive the supervisor, even one killed outright
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), 1.0)
            if os.getppid() != parent:
                break
        await io.stop()
        io.close()
        stats.close()

    run_event_loop(main(), event_loop)


LOG_FORMAT = '{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", "message": "%(message)s"}'


def serve_forever(network: Any, config: ServerConfig, gesture: tuple[Any, list[str]] | None = None,
                  event_loop: str | None = None) -> None:  # fmt: skip
    """`emostream serve`: runs until SIGTERM or SIGINT, then ends every session with shutting_down, stops
    the inference loop and the I/O processes, and returns."""
    from emostream.runtime.event_loop import run as run_event_loop

    # The event loop and an inference thread hand the GIL to each other several times per frame; at
    # Python's default 5 ms switch interval a waiting thread can lose up to 5 ms at each hand-over.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    tls_context(config)  # a certificate that cannot be loaded fails here, before any process starts
    if config.workers == 1:
        run_event_loop(_serve_one(network, config, gesture), event_loop)
    else:
        _supervise(network, config, gesture, event_loop)


async def _serve_one(network: Any, config: ServerConfig, gesture: tuple[Any, list[str]] | None) -> None:
    server = EmostreamServer(network, config, gesture)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    starting = asyncio.create_task(server.start())
    signalled = asyncio.create_task(stopped.wait())
    await asyncio.wait([starting, signalled], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a stop signal during the first start's export need not wait for it
        server.host.interrupt()
    try:
        port = await starting
    except StartInterrupted:  # the start stopped what it had started
        print("emostream serve: stopped", flush=True)
        return
    finally:
        signalled.cancel()
    _banner(config, port)
    waits = [asyncio.create_task(stopped.wait()), asyncio.create_task(server.io.loop_lost.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await server.stop()
        print("emostream serve: stopped", flush=True)
    if not stopped.is_set():  # a non-zero exit, so that systemd or Kubernetes restart it
        raise ServerError("the inference process died; the log above says why")


def _banner(config: ServerConfig, port: int) -> None:
    backend = config.backend
    if backend == "auto":
        from emostream.engines.factory import resolve_backend

        backend = f"{resolve_backend(backend, config.device)} (auto)"
    print(f"emostream serve: ws://{config.host}:{port} (health: /healthz, metrics: /metrics, "
          f"{config.max_sessions} sessions, {config.workers} I/O process(es), {backend} on {config.device}); "
          "Ctrl-C stops", flush=True)  # fmt: skip


def _supervise(network: Any, config: ServerConfig, gesture: tuple[Any, list[str]] | None,
               event_loop: str | None) -> None:  # fmt: skip
    from emostream.runtime.inference_loop import InferenceHost

    gesture = gesture if config.body else None
    offer = build_offer(config, gesture)
    # The port first (it fixes the port for the workers): one in use fails at once, before the build.
    holder = _reuse_port_socket(config.host, config.port, listen=False)
    port = holder.getsockname()[1]
    host = InferenceHost(_loop_config(config), network if config.face else None, gesture[0] if gesture else None,
                         _runner_factory(config), config.workers, "process", _voice_estimator(config))  # fmt: skip
    worker_stats = SharedCounters.create(WORKER_FIELDS, rows=config.workers)
    stopped: list[int] = []  # the signal that asked us to stop (set from the signal handler)

    def on_signal(number: int, _: Any) -> None:
        stopped.append(number)
        host.interrupt()  # a start in progress ends now (nothing once the loop is ready)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    context = multiprocessing.get_context("spawn")
    workers: list[Any] = []
    died = ""  # the processes that died, when one did
    try:
        try:
            host.start()
        except StartInterrupted:  # the finally below stops what started
            return
        for index in range(config.workers):
            spec = IoSpec(config, replace(offer, worker=index), host.audio.handle(), host.links[index],
                          host.stats.handle(), worker_stats.handle(), index)  # fmt: skip
            process = context.Process(target=_worker_main, args=(spec, port, event_loop),
                                      name=f"emostream-io-{index}")  # fmt: skip
            process.start()
            workers.append(process)
        _wait_until_listening(config.host, port)
        holder.close()
        _banner(config, port)
        while not stopped:
            time.sleep(0.2)
            dead = [w for w in workers if not w.is_alive()]
            if dead or not host.alive():
                died = ", ".join(w.name for w in dead) or "inference"
                log.error("a server process died (%s); stopping", died)
                break
    finally:
        holder.close()
        for process in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
        host.stop()
        host.close()
        worker_stats.close(unlink=True)
        print("emostream serve: stopped", flush=True)
    if died:  # a non-zero exit, so that systemd or Kubernetes restart it
        raise ServerError(f"a server process died ({died}); the log above says why")
