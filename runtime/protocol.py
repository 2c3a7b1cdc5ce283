"""Sans-I/O codec for the emostream wire protocol, version 1 (specified in docs/protocol.md).

Text messages are JSON objects with a "type"; binary messages are audio chunks (client to server) and
animation frames (server to client) with a fixed little-endian header followed by samples or float32
values. Every decoder validates sizes, types and ranges and raises ProtocolError with a code from
ERROR_CODES; nothing here touches a socket or a clock.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np

from emostream.runtime.errors import ProtocolError

PROTOCOL_VERSION = 1

MAX_TEXT_BYTES = 16 * 1024  # a control message; the header with channel names is the largest
MAX_AUDIO_SAMPLES = 48_000  # one binary audio message: at most 1 s at 48 kHz
MAX_FRAME_VALUES = 4_096  # one frame: the body rig needs 223
MAX_BINARY_BYTES = 24 + 4 * max(MAX_AUDIO_SAMPLES, MAX_FRAME_VALUES)

SAMPLE_RATES_HZ: tuple[int, ...] = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
SAMPLE_FORMATS: dict[str, int] = {"s16le": 1, "f32le": 2}  # name -> code in the audio header
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt")
AUTO_EMOTION = "auto"  # the emotion the voice itself carries, estimated as it streams
STREAMS: tuple[str, ...] = ("face", "body")  # index = stream id in the frame header
FACE_REGIONS: tuple[str, ...] = ("lower", "upper", "head", "eyes")

# Error code -> (fatal by default, WebSocket close code when fatal). See docs/protocol.md.
ERROR_CODES: dict[str, tuple[bool, int]] = {
    "bad_message": (False, 1008),  # not JSON, unknown type, missing or mistyped field
    "too_large": (False, 1009),  # over a size limit
    "unsupported_version": (True, 1002),  # protocol version the server does not speak
    "unauthorized": (True, 1008),  # missing or wrong token
    "server_full": (True, 1013),  # no free session slot: try again later or elsewhere
    "out_of_order": (False, 1008),  # message not allowed now (audio before hello, a gap in the audio)
    "bad_audio": (False, 1003),  # wrong format, NaN or infinite samples
    "bad_control": (False, 1008),  # a control value out of range; nothing of that update applied
    "overloaded": (False, 1013),  # the server is behind: this audio chunk was dropped (heard as silence)
    "idle_timeout": (True, 1000),  # no audio or control for too long
    "shutting_down": (True, 1001),  # the server is stopping
    "internal": (True, 1011),  # a server fault; the session cannot continue
}

AUDIO_HEADER = struct.Struct("<BBBBIQq")  # kind, version, format, flags, seq, start_sample, capture_us
FRAME_HEADER = struct.Struct("<BBBBIQqqII")  # kind, version, stream, flags, index, media_sample,
# capture_us, send_us, dropped, n_values
KIND_AUDIO, KIND_FRAME = 1, 2
FRAME_FLAG_DEGRADED = 1  # sampler steps were shed to meet the deadline
FRAME_FLAG_FINAL = 2  # the last frame of this stream in the session


def _fail(code: str, message: str) -> ProtocolError:
    return ProtocolError(code, message, fatal=ERROR_CODES[code][0])


# ---------------------------------------------------------------------------------------------------------
# Control messages (JSON text)


@dataclass(frozen=True)
class Controls:
    """Live per-session controls. None means "leave as it is" in an update."""

    emotion: str | None = None  # one of EMOTIONS, or AUTO_EMOTION
    intensity: float | None = None  # emotion strength in [0, 1]
    auto_weight: float | None = None  # share of the voice's estimated emotion mixed into the chosen one, [0, 1]
    transition_ms: float | None = None  # how long the face takes to blend to a new emotion, [0, 10000]
    seed: int | None = None  # noise seed in [0, 2**31 - 1]
    steps: int | None = None  # sampler steps per frame in [1, 8]
    lookahead_ms: float | None = None  # audio the model may wait for, [0, 500]; the model rounds it
    style: str | None = None  # body style preset name (up to 64 characters)
    face_strength: Mapping[str, float] | None = None  # region in FACE_REGIONS -> gain in [0, 2]

    def merged(self, update: Controls) -> Controls:
        """These controls with every field that `update` sets replaced."""
        changes = {k: v for k, v in asdict(update).items() if v is not None}
        if update.face_strength is not None and self.face_strength is not None:
            changes["face_strength"] = {**self.face_strength, **update.face_strength}
        return Controls(**{**asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Hello:
    """Client's first message: what it sends and what it wants back."""

    sample_rate_hz: int
    sample_format: str = "s16le"
    streams: tuple[str, ...] = STREAMS
    controls: Controls = field(default_factory=Controls)
    token: str | None = None
    client: str | None = None  # free-form client name and version, for logs
    protocol: int = PROTOCOL_VERSION
    type: Literal["hello"] = "hello"


@dataclass(frozen=True)
class ControlUpdate:
    """Client: change controls; the server answers with an Ack carrying the same request_id."""

    controls: Controls
    request_id: int = 0
    type: Literal["controls"] = "controls"


@dataclass(frozen=True)
class ClockPing:
    """Client: NTP-style clock sync request, stamped with the client's clock in microseconds."""

    client_send_us: int
    type: Literal["clock"] = "clock"


@dataclass(frozen=True)
class EndRequest:
    """Client: no more audio; the server flushes the tail, sends final stats and closes."""

    type: Literal["end"] = "end"


@dataclass(frozen=True)
class StreamInfo:
    """One output stream as described in the header."""

    fps: int
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Header:
    """Server's answer to Hello: the session's rigs, rates and latency."""

    session_id: str
    sample_rate_hz: int
    streams: Mapping[str, StreamInfo]
    algorithmic_latency_ms: float  # lookahead plus chunking plus resampling, the floor of any latency
    controls: Controls  # the effective controls, every field set
    server_time_us: int
    protocol: int = PROTOCOL_VERSION
    type: Literal["header"] = "header"


@dataclass(frozen=True)
class Ack:
    """Server: a control update was applied from media sample `from_sample` on."""

    request_id: int
    controls: Controls  # the effective controls after the update
    from_sample: int
    type: Literal["ack"] = "ack"


@dataclass(frozen=True)
class ClockPong:
    """Server: answer to ClockPing with the server's receive and send times in microseconds."""

    client_send_us: int
    server_receive_us: int
    server_send_us: int
    type: Literal["clock"] = "clock"


@dataclass(frozen=True)
class Stats:
    """Server: counters and latency figures; keys are documented in docs/protocol.md."""

    values: Mapping[str, float]
    type: Literal["stats"] = "stats"


@dataclass(frozen=True)
class Error:
    """Server: something the client sent was refused; fatal errors are followed by a close."""

    code: str
    message: str
    fatal: bool = False
    type: Literal["error"] = "error"


@dataclass(frozen=True)
class EndOfSession:
    """Server: the session is over (after an EndRequest, a fatal error or a shutdown)."""

    reason: str
    stats: Mapping[str, float] = field(default_factory=dict)
    type: Literal["end"] = "end"


ClientControl: TypeAlias = Hello | ControlUpdate | ClockPing | EndRequest
ServerControl: TypeAlias = Header | Ack | ClockPong | Stats | Error | EndOfSession


def _json_value(value: Any) -> Any:
    if isinstance(value, Controls):
        return value.to_json()
    if isinstance(value, StreamInfo):
        return {"fps": value.fps, "channels": list(value.channels)}
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def encode_control(message: ClientControl | ServerControl) -> str:
    """A control message as compact JSON text."""
    body = {name: _json_value(getattr(message, name)) for name in message.__dataclass_fields__}
    body = {k: v for k, v in body.items() if v is not None}
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


class _Fields:
    """Typed access to a JSON object's fields, raising bad_message or bad_control with the field's name."""

    def __init__(self, body: Mapping[str, Any], where: str, code: str = "bad_message") -> None:
        self.body, self.where, self.code = body, where, code

    def _get(self, name: str, default: Any) -> Any:
        if name not in self.body:
            if default is _REQUIRED:
                raise _fail(self.code, f"{self.where}: missing field {name!r}")
            return default
        return self.body[name]

    def integer(self, name: str, lo: int, hi: int, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(self.code, f"{self.where}: {name!r} must be an integer in [{lo}, {hi}]")
        return value

    def number(self, name: str, lo: float, hi: float, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(self.code, f"{self.where}: {name!r} must be a number in [{lo}, {hi}]")
        if not lo <= value <= hi:
            raise _fail(self.code, f"{self.where}: {name!r} must be in [{lo}, {hi}], got {value}")
        return float(value)

    def text(self, name: str, max_len: int, choices: tuple[str, ...] | None = None, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or len(value) > max_len:
            raise _fail(self.code, f"{self.where}: {name!r} must be a string of at most {max_len} characters")
        if choices is not None and value not in choices:
            raise _fail(self.code, f"{self.where}: {name!r} must be one of {list(choices)}, got {value!r}")
        return value

    def flag(self, name: str, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is not default and not isinstance(value, bool):
            raise _fail(self.code, f"{self.where}: {name!r} must be true or false")
        return value

    def mapping(self, name: str, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is not default and not isinstance(value, dict):
            raise _fail(self.code, f"{self.where}: {name!r} must be an object")
        return value

    def items(self, name: str, max_len: int, default: Any = None) -> Any:
        value = self._get(name, default)
        if value is not default and (not isinstance(value, list) or len(value) > max_len):
            raise _fail(self.code, f"{self.where}: {name!r} must be a list of at most {max_len} items")
        return value


_REQUIRED = object()
_MAX_US = 2**62


def _parse_numbers(body: Any, where: str) -> dict[str, float]:
    if not isinstance(body, dict) or len(body) > 256:
        raise _fail("bad_message", f"{where} must be an object of at most 256 numbers")
    out: dict[str, float] = {}
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or len(key) > 64:
            raise _fail("bad_message", f"{where}: {key!r} must be a number with a short name")
        out[key] = value
    return out


def parse_controls(body: Any) -> Controls:
    """Validates a controls object; raises bad_control naming the offending field."""
    if not isinstance(body, dict):
        raise _fail("bad_control", "'controls' must be an object")
    f = _Fields(body, "controls", code="bad_control")
    strengths = f.mapping("face_strength")
    if strengths is not None:
        if not set(strengths) <= set(FACE_REGIONS):
            raise _fail("bad_control", f"face_strength regions must be among {list(FACE_REGIONS)}")
        strengths = {r: _Fields(strengths, "face_strength", "bad_control").number(r, 0.0, 2.0) for r in strengths}
    return Controls(
        emotion=f.text("emotion", 16, (*EMOTIONS, AUTO_EMOTION)),
        intensity=f.number("intensity", 0.0, 1.0),
        auto_weight=f.number("auto_weight", 0.0, 1.0),
        transition_ms=f.number("transition_ms", 0.0, 10_000.0),
        seed=f.integer("seed", 0, 2**31 - 1),
        steps=f.integer("steps", 1, 8),
        lookahead_ms=f.number("lookahead_ms", 0.0, 500.0),
        style=f.text("style", 64),
        face_strength=strengths,
    )


def _load_json(text: str | bytes) -> dict[str, Any]:
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_TEXT_BYTES:
        raise _fail("too_large", f"text message of {size} bytes is over the limit of {MAX_TEXT_BYTES}")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _fail("bad_message", f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise _fail("bad_message", 'a text message must be a JSON object with a string "type"')
    return body


def decode_client_control(text: str | bytes) -> ClientControl:
    """Parses a client-to-server text message. Unknown fields are ignored for forward compatibility."""
    body = _load_json(text)
    kind, f = body["type"], _Fields(body, body["type"])
    if kind == "hello":
        protocol = f.integer("protocol", 0, 2**31, default=_REQUIRED)
        if protocol != PROTOCOL_VERSION:
            raise _fail("unsupported_version", f"server speaks protocol {PROTOCOL_VERSION}, client asked {protocol}")
        streams = f.items("streams", len(STREAMS), default=list(STREAMS))
        if not streams or any(s not in STREAMS for s in streams) or len(set(streams)) != len(streams):
            raise _fail("bad_message", f"hello: 'streams' must be a non-empty subset of {list(STREAMS)}")
        controls = f.mapping("controls", default={})
        return Hello(
            sample_rate_hz=f.integer("sample_rate_hz", 0, 10**6, default=_REQUIRED),
            sample_format=f.text("sample_format", 8, tuple(SAMPLE_FORMATS), default="s16le"),
            streams=tuple(streams),
            controls=parse_controls(controls),
            token=f.text("token", 256),
            client=f.text("client", 128),
        )
    if kind == "controls":
        return ControlUpdate(
            controls=parse_controls(f.mapping("controls", default=_REQUIRED)),
            request_id=f.integer("request_id", 0, 2**31 - 1, default=0),
        )
    if kind == "clock":
        return ClockPing(client_send_us=f.integer("client_send_us", -_MAX_US, _MAX_US, default=_REQUIRED))
    if kind == "end":
        return EndRequest()
    raise _fail("bad_message", f"unknown message type {kind[:32]!r}")


def decode_server_control(text: str | bytes) -> ServerControl:
    """Parses a server-to-client text message (what a client library does)."""
    body = _load_json(text)
    kind, f = body["type"], _Fields(body, body["type"])
    if kind == "header":
        streams_body = f.mapping("streams", default=_REQUIRED)
        streams: dict[str, StreamInfo] = {}
        for name, info in streams_body.items():
            if name not in STREAMS or not isinstance(info, dict):
                raise _fail("bad_message", f"header: unknown stream {name[:16]!r}")
            g = _Fields(info, f"header.streams.{name}")
            channels = g.items("channels", MAX_FRAME_VALUES, default=_REQUIRED)
            if not all(isinstance(c, str) for c in channels):
                raise _fail("bad_message", "header: channel names must be strings")
            streams[name] = StreamInfo(fps=g.integer("fps", 1, 1000, default=_REQUIRED), channels=tuple(channels))
        return Header(
            session_id=f.text("session_id", 64, default=_REQUIRED),
            sample_rate_hz=f.integer("sample_rate_hz", 1, 10**6, default=_REQUIRED),
            streams=streams,
            algorithmic_latency_ms=f.number("algorithmic_latency_ms", 0.0, 10_000.0, default=_REQUIRED),
            controls=parse_controls(f.mapping("controls", default={})),
            server_time_us=f.integer("server_time_us", -_MAX_US, _MAX_US, default=_REQUIRED),
            protocol=f.integer("protocol", 0, 2**31, default=_REQUIRED),
        )
    if kind == "ack":
        return Ack(
            request_id=f.integer("request_id", 0, 2**31 - 1, default=_REQUIRED),
            controls=parse_controls(f.mapping("controls", default=_REQUIRED)),
            from_sample=f.integer("from_sample", 0, 2**63 - 1, default=_REQUIRED),
        )
    if kind == "clock":
        return ClockPong(
            client_send_us=f.integer("client_send_us", -_MAX_US, _MAX_US, default=_REQUIRED),
            server_receive_us=f.integer("server_receive_us", -_MAX_US, _MAX_US, default=_REQUIRED),
            server_send_us=f.integer("server_send_us", -_MAX_US, _MAX_US, default=_REQUIRED),
        )
    if kind == "stats":
        return Stats(values=_parse_numbers(f.mapping("values", default=_REQUIRED), "stats"))
    if kind == "error":
        return Error(
            code=f.text("code", 32, tuple(ERROR_CODES), default=_REQUIRED),
            message=f.text("message", 1024, default=_REQUIRED),
            fatal=f.flag("fatal", default=False),
        )
    if kind == "end":
        return EndOfSession(
            reason=f.text("reason", 256, default=_REQUIRED),
            stats=_parse_numbers(f.mapping("stats", default={}), "end.stats"),
        )
    raise _fail("bad_message", f"unknown message type {kind[:32]!r}")


def error_message(exc: ProtocolError) -> Error:
    """The Error message that answers a ProtocolError."""
    return Error(code=exc.code, message=exc.message[:1024], fatal=exc.fatal)


# ---------------------------------------------------------------------------------------------------------
# Binary messages


@dataclass(frozen=True)
class AudioChunk:
    """Client: consecutive mono PCM samples. start_sample counts samples since the session began."""

    seq: int  # 0, 1, 2, ... per session
    start_sample: int  # media time of samples[0], in samples at the session rate
    capture_time_us: int  # client clock when samples[0] was captured; 0 when unknown
    samples: np.ndarray  # int16 (s16le) or float32 (f32le), shape (n,)


@dataclass(frozen=True)
class Frame:
    """Server: one frame of one stream."""

    stream: str  # "face" or "body"
    index: int  # frame number k in this stream, from 0
    media_sample: int  # floor(k * sample_rate_hz / fps): the media time the frame stands for
    capture_time_us: int  # client clock of the newest audio sample this frame used
    send_time_us: int  # server clock when the frame was handed to the socket
    dropped_before: int  # frames of this stream not sent to this client since the previous one
    values: np.ndarray  # float32 (n_channels,), in the header's channel order
    flags: int = 0  # FRAME_FLAG_DEGRADED | FRAME_FLAG_FINAL


def encode_audio(chunk: AudioChunk) -> bytes:
    samples = chunk.samples
    fmt = {np.dtype(np.int16): "s16le", np.dtype(np.float32): "f32le"}.get(samples.dtype)
    if fmt is None or samples.ndim != 1:
        raise _fail("bad_audio", f"audio must be 1-D int16 or float32, got {samples.dtype} {samples.shape}")
    if samples.size > MAX_AUDIO_SAMPLES:
        raise _fail("too_large", f"{samples.size} samples in one message; the limit is {MAX_AUDIO_SAMPLES}")
    header = AUDIO_HEADER.pack(
        KIND_AUDIO, PROTOCOL_VERSION, SAMPLE_FORMATS[fmt], 0, chunk.seq, chunk.start_sample, chunk.capture_time_us
    )
    return header + samples.astype(samples.dtype.newbyteorder("<"), copy=False).tobytes()


def encode_frame(frame: Frame) -> bytes:
    values = np.asarray(frame.values, dtype="<f4")
    if values.ndim != 1 or values.size > MAX_FRAME_VALUES:
        raise _fail("too_large", f"frame of shape {values.shape}; at most {MAX_FRAME_VALUES} values")
    header = FRAME_HEADER.pack(
        KIND_FRAME, PROTOCOL_VERSION, STREAMS.index(frame.stream), frame.flags, frame.index, frame.media_sample,
        frame.capture_time_us, frame.send_time_us, frame.dropped_before, values.size,
    )  # fmt: skip
    return header + values.tobytes()


def _binary_kind(data: bytes, expected: int) -> None:
    if len(data) > MAX_BINARY_BYTES:
        raise _fail("too_large", f"binary message of {len(data)} bytes is over the limit of {MAX_BINARY_BYTES}")
    if len(data) < 2:
        raise _fail("bad_message", "binary message shorter than its header")
    if data[0] != expected:
        raise _fail("bad_message", f"binary message kind {data[0]}, expected {expected}")
    if data[1] != PROTOCOL_VERSION:
        raise _fail("unsupported_version", f"binary message of protocol {data[1]}, expected {PROTOCOL_VERSION}")


def decode_audio(data: bytes) -> AudioChunk:
    """Parses a binary audio message; checks the header, the sample count and finiteness."""
    _binary_kind(data, KIND_AUDIO)
    if len(data) < AUDIO_HEADER.size:
        raise _fail("bad_message", "audio message shorter than its 24-byte header")
    _, _, fmt_code, _flags, seq, start, capture = AUDIO_HEADER.unpack_from(data)
    dtypes: dict[int, np.dtype] = {1: np.dtype("<i2"), 2: np.dtype("<f4")}
    dtype = dtypes.get(fmt_code)
    if dtype is None:
        raise _fail("bad_audio", f"unknown sample format code {fmt_code}")
    payload = memoryview(data)[AUDIO_HEADER.size :]
    if len(payload) % dtype.itemsize:
        raise _fail("bad_audio", f"payload of {len(payload)} bytes is not whole {dtype.itemsize}-byte samples")
    samples = np.frombuffer(payload, dtype=dtype).astype(dtype.newbyteorder("="))
    if samples.size > MAX_AUDIO_SAMPLES:
        raise _fail("too_large", f"{samples.size} samples in one message; the limit is {MAX_AUDIO_SAMPLES}")
    if dtype.kind == "f" and not np.all(np.isfinite(samples)):
        raise _fail("bad_audio", "audio contains NaN or infinite samples")
    return AudioChunk(seq=seq, start_sample=start, capture_time_us=capture, samples=samples)


def decode_frame(data: bytes) -> Frame:
    """Parses a binary frame message (what a client library does)."""
    _binary_kind(data, KIND_FRAME)
    if len(data) < FRAME_HEADER.size:
        raise _fail("bad_message", "frame message shorter than its 40-byte header")
    _, _, stream, flags, index, media, capture, send, dropped, n_values = FRAME_HEADER.unpack_from(data)
    if stream >= len(STREAMS):
        raise _fail("bad_message", f"unknown stream id {stream}")
    if len(data) != FRAME_HEADER.size + 4 * n_values:
        raise _fail("bad_message", f"frame declares {n_values} values but carries {len(data) - 40} bytes")
    values = np.frombuffer(data, dtype="<f4", offset=FRAME_HEADER.size).astype(np.float32)
    return Frame(STREAMS[stream], index, media, capture, send, dropped, values, flags)


def frame_media_sample(index: int, sample_rate_hz: int, fps: int) -> int:
    """Media time of frame `index` in samples at the session rate: floor(index * rate / fps)."""
    return index * sample_rate_hz // fps
