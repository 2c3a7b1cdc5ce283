"""Unreal Live Link Face packets over UDP (the iOS app's format, port 11111 by default).

Layout, big-endian, as publicly described (Unreal's AppleARKitFaceSupport reads it with a network-order
archive; see docs/bridges.md for the sources and what was verified):
  uint8   packet version (6)
  int32   length, then UTF-8 bytes: device id
  int32   length, then UTF-8 bytes: subject name
  int32   frame number, float32 sub-frame, int32 rate numerator, int32 rate denominator
  uint8   curve count (61)
  61 x float32: the 52 ARKit shapes in Live Link order, then HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw,
          LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll (radians; eye roll is 0)
"""

from __future__ import annotations

import socket
import struct
import uuid
from dataclasses import dataclass

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS

PACKET_VERSION = 6
N_CURVES = 61
ROTATION_CURVES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                   "RightEyeYaw", "RightEyePitch", "RightEyeRoll")  # fmt: skip
CURVE_NAMES = tuple(n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES) + ROTATION_CURVES
_FACE = {name: i for i, name in enumerate(FACE_CHANNELS)}
_ROTATION_SOURCES = ("headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch", None,
                     "rightEyeYaw", "rightEyePitch", None)  # fmt: skip


def curves_from_face(face: np.ndarray) -> np.ndarray:
    """(59,) FACE_CHANNELS -> (61,) Live Link curves."""
    rotations = [face[_FACE[n]] if n else 0.0 for n in _ROTATION_SOURCES]
    return np.concatenate([face[: len(ARKIT_BLENDSHAPES)], np.asarray(rotations, face.dtype)]).astype(np.float32)


@dataclass(frozen=True)
class LiveLinkPacket:
    device_id: str
    subject: str
    frame_number: int
    sub_frame: float
    rate: tuple[int, int]
    curves: np.ndarray  # (61,)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">i", len(data)) + data


def encode_packet(p: LiveLinkPacket) -> bytes:
    if p.curves.shape != (N_CURVES,):
        raise ValueError(f"Live Link needs {N_CURVES} curves, got {p.curves.shape}")
    return b"".join([
        struct.pack(">B", PACKET_VERSION), _string(p.device_id), _string(p.subject),
        struct.pack(">ifii", p.frame_number, p.sub_frame, *p.rate),
        struct.pack(">B", N_CURVES), p.curves.astype(">f4").tobytes(),
    ])  # fmt: skip


def decode_packet(data: bytes) -> LiveLinkPacket:
    """Parses a packet; raises ValueError on anything malformed."""
    try:
        (version,) = struct.unpack_from(">B", data, 0)
        if version != PACKET_VERSION:
            raise ValueError(f"packet version {version}, expected {PACKET_VERSION}")
        offset, texts = 1, []
        for _ in range(2):
            (n,) = struct.unpack_from(">i", data, offset)
            texts.append(data[offset + 4 : offset + 4 + n].decode())
            offset += 4 + n
        frame, sub, num, den = struct.unpack_from(">ifii", data, offset)
        (count,) = struct.unpack_from(">B", data, offset + 16)
        curves = np.frombuffer(data, ">f4", count, offset + 17).astype(np.float32)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed Live Link packet: {exc}") from None
    if offset + 17 + 4 * count != len(data):
        raise ValueError("Live Link packet length does not match its curve count")
    return LiveLinkPacket(texts[0], texts[1], frame, sub, (num, den), curves)


def device_uuid(subject: str) -> str:
    """A device id as the app sends one: a 36-character UUID (stable per subject). Parsers written
    against the app's packets (PyLiveLinkFace) read exactly 36 characters there."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"emostream/{subject}")).upper()


class LiveLinkSender:
    def __init__(self, host: str = "127.0.0.1", port: int = 11111, subject: str = "emostream",
                 device_id: str | None = None, fps: int = 60) -> None:  # fmt: skip
        self.address = (host, port)
        self.subject, self.device_id, self.fps = subject, device_id or device_uuid(subject), fps
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0
        self.send_errors = 0

    def packet(self, face: np.ndarray, frame_index: int) -> bytes:
        return encode_packet(LiveLinkPacket(self.device_id, self.subject, frame_index, 0.0, (self.fps, 1),
                                            curves_from_face(face)))  # fmt: skip

    def send(self, face: np.ndarray, frame_index: int) -> None:
        try:
            self.socket.sendto(self.packet(face, frame_index), self.address)
            self.sent += 1
        except OSError:
            self.send_errors += 1

    def close(self) -> None:
        self.socket.close()
