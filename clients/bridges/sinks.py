"""Sinks that pass each received frame on to an external engine (see runner.py and docs/bridges.md)."""

from __future__ import annotations

from clients.bridges.livelink import LiveLinkSender
from clients.bridges.vmc import VmcSender
from clients.client import ReceivedFrame
from runtime import protocol as P
from runtime.zmq_publisher import PublishedFrame, ZmqPublisher


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
    """Face frames drive the blendshapes, head and eyes. The server streams no body yet; VmcSender maps
    SMPL-X body frames to humanoid bones already (tested), for when it does."""

    def __init__(self, host: str, port: int, bundled: bool = True) -> None:
        self.sender = VmcSender(host, port, bundled)
        self.fps = 60

    def start(self, header: P.Header) -> None:
        self.fps = header.streams["face"].fps

    def send(self, frame: ReceivedFrame) -> None:
        if frame.stream == "face":
            self.sender.send(frame.values, frame.index / self.fps)

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
