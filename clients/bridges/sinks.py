"""Sinks that pass each received frame on to an external engine (see runner.py and docs/bridges.md)."""

from __future__ import annotations

import numpy as np

from emostream.clients.bridges.livelink import LiveLinkSender
from emostream.clients.bridges.vmc import VmcSender
from emostream.clients.client import ReceivedFrame
from emostream.runtime import protocol as P
from emostream.runtime.body_pose import frames_to_quat
from emostream.runtime.zmq_publisher import PublishedFrame, ZmqPublisher


class ZmqSink:
    def __init__(self, bind: str, hwm: int = 120) -> None:
        self.publisher = ZmqPublisher(bind, hwm)
        self.session = ""
        self.fps: dict[str, int] = {}

    def start(self, header: P.Header) -> None:
        self.session = header.session_id
        self.fps = {k: v.fps for k, v in header.streams.items()}
        self.publisher.start_session(self.session, header.streams)

    def send(self, frame: ReceivedFrame) -> None:
        media_time = frame.index / self.fps.get(frame.stream, 60)
        self.publisher.publish(PublishedFrame(frame.stream, self.session, frame.index, media_time,
                                              frame.capture_time_us, frame.send_time_us, frame.degraded,
                                              frame.values))  # fmt: skip

    def close(self) -> None:
        self.publisher.close()


class VmcSink:
    """Face frames drive the blendshapes, head and eyes, body frames the humanoid bones. Every frame of
    either stream sends one bundle with the newest frame of the other, so a receiver always holds a
    whole pose, whichever stream arrives first."""

    def __init__(self, host: str, port: int, bundled: bool = True, role: str = "performer") -> None:
        self.sender = VmcSender(host, port, bundled, role)
        self.fps = 60
        self.body: np.ndarray | None = None  # (55, 4) local quaternions of the newest body frame
        self.face: tuple[np.ndarray, float] | None = None  # the newest face frame and its media time

    def start(self, header: P.Header) -> None:
        self.fps = header.streams["face"].fps
        self.body = self.face = None

    def send(self, frame: ReceivedFrame) -> None:
        if frame.stream == "body":
            self.body = frames_to_quat(frame.values[None])[0][0]
        elif frame.stream == "face":
            self.face = frame.values, frame.index / self.fps
        else:
            return
        if self.face is not None:
            self.sender.send(*self.face, self.body)

    def close(self) -> None:
        self.sender.close()


class LiveLinkSink:
    def __init__(self, host: str, port: int, subject: str) -> None:
        self.sender = LiveLinkSender(host, port, subject)

    def start(self, header: P.Header) -> None:
        self.sender.fps = header.streams["face"].fps

    def send(self, frame: ReceivedFrame) -> None:
        if frame.stream == "face":
            self.sender.send(frame.values, frame.index)

    def close(self) -> None:
        self.sender.close()
