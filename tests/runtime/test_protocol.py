import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError

controls_strategy = st.builds(
    P.Controls,
    emotion=st.none() | st.sampled_from(P.EMOTIONS),
    intensity=st.none() | st.floats(0, 1),
    transition_ms=st.none() | st.floats(0, 10_000),
    seed=st.none() | st.integers(0, 2**31 - 1),
    steps=st.none() | st.integers(1, 8),
    lookahead_ms=st.none() | st.floats(0, 500),
    style=st.none() | st.text(max_size=64),
    face_strength=st.none() | st.dictionaries(st.sampled_from(P.FACE_REGIONS), st.floats(0, 2)),
)
client_messages = st.one_of(
    st.builds(
        P.Hello,
        sample_rate_hz=st.sampled_from(P.SAMPLE_RATES_HZ),
        sample_format=st.sampled_from(tuple(P.SAMPLE_FORMATS)),
        streams=st.sampled_from([("face",), ("body",), ("face", "body")]),
        controls=controls_strategy,
        token=st.none() | st.text(max_size=256),
        client=st.none() | st.text(max_size=128),
    ),
    st.builds(P.ControlUpdate, controls=controls_strategy, request_id=st.integers(0, 2**31 - 1)),
    st.builds(P.ClockPing, client_send_us=st.integers(-(2**62), 2**62)),
    st.just(P.EndRequest()),
)
numbers = st.dictionaries(
    st.text(max_size=64), st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False), max_size=20
)
server_messages = st.one_of(
    st.builds(
        P.Header,
        session_id=st.text(min_size=1, max_size=64),
        sample_rate_hz=st.sampled_from(P.SAMPLE_RATES_HZ),
        streams=st.dictionaries(
            st.sampled_from(P.STREAMS),
            st.builds(
                P.StreamInfo, fps=st.integers(1, 1000), channels=st.lists(st.text(max_size=20), max_size=60).map(tuple)
            ),
            min_size=1,
        ),
        algorithmic_latency_ms=st.floats(0, 10_000),
        controls=controls_strategy,
        server_time_us=st.integers(0, 2**62),
    ),
    st.builds(
        P.Ack, request_id=st.integers(0, 2**31 - 1), controls=controls_strategy, from_sample=st.integers(0, 2**63 - 1)
    ),
    st.builds(
        P.ClockPong,
        client_send_us=st.integers(0, 2**62),
        server_receive_us=st.integers(0, 2**62),
        server_send_us=st.integers(0, 2**62),
    ),
    st.builds(P.Stats, values=numbers),
    st.builds(P.Error, code=st.sampled_from(tuple(P.ERROR_CODES)), message=st.text(max_size=200), fatal=st.booleans()),
    st.builds(P.EndOfSession, reason=st.text(max_size=100), stats=numbers),
)


def assert_only_protocol_errors(decoders: tuple[Callable[[Any], Any], ...], data: Any) -> None:
    """Each decoder either accepts `data` or raises a ProtocolError with a documented code."""
    for decode in decoders:
        try:
            decode(data)
        except ProtocolError as exc:
            assert exc.code in P.ERROR_CODES


@given(client_messages)
def test_client_control_messages_round_trip(message: P.ClientControl) -> None:
    assert P.decode_client_control(P.encode_control(message)) == message


@given(server_messages)
def test_server_control_messages_round_trip(message: P.ServerControl) -> None:
    assert P.decode_server_control(P.encode_control(message)) == message


@given(st.binary(max_size=300) | st.text(max_size=300))
@settings(max_examples=300)
def test_garbage_text_raises_only_protocol_errors(garbage: bytes | str) -> None:
    assert_only_protocol_errors((P.decode_client_control, P.decode_server_control), garbage)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.mark.slow
@given(
    st.sampled_from(["hello", "controls", "clock", "end", "header", "ack", "stats", "error"]),
    st.dictionaries(
        st.sampled_from(
            [
                "protocol",
                "sample_rate_hz",
                "controls",
                "streams",
                "client_send_us",
                "values",
                "code",
                "message",
                "request_id",
                "session_id",
                "emotion",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
@settings(max_examples=400)
def test_well_formed_json_with_wrong_fields_raises_only_protocol_errors(kind: str, fields: dict) -> None:
    text = json.dumps({**fields, "type": kind})
    assert_only_protocol_errors((P.decode_client_control, P.decode_server_control), text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"type":"hello","protocol":2,"sample_rate_hz":16000}', "unsupported_version"),
        ('{"type":"hello","sample_rate_hz":16000}', "bad_message"),
        ('{"type":"hello","protocol":1,"sample_rate_hz":"16000"}', "bad_message"),
        ('{"type":"hello","protocol":1,"sample_rate_hz":16000,"streams":["tail"]}', "bad_message"),
        ('{"type":"hello","protocol":1,"sample_rate_hz":16000,"sample_format":"u8"}', "bad_message"),
        ('{"type":"controls","controls":{"emotion":"bored"}}', "bad_control"),
        ('{"type":"controls","controls":{"intensity":1.5}}', "bad_control"),
        ('{"type":"controls","controls":{"steps":true}}', "bad_control"),
        ('{"type":"controls","controls":{"face_strength":{"tail":1}}}', "bad_control"),
        ('{"type":"controls"}', "bad_message"),
        ('{"type":"dance"}', "bad_message"),
        ("[1,2]", "bad_message"),
        ("{not json", "bad_message"),
        ('{"type":"clock","client_send_us":1.5}', "bad_message"),
    ],
)
def test_malformed_client_messages_name_their_problem(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        P.decode_client_control(text)
    assert info.value.code == code
    assert P.error_message(info.value).code == code


def test_oversize_text_is_refused_before_parsing() -> None:
    text = json.dumps({"type": "hello", "client": "x" * P.MAX_TEXT_BYTES})
    with pytest.raises(ProtocolError, match="too_large"):
        P.decode_client_control(text)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    hello = P.decode_client_control('{"type":"hello","protocol":1,"sample_rate_hz":48000,"future":{"x":1}}')
    assert hello == P.Hello(sample_rate_hz=48000)


def test_controls_merge_keeps_unset_fields_and_merges_region_strengths() -> None:
    base = P.Controls(emotion="happy", intensity=0.5, face_strength={"lower": 1.0, "upper": 1.0})
    merged = base.merged(P.Controls(intensity=0.9, face_strength={"upper": 0.2}))
    assert merged == P.Controls(emotion="happy", intensity=0.9, face_strength={"lower": 1.0, "upper": 0.2})


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([np.int16, np.float32]),
    st.integers(0, P.MAX_AUDIO_SAMPLES),
)
@settings(max_examples=50)
def test_audio_chunks_round_trip(seq: int, start: int, capture: int, dtype: type, n: int) -> None:
    rng = np.random.default_rng(n)
    samples = (rng.uniform(-1, 1, n) * (32767 if dtype is np.int16 else 1)).astype(dtype)
    chunk = P.AudioChunk(seq, start, capture, samples)
    data = P.encode_audio(chunk)
    assert len(data) == P.AUDIO_HEADER.size + samples.nbytes
    back = P.decode_audio(data)
    assert (back.seq, back.start_sample, back.capture_time_us) == (seq, start, capture)
    assert back.samples.dtype == samples.dtype
    np.testing.assert_array_equal(back.samples, samples)


@given(
    st.sampled_from(P.STREAMS),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(width=32, allow_nan=False), max_size=300),
    st.integers(0, 3),
)
@settings(max_examples=50)
def test_frames_round_trip(stream, index, media, capture, send, dropped, values, flags) -> None:  # type: ignore[no-untyped-def]
    frame = P.Frame(stream, index, media, capture, send, dropped, np.array(values, np.float32), flags)
    back = P.decode_frame(P.encode_frame(frame))
    assert (back.stream, back.index, back.media_sample, back.capture_time_us) == (stream, index, media, capture)
    assert (back.send_time_us, back.dropped_before, back.flags) == (send, dropped, flags)
    np.testing.assert_array_equal(back.values, frame.values)


def test_binary_layout_matches_the_document() -> None:
    """Byte offsets as docs/protocol.md states them, checked by hand-packing."""
    samples = np.array([1, -2, 3], np.int16)
    data = P.encode_audio(P.AudioChunk(seq=7, start_sample=480, capture_time_us=-5, samples=samples))
    assert data[:4] == bytes([1, 1, 1, 0])
    assert struct.unpack_from("<I", data, 4) == (7,)
    assert struct.unpack_from("<Q", data, 8) == (480,)
    assert struct.unpack_from("<q", data, 16) == (-5,)
    assert data[24:] == b"\x01\x00\xfe\xff\x03\x00"
    frame = P.encode_frame(P.Frame("body", 2, 1600, 11, 12, 3, np.array([0.5], np.float32), P.FRAME_FLAG_FINAL))
    assert frame[:4] == bytes([2, 1, 1, 2])
    assert struct.unpack_from("<IQqqII", frame, 4) == (2, 1600, 11, 12, 3, 1)
    assert frame[40:] == struct.pack("<f", 0.5)


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_garbage_binary_raises_only_protocol_errors(garbage: bytes) -> None:
    assert_only_protocol_errors((P.decode_audio, P.decode_frame), garbage)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes([1, 1, 2, 0]) + bytes(20) + struct.pack("<f", float("nan")), "bad_audio"),
        (bytes([1, 1, 1, 0]) + bytes(20) + b"\x00", "bad_audio"),  # half a sample
        (bytes([1, 1, 9, 0]) + bytes(20), "bad_audio"),
        (bytes([1, 2, 1, 0]) + bytes(20), "unsupported_version"),
        (bytes([2, 1, 1, 0]) + bytes(20), "bad_message"),  # a frame sent as audio
        (bytes([1, 1, 1, 0]) + bytes(10), "bad_message"),
        (bytes([1, 1, 1, 0]) + bytes(20) + bytes(2 * (P.MAX_AUDIO_SAMPLES + 1)), "too_large"),
    ],
)
def test_bad_audio_messages_name_their_problem(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        P.decode_audio(data)
    assert info.value.code == code


def test_frame_media_sample_is_exact_integer_time() -> None:
    assert P.frame_media_sample(60, 48_000, 60) == 48_000
    assert P.frame_media_sample(1, 22_050, 60) == 367  # floor(367.5)
    assert P.frame_media_sample(3, 22_050, 60) == 1102
