"""The Python client library: speaks docs/protocol.md over a WebSocket, with clock sync and frames as
numpy arrays with channel names. asyncio first (`EmostreamClient`), plus a blocking wrapper
(`BlockingClient`). Never imports torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError, SessionError

CONTROL_REFUSALS = frozenset({"bad_control"})  # error codes that refuse a control update (docs/protocol.md)

T = TypeVar("T")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class ReceivedFrame:
    stream: str
    index: int
    media_sample: int
    capture_time_us: int  # client clock (ours): capture of the newest audio the frame used
    send_time_us: int  # server clock
    received_us: int  # client clock, when the frame arrived here
    dropped_before: int
    degraded: bool
    final: bool
    values: np.ndarray

    @property
    def latency_ms(self) -> float | None:
        """End to end: capture of the newest audio it used to arrival here. None without a capture time."""
        return (self.received_us - self.capture_time_us) / 1000 if self.capture_time_us else None


@dataclass(frozen=True)
class ClockEstimate:
    offset_us: float  # server clock minus client clock
    round_trip_us: float


class EmostreamClient:
    """One session. Create with `await EmostreamClient.connect(...)`."""

    def __init__(self, connection: ClientConnection, hello: P.Hello, header: P.Header) -> None:
        self.connection = connection
        self.hello = hello
        self.header = header
        self.channels = {name: info.channels for name, info in header.streams.items()}
        self.frames: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
        self.errors: list[P.Error] = []
        self.last_stats: dict[str, float] = {}
        self.ended: asyncio.Future[P.EndOfSession] = asyncio.get_running_loop().create_future()
        self._pending: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._error_waiters: list[asyncio.Future[P.Error]] = []
        self._request_ids = itertools.count(1)
        self._seq = 0
        self._next_sample = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        url: str,
        sample_rate_hz: int,
        sample_format: str = "s16le",
        streams: tuple[str, ...] = ("face",),
        controls: P.Controls | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> EmostreamClient:
        """Connects, sends hello and waits for the header; raises SessionError if the server refuses.
        For wss:// URLs, `ssl_context` can trust a private certificate."""
        options: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}
        connection = await connect(
            url, max_size=P.MAX_BINARY_BYTES, compression=None, open_timeout=timeout_s, **options
        )
        hello = P.Hello(sample_rate_hz, sample_format, streams, controls or P.Controls(), token, "emostream-python/0.1")
        try:  # a server that refuses at once (stopping, full) may have closed before the hello goes out
            await connection.send(P.encode_control(hello))
            reply = P.decode_server_control(await asyncio.wait_for(connection.recv(), timeout_s))
        except ConnectionClosed as exc:
            raise SessionError(f"server closed the connection: {exc}") from None
        if isinstance(reply, P.Error):
            await connection.close()
            raise SessionError(f"server refused the session: {reply.code}: {reply.message}")
        if not isinstance(reply, P.Header):
            await connection.close()
            raise SessionError(f"expected a header, got {reply.type}")
        return cls(connection, hello, reply)

    @property
    def samples_sent(self) -> int:
        """Audio sent so far, in samples at the session rate (the next chunk's start_sample)."""
        return self._next_sample

    async def send_audio(self, samples: np.ndarray, capture_time_us: int | None = None) -> None:
        """Sends the next chunk (int16 for s16le, float32 for f32le), stamped with its capture time."""
        chunk = P.AudioChunk(
            self._seq, self._next_sample, now_us() if capture_time_us is None else capture_time_us, samples
        )
        await self.connection.send(P.encode_audio(chunk))
        self._seq += 1
        self._next_sample += samples.shape[0]

    async def set_controls(self, controls: P.Controls, timeout_s: float = 5.0) -> P.Ack:
        """Changes live controls; returns the server's acknowledgement (raises ProtocolError if refused)."""
        request_id = next(self._request_ids)
        ack = self._expect(("ack", request_id))
        error: asyncio.Future[P.Error] = asyncio.get_running_loop().create_future()
        self._error_waiters.append(error)
        await self.connection.send(P.encode_control(P.ControlUpdate(controls, request_id)))
        done, _ = await asyncio.wait([ack, error], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        self._pending.pop(("ack", request_id), None)
        if ack in done:
            return ack.result()
        if error in done:
            raise ProtocolError(error.result().code, error.result().message)
        raise ProtocolError("internal", "no acknowledgement from the server")

    async def clock_sync(self, rounds: int = 5) -> ClockEstimate:
        """NTP-style: keeps the exchange with the shortest round trip."""
        best: ClockEstimate | None = None
        for _ in range(rounds):
            t0 = now_us()
            future = self._expect(("clock", t0))
            await self.connection.send(P.encode_control(P.ClockPing(t0)))
            pong: P.ClockPong = await asyncio.wait_for(future, 5.0)
            t3 = now_us()
            estimate = ClockEstimate(
                ((pong.server_receive_us - t0) + (pong.server_send_us - t3)) / 2,
                (t3 - t0) - (pong.server_send_us - pong.server_receive_us),
            )
            if best is None or estimate.round_trip_us < best.round_trip_us:
                best = estimate
        assert best is not None
        return best

    async def end(self, timeout_s: float = 15.0) -> P.EndOfSession:
        """No more audio: waits for the remaining frames, the server's end message and its closing
        handshake (so a caller that stops its event loop next leaves no half-closed connection behind)."""
        await self.connection.send(P.encode_control(P.EndRequest()))
        end = await asyncio.wait_for(asyncio.shield(self.ended), timeout_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connection.wait_closed(), 2.0)
        return end

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.connection.close()

    def drain(self) -> list[ReceivedFrame]:
        """Every frame received so far, in arrival order."""
        out = []
        while not self.frames.empty():
            out.append(self.frames.get_nowait())
        return out

    def _expect(self, key: tuple[str, int]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        return future

    def _resolve(self, key: tuple[str, int], value: Any) -> None:
        future = self._pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                if isinstance(message, bytes):
                    f = P.decode_frame(message)
                    self.frames.put_nowait(
                        ReceivedFrame(
                            f.stream,
                            f.index,
                            f.media_sample,
                            f.capture_time_us,
                            f.send_time_us,
                            now_us(),
                            f.dropped_before,
                            bool(f.flags & P.FRAME_FLAG_DEGRADED),
                            bool(f.flags & P.FRAME_FLAG_FINAL),
                            f.values,
                        )
                    )
                    continue
                reply = P.decode_server_control(message)
                if isinstance(reply, P.Ack):
                    self._resolve(("ack", reply.request_id), reply)
                elif isinstance(reply, P.ClockPong):
                    self._resolve(("clock", reply.client_send_us), reply)
                elif isinstance(reply, P.Stats):
                    self.last_stats = dict(reply.values)
                elif isinstance(reply, P.Error):
                    self.errors.append(reply)
                    # only a refused control or the session's end answers a waiting control update: an
                    # audio chunk's `overloaded` or `bad_audio` in between is not about it
                    if reply.code in CONTROL_REFUSALS or reply.fatal:
                        for waiter in self._error_waiters:
                            if not waiter.done():
                                waiter.set_result(reply)
                        self._error_waiters.clear()
                elif isinstance(reply, P.EndOfSession) and not self.ended.done():
                    self.ended.set_result(reply)
        except ConnectionClosed:
            pass
        finally:
            if not self.ended.done():
                self.ended.set_exception(SessionError("connection closed before the session ended"))


class BlockingClient:
    """The same client for code without asyncio: an event loop runs in a background thread."""

    def __init__(self, url: str, sample_rate_hz: int, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emostream-client", daemon=True)
        self._thread.start()
        self.client: EmostreamClient = self._call(EmostreamClient.connect(url, sample_rate_hz, **kwargs))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def send_audio(self, samples: np.ndarray, capture_time_us: int | None = None) -> None:
        self._call(self.client.send_audio(samples, capture_time_us))

    def set_controls(self, controls: P.Controls) -> P.Ack:
        return self._call(self.client.set_controls(controls))

    def clock_sync(self, rounds: int = 5) -> ClockEstimate:
        return self._call(self.client.clock_sync(rounds))

    def frames(self) -> list[ReceivedFrame]:
        async def drain() -> list[ReceivedFrame]:
            return self.client.drain()

        return self._call(drain())

    def end(self) -> P.EndOfSession:
        return self._call(self.client.end())

    def close(self) -> None:
        self._call(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
