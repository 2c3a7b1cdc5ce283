"""What crosses between an I/O process and the inference loop, as typed messages.

Down, to the loop: `OpenSlot`, `ControlSlot` and `CloseSlot`, a handful per session's life (audio does
not travel as messages: it goes straight into the audio table, runtime/audio_table.py). Each batch of
them is one queue record (pickled: they are few and small).

Up, to an I/O process: a `FrameBlock` per stream per tick, the frames the tick made for that process's
sessions, as flat arrays in one record with no pickling: a header, then the arrays back to back.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlotSettings:
    """What a session asks of its slot at open (and may change later, except the lookahead and streams)."""

    rate_hz: int
    seed: int
    emotion: np.ndarray  # (N_EMOTIONS,) the starting emotion vector
    steps: int  # sampler steps
    face_lookahead: int | None  # feature frames; None: no face stream
    style: np.ndarray | None  # (style_dim,); None: no body stream
    face_gains: np.ndarray | None = None  # (face channels,) per-channel gain (face_strength); None: all 1
    auto_emotion: float = 0.0  # scale of the voice's estimated emotion added to `emotion` (0: no estimate)


@dataclass(frozen=True)
class StreamFrames:
    """Frames of one stream made in one tick, one row each."""

    stream: str  # "face", "body", or "voice_emotion" (the estimate: blend (8), arousal, valence)
    slots: np.ndarray  # (n,) int64
    indices: np.ndarray  # (n,) int64: frame k stands for media time k / fps
    values: np.ndarray  # (n, channels) float32, in the stream's wire layout
    capture_us: np.ndarray  # (n,) int64: client clock at capture of the newest audio the frame used
    received_us: np.ndarray  # (n,) int64: server clock when that audio arrived

    def __len__(self) -> int:
        return int(self.slots.size)

    @staticmethod
    def concat(parts: list[StreamFrames]) -> StreamFrames:
        return StreamFrames(parts[0].stream, *(np.concatenate([getattr(p, f) for p in parts]) for f in
                            ("slots", "indices", "values", "capture_us", "received_us")))  # fmt: skip


@dataclass(frozen=True)
class OpenSlot:
    slot: int
    generation: int  # the claim's generation: frames carry it back, so a reused slot's old frames are told apart
    settings: SlotSettings


@dataclass(frozen=True)
class SlotChange:
    """A session's controls update as the generators take it. None leaves a field as it is."""

    emotion: np.ndarray | None = None  # (N_EMOTIONS,) the new target
    auto_emotion: float = 0.0  # with `emotion`: the new scale of the voice's estimate (SlotSettings)
    transition_ms: float = 0.0  # how long the blend to it takes
    steps: int | None = None
    seed: int | None = None
    style: np.ndarray | None = None
    face_gains: np.ndarray | None = None  # (face channels,); all ones to undo a strength


@dataclass(frozen=True)
class ControlSlot:
    """A controls update, applied whole to the frames whose media time is at least `from_sample` (the
    audio the session had sent when it asked: docs/protocol.md, ack)."""

    slot: int
    generation: int
    change: SlotChange
    from_sample: int


@dataclass(frozen=True)
class CloseSlot:
    """The session is over: the loop stops its streams and gives the slot back to the audio table."""

    slot: int
    generation: int


Command = OpenSlot | ControlSlot | CloseSlot


def encode_commands(commands: list[Command]) -> bytes:
    return pickle.dumps(commands, protocol=pickle.HIGHEST_PROTOCOL)


def decode_commands(record: bytes) -> list[Command]:
    commands = pickle.loads(record)
    assert isinstance(commands, list)
    return commands


VOICE_EMOTION = "voice_emotion"  # the estimate's rows travel up as a stream of their own, one row per tick
STREAM_CODES = {"face": 0, "body": 1, VOICE_EMOTION: 2}
_STREAMS = {code: name for name, code in STREAM_CODES.items()}
_BLOCK_HEADER = np.dtype([("stream", "<u4"), ("n", "<u4"), ("channels", "<u4"), ("pad", "<u4")])


@dataclass(frozen=True)
class FrameBlock:
    """Frames of one stream for one I/O process, one row each (the arrays of StreamFrames, plus the
    generation of the session each was made for)."""

    stream: str
    slots: np.ndarray  # (n,) int64
    generations: np.ndarray  # (n,) int64
    indices: np.ndarray  # (n,) int64
    capture_us: np.ndarray  # (n,) int64
    received_us: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, channels) float32

    @classmethod
    def of(cls, frames: StreamFrames, generations: np.ndarray, rows: np.ndarray | None = None) -> FrameBlock:
        """The rows `rows` of `frames` (all by default); `generations` is indexed by slot."""
        take = slice(None) if rows is None else rows
        slots = frames.slots[take]
        return cls(frames.stream, slots, generations[slots], frames.indices[take], frames.capture_us[take],
                   frames.received_us[take], frames.values[take])  # fmt: skip

    def encode(self) -> bytes:
        n, channels = self.values.shape
        header = np.array([(STREAM_CODES[self.stream], n, channels, 0)], _BLOCK_HEADER)
        ints = np.stack([self.slots, self.generations, self.indices, self.capture_us, self.received_us]).astype("<i8")
        return header.tobytes() + ints.tobytes() + np.ascontiguousarray(self.values, "<f4").tobytes()

    @classmethod
    def decode(cls, record: bytes) -> FrameBlock:
        header = np.frombuffer(record, _BLOCK_HEADER, 1)[0]
        n, channels = int(header["n"]), int(header["channels"])
        offset = _BLOCK_HEADER.itemsize
        ints = np.frombuffer(record, "<i8", 5 * n, offset).reshape(5, n)
        values = np.frombuffer(record, "<f4", n * channels, offset + 40 * n).reshape(n, channels)
        slots, generations, indices, capture_us, received_us = ints
        return cls(_STREAMS[int(header["stream"])], slots, generations, indices, capture_us, received_us, values)
