"""A bridge: an audio source streamed to an emostream server, every frame passed on to a sink at once.

The bridge is an ordinary client session (docs/protocol.md). Frames go to the sink from their own task
as soon as they arrive, never batched behind the audio loop. If the server cannot be reached or goes
away, the bridge retries with backoff (0.5 s doubling to 5 s) and carries on with the same source: audio
captured while it was away is not sent, and a new session starts its own frame count. A sink whose
receiver is absent keeps sending (UDP) or queueing within its high-water mark (ZeroMQ); neither blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from emostream.clients.client import EmostreamClient, ReceivedFrame, now_us
from emostream.runtime import protocol as P
from emostream.runtime.errors import SessionError

log = logging.getLogger("emostream.bridge")
RETRY_S = (0.5, 5.0)  # first and longest wait between connection attempts


class Sink(Protocol):
    def start(self, header: P.Header) -> None:
        """A session began: its header names the channels."""

    def send(self, frame: ReceivedFrame) -> None:
        """Pass one frame on; must not block."""

    def close(self) -> None: ...


@dataclass
class BridgeStats:
    sessions: int = 0  # sessions opened (1 + reconnects)
    failed_connects: int = 0
    frames: int = 0
    bridge_latency_us: deque[int] = field(default_factory=lambda: deque(maxlen=100_000))  # received -> sent

    def summary(self) -> dict[str, float]:
        a = np.array(self.bridge_latency_us, dtype=np.float64) / 1000
        latency = {f"p{q}_ms": float(np.percentile(a, q)) for q in (50, 99)} if a.size else {}
        return {"sessions": self.sessions, "failed_connects": self.failed_connects, "frames": self.frames, **latency}


async def run_bridge(
    url: str,
    source: AsyncIterator[tuple[np.ndarray, int]],
    sample_rate_hz: int,
    sink: Sink,
    controls: P.Controls | None = None,
    token: str | None = None,
    stats: BridgeStats | None = None,
    streams: tuple[str, ...] = ("face", "body"),
) -> BridgeStats:
    """Runs until the source ends (then ends the session cleanly) or the task is cancelled. `streams`:
    what to ask for; a server without the body answers with the face alone."""
    stats = stats or BridgeStats()
    wait_s = RETRY_S[0]
    pending: tuple[np.ndarray, int] | None = None
    while True:
        try:
            client = await EmostreamClient.connect(url, sample_rate_hz, streams=streams, controls=controls, token=token)
        except (OSError, SessionError, InvalidHandshake, TimeoutError) as exc:
            stats.failed_connects += 1
            log.warning("bridge: cannot reach %s (%s); retrying in %.1f s", url, exc, wait_s)
            await asyncio.sleep(wait_s)
            wait_s = min(2 * wait_s, RETRY_S[1])
            continue
        wait_s = RETRY_S[0]
        stats.sessions += 1
        sink.start(client.header)
        forwarder = asyncio.create_task(_forward(client, sink, stats))
        try:
            while True:
                chunk = pending or await anext(source, None)
                pending = None
                if chunk is None:
                    await client.end()
                    await asyncio.sleep(0)
                    _deliver(client.drain(), sink, stats)
                    return stats
                if client.ended.done():  # the reader saw the connection close
                    pending = chunk
                    raise ConnectionClosed(None, None)
                await client.send_audio(*chunk)
        except (ConnectionClosed, SessionError, OSError) as exc:
            log.warning("bridge: lost the session (%s); reconnecting", exc.__class__.__name__)
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
            with contextlib.suppress(Exception):
                await client.close()


async def _forward(client: EmostreamClient, sink: Sink, stats: BridgeStats) -> None:
    while True:
        _deliver([await client.frames.get()], sink, stats)


def _deliver(frames: list[ReceivedFrame], sink: Sink, stats: BridgeStats) -> None:
    for frame in frames:
        sink.send(frame)
        stats.frames += 1
        stats.bridge_latency_us.append(now_us() - frame.received_us)
