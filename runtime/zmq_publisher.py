"""Frames over ZeroMQ PUB: one single-part message per frame, names in a periodic header (docs/bridges.md).

Every message is one part (so subscribers may use ZMQ_CONFLATE, which does not support multipart), and
starts with its topic and one space, which is what SUB prefix matching sees:
- frame:  b"emostream/<stream>/<session> " + FRAME_META + float32 little-endian values
          FRAME_META = little-endian (uint32 index, float64 media time s, int64 capture time us,
          int64 send time us, uint8 degraded): 29 bytes
- header: b"emostream/header/<session> " + JSON {"protocol", "session", "streams": {name: {"fps", "channels"}}},
          sent when a session starts and every `header_interval_s`, so a late subscriber learns the names.

The PUB socket has a send high-water mark (`hwm` messages per subscriber): a stalled subscriber loses
frames beyond it instead of growing our memory. Latest-frame-only consumers set CONFLATE on their SUB
(docs/bridges.md shows one). Used by `emostream serve --zmq` and `emostream bridge zmq`; no torch here.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import zmq

from emostream.runtime.errors import ConfigError
from emostream.runtime.protocol import PROTOCOL_VERSION, StreamInfo

TOPIC_PREFIX = "emostream/"
FRAME_META = struct.Struct("<IdqqB")
DEFAULT_HWM = 120  # messages per subscriber: 2 s of face frames


@dataclass(frozen=True)
class PublishedFrame:
    stream: str
    session: str
    index: int
    media_time_s: float
    capture_time_us: int
    send_time_us: int
    degraded: bool
    values: np.ndarray


def encode_frame(frame: PublishedFrame) -> bytes:
    topic = f"{TOPIC_PREFIX}{frame.stream}/{frame.session} ".encode()
    meta = FRAME_META.pack(frame.index, frame.media_time_s, frame.capture_time_us, frame.send_time_us,
                           frame.degraded)  # fmt: skip
    return topic + meta + np.ascontiguousarray(frame.values, dtype="<f4").tobytes()


def encode_header(session: str, streams: Mapping[str, StreamInfo]) -> bytes:
    body = {"protocol": PROTOCOL_VERSION, "session": session,
            "streams": {k: {"fps": v.fps, "channels": list(v.channels)} for k, v in streams.items()}}  # fmt: skip
    return f"{TOPIC_PREFIX}header/{session} ".encode() + json.dumps(body).encode()


def decode(message: bytes) -> PublishedFrame | dict:
    """A received message: a PublishedFrame, or the header's dict."""
    topic, _, body = message.partition(b" ")
    _, kind, session = topic.decode().split("/", 2)
    if kind == "header":
        return dict(json.loads(body))
    index, media_time, capture_us, send_us, degraded = FRAME_META.unpack_from(body)
    values = np.frombuffer(body, dtype="<f4", offset=FRAME_META.size)
    return PublishedFrame(kind, session, index, media_time, capture_us, send_us, bool(degraded), values)


class ZmqPublisher:
    def __init__(self, bind: str, hwm: int = DEFAULT_HWM, header_interval_s: float = 1.0) -> None:
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(bind)
        except zmq.ZMQError as exc:  # an endpoint in use or malformed: say which, as for the WebSocket port
            self.socket.close()
            raise ConfigError(f"cannot publish frames on ZeroMQ {bind}: {exc}") from None
        self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)  # the real port when bound to :*
        self.header_interval_s = header_interval_s
        self.headers: dict[str, tuple[bytes, float]] = {}  # session -> (message, last sent)
        self.sent = 0  # frames handed to ZeroMQ; a subscriber whose queue is full misses them (PUB drops)

    def start_session(self, session: str, streams: Mapping[str, StreamInfo]) -> None:
        message = encode_header(session, streams)
        self.headers[session] = (message, time.monotonic())
        self._send(message)

    def end_session(self, session: str) -> None:
        self.headers.pop(session, None)

    def publish(self, frame: PublishedFrame) -> None:
        header = self.headers.get(frame.session)
        if header is not None and time.monotonic() - header[1] >= self.header_interval_s:
            self.headers[frame.session] = (header[0], time.monotonic())
            self._send(header[0])
        self._send(encode_frame(frame))
        self.sent += 1

    def _send(self, message: bytes) -> None:
        # A PUB socket never blocks: beyond a subscriber's high-water mark it drops for that subscriber.
        self.socket.send(message, flags=zmq.NOBLOCK)

    def close(self) -> None:
        self.socket.close(linger=0)
