import numpy as np
import pytest

from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError
from emostream.runtime.session_protocol import Phase, ServerSessionProtocol

HELLO = P.encode_control(P.Hello(sample_rate_hz=16_000, sample_format="s16le"))


def audio(seq: int, start: int, n: int = 160, dtype: type = np.int16) -> bytes:
    return P.encode_audio(P.AudioChunk(seq, start, 1_000 + seq, np.zeros(n, dtype)))


def started() -> ServerSessionProtocol:
    session = ServerSessionProtocol()
    assert isinstance(session.receive_text(HELLO), P.Hello)
    return session


def test_a_normal_session_flows_from_hello_to_end() -> None:
    session = started()
    for seq in range(3):
        accepted = session.receive_binary(audio(seq, seq * 160))
        assert accepted.gap_samples == 0
    assert session.next_sample == 480
    update = session.receive_text(P.encode_control(P.ControlUpdate(P.Controls(emotion="sad"), request_id=4)))
    assert isinstance(update, P.ControlUpdate) and update.request_id == 4
    assert isinstance(session.receive_text(P.encode_control(P.EndRequest())), P.EndRequest)
    assert session.phase is Phase.ENDED


@pytest.mark.parametrize("first", [audio(0, 0), P.encode_control(P.ClockPing(5))])
def test_anything_before_hello_is_a_fatal_order_error(first: bytes | str) -> None:
    session = ServerSessionProtocol()
    with pytest.raises(ProtocolError) as info:
        session.receive_binary(first) if isinstance(first, bytes) else session.receive_text(first)
    assert info.value.code == "out_of_order" and info.value.fatal


def test_second_hello_rewind_repeat_and_wrong_format_are_refused_without_losing_the_session() -> None:
    session = started()
    session.receive_binary(audio(0, 0))
    for bad, code in [
        (lambda: session.receive_text(HELLO), "out_of_order"),
        (lambda: session.receive_binary(audio(0, 160)), "out_of_order"),  # seq repeated
        (lambda: session.receive_binary(audio(1, 100)), "out_of_order"),  # overlaps
        (lambda: session.receive_binary(audio(1, 160, dtype=np.float32)), "bad_audio"),
        (lambda: session.receive_binary(audio(1, 10**9)), "out_of_order"),  # absurd jump
    ]:
        with pytest.raises(ProtocolError) as info:
            bad()
        assert info.value.code == code and not info.value.fatal
    assert session.receive_binary(audio(1, 160)).gap_samples == 0  # the stream goes on where it was


def test_a_forward_gap_is_reported_for_silence_filling() -> None:
    session = started()
    session.receive_binary(audio(0, 0))
    assert session.receive_binary(audio(5, 400)).gap_samples == 240


def test_unsupported_rate_in_hello_is_fatal() -> None:
    session = ServerSessionProtocol()
    with pytest.raises(ProtocolError) as info:
        session.receive_text(P.encode_control(P.Hello(sample_rate_hz=11_025)))
    assert info.value.code == "bad_audio" and info.value.fatal


def test_messages_after_end_are_refused() -> None:
    session = started()
    session.receive_text(P.encode_control(P.EndRequest()))
    with pytest.raises(ProtocolError, match="after end"):
        session.receive_binary(audio(0, 0))
