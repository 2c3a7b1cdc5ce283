"""The Sans-I/O session core, without sockets or clocks: every decision the server makes for one session."""

from __future__ import annotations

import numpy as np
import pytest

from emostream.runtime import protocol as P
from emostream.runtime.messages import CloseSlot, Command, ControlSlot, OpenSlot
from emostream.runtime.session_core import Phase, ServerOffer, SessionCore, SessionTimers

RATE = 16_000
STYLES = {"ada": np.zeros(4, np.float32), "ben": np.ones(4, np.float32)}


class FakeAudio:
    def __init__(self, free: int = 1, room: bool = True) -> None:
        self.free, self.room = free, room
        self.writes: list[tuple[int, int]] = []  # (start, n)
        self.silence = 0
        self.closing: list[int] = []

    def claim(self, worker: int) -> tuple[int, int] | None:
        if self.free == 0:
            return None
        self.free -= 1
        return 3, 7

    def mark_closing(self, slot: int) -> None:
        self.closing.append(slot)

    def write(self, slot: int, start: int, samples: np.ndarray, capture_us: int, received_us: int) -> bool:
        if self.room:
            self.writes.append((start, samples.size))
        return self.room

    def append_silence(self, slot: int, n: int) -> bool:
        self.silence += n
        return True


class FakeCommands:
    def __init__(self) -> None:
        self.sent: list[Command] = []

    def send(self, command: Command) -> None:
        self.sent.append(command)


def core(token: str | None = None, audio: FakeAudio | None = None, voice: bool = False, **timers: float) -> SessionCore:
    offer = ServerOffer(("face", "body"), STYLES, 200.0, token, voice_emotion=voice)
    return SessionCore(offer, audio or FakeAudio(), FakeCommands(), "abc", 0, SessionTimers(**timers))  # type: ignore[arg-type]


def drain(session: SessionCore, now_us: int = 0) -> list[P.ServerControl | P.Frame]:
    out: list[P.ServerControl | P.Frame] = []
    while (message := session.next_message(now_us)) is not None:
        out.append(P.decode_frame(message) if isinstance(message, bytes) else P.decode_server_control(message))
    return out


def hello(session: SessionCore, **fields: object) -> P.Header:
    session.receive(P.encode_control(P.Hello(RATE, **fields)), 0)  # type: ignore[arg-type]
    (header,) = drain(session)
    assert isinstance(header, P.Header)
    return header


def audio(seq: int, start: int, samples: np.ndarray) -> bytes:
    return P.encode_audio(P.AudioChunk(seq, start, 123, samples))


def errors(session: SessionCore) -> list[tuple[str, bool]]:
    return [(m.code, m.fatal) for m in drain(session) if isinstance(m, P.Error)]


def test_hello_opens_a_slot_and_the_header_states_streams_and_latency() -> None:
    session = core()
    header = hello(session, streams=("face", "body"), controls=P.Controls(style="ben", seed=4))
    assert header.streams["face"].fps == 60 and header.streams["body"].fps == 30
    assert header.algorithmic_latency_ms == pytest.approx(58.33 + 1.0, abs=0.01)
    (opened,) = session.commands.sent  # type: ignore[attr-defined]
    assert isinstance(opened, OpenSlot) and (opened.slot, opened.generation) == (3, 7)
    assert opened.settings.seed == 4 and opened.settings.face_lookahead == 7
    assert np.array_equal(opened.settings.style, STYLES["ben"])


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [
        (audio(0, 0, np.zeros(320, np.int16)), "out_of_order", 1008),
        (P.encode_control(P.EndRequest()), "out_of_order", 1008),
        (P.encode_control(P.Hello(12_345)), "bad_audio", 1003),
        (P.encode_control(P.Hello(RATE, controls=P.Controls(style="zed"))), "bad_control", 1008),
        (P.encode_control(P.Hello(RATE, token="wrong")), "unauthorized", 1008),
    ],
)
def test_a_bad_start_is_refused_with_its_code_and_closed(first: bytes | str, code: str, close: int) -> None:
    session = core(token=None if code != "unauthorized" else "secret")
    session.receive(first, 0)
    assert errors(session) == [(code, True)]
    assert session.close_code is not None and session.close_code[0] == close
    assert session.phase is Phase.CLOSED and session.commands.sent == []  # type: ignore[attr-defined]


def test_a_full_server_refuses_with_server_full() -> None:
    session = core(audio=FakeAudio(free=0))
    session.receive(P.encode_control(P.Hello(RATE)), 0)
    assert errors(session) == [("server_full", True)] and session.close_code == (1013, session.close_code[1])


def test_every_bad_chunk_gets_bad_audio_or_out_of_order_and_the_session_goes_on() -> None:
    session = core(audio=FakeAudio())
    hello(session, sample_format="f32le")
    good = np.zeros(320, np.float32)
    loud = np.full(320, 3.0, np.float32)  # int16 values sent as float: a bad_audio, not an internal error
    nan = np.full(320, np.nan, np.float32)
    session.receive(audio(0, 0, good), 0)
    session.receive(audio(1, 320, loud), 0)
    session.receive(P.encode_audio(P.AudioChunk(2, 640, 0, np.zeros(320, np.float32)))[:-2] + b"\x00", 0)
    session.receive(audio(3, 640, nan), 0)
    session.receive(audio(4, 640, np.zeros(320, np.int16)), 0)  # the wrong format
    session.receive(audio(5, 640, good), 0)  # accepted: the dropped chunks before it are heard as silence
    session.receive(audio(5, 960, good), 0)  # seq did not increase
    session.receive(audio(6, 100, good), 0)  # overlaps what came before
    session.receive(audio(7, 960 + 48_001, good), 0)  # a gap over a second
    session.receive(audio(8, 960, good), 0)
    codes = errors(session)
    assert codes == [("bad_audio", False)] * 4 + [("out_of_order", False)] * 3
    assert session.audio.writes == [(0, 320), (640, 320), (960, 320)]  # type: ignore[attr-defined]
    assert session.phase is Phase.STREAMING and session.samples == 1280


def test_a_refused_control_update_changes_nothing() -> None:
    session = core()
    hello(session)
    sent = len(session.commands.sent)  # type: ignore[attr-defined]
    before = session.controls
    session.receive(P.encode_control(P.ControlUpdate(P.Controls(emotion="angry", steps=4, style="zed"), 5)), 0)
    assert errors(session) == [("bad_control", False)]
    assert session.controls == before and len(session.commands.sent) == sent  # type: ignore[attr-defined]
    session.receive(P.encode_control(P.ControlUpdate(P.Controls(lookahead_ms=0, emotion="sad"), 6)), 0)
    assert errors(session) == [("bad_control", False)] and session.controls == before


def test_an_accepted_update_is_applied_whole_from_the_audio_received_and_acknowledged() -> None:
    session = core()
    hello(session)
    session.receive(audio(0, 0, np.zeros(8000, np.int16)), 0)
    session.receive(P.encode_control(P.ControlUpdate(P.Controls(emotion="sad", style="ben", steps=3,
                                                                face_strength={"head": 0.0}), 9)), 0)  # fmt: skip
    (ack,) = drain(session)
    assert isinstance(ack, P.Ack) and ack.request_id == 9 and ack.from_sample == 8000
    assert ack.controls.emotion == "sad" and ack.controls.face_strength == {"lower": 1.0, "upper": 1.0, "head": 0.0,
                                                                              "eyes": 1.0}  # fmt: skip
    control = session.commands.sent[-1]  # type: ignore[attr-defined]
    assert isinstance(control, ControlSlot) and control.from_sample == 8000
    change = control.change
    assert change.steps == 3 and np.array_equal(change.style, STYLES["ben"]) and change.emotion is not None
    assert change.emotion[P.EMOTIONS.index("sad")] == 1.0 and change.face_gains is not None
    assert change.face_gains.min() == 0.0


def test_emotion_from_the_voice_is_asked_for_mixed_and_reported() -> None:
    refusing = core()
    hello(refusing)
    before = refusing.controls
    refusing.receive(P.encode_control(P.ControlUpdate(P.Controls(emotion="auto"), 1)), 0)
    assert errors(refusing) == [("bad_control", False)] and refusing.controls == before  # no estimator here
    asking = core()  # asked for in hello: the session is refused
    asking.receive(P.encode_control(P.Hello(RATE, controls=P.Controls(auto_weight=0.5))), 0)
    assert errors(asking) == [("bad_control", True)] and asking.slot == -1

    session = core(voice=True)
    hello(session, controls=P.Controls(emotion="auto", intensity=0.8))
    (opened,) = session.commands.sent  # type: ignore[attr-defined]
    assert isinstance(opened, OpenSlot) and opened.settings.auto_emotion == pytest.approx(0.8)
    assert not opened.settings.emotion.any()  # "auto": the voice alone
    session.receive(P.encode_control(P.ControlUpdate(P.Controls(emotion="happy", auto_weight=0.25), 2)), 0)
    (ack,) = drain(session)
    assert isinstance(ack, P.Ack) and ack.controls.auto_weight == 0.25
    change = session.commands.sent[-1].change  # type: ignore[attr-defined]
    assert change.auto_emotion == pytest.approx(0.2)
    happy = change.emotion[P.EMOTIONS.index("happy")]
    assert happy == pytest.approx(0.6) and change.emotion.sum() == pytest.approx(0.6)
    estimate = np.array([0.1, 0, 0, 0, 0, 0, 0.9, 0, 0.7, -0.4], np.float32)
    assert session.frame("voice_emotion", 40, estimate, 0, 0, False) is False  # reported, not sent as a frame
    stats = session.stats()
    assert stats["voice.angry"] == pytest.approx(0.9) and stats["voice.arousal"] == pytest.approx(0.7)
    assert stats["voice.valence"] == pytest.approx(-0.4) and "frames_sent.voice_emotion" not in stats


def feed(session: SessionCore, stream: str, indices: range, congested: bool = False) -> None:
    for k in indices:
        session.frame(stream, k, np.full(3, k, np.float32), 10 + k, 0, congested)


def test_a_client_that_keeps_up_gets_every_frame_in_order_with_exact_counts() -> None:
    session = core()
    hello(session)
    feed(session, "face", range(30))
    feed(session, "body", range(15))
    frames = [m for m in drain(session) if isinstance(m, P.Frame)]
    assert [f.index for f in frames if f.stream == "face"] == list(range(30))
    assert [f.index for f in frames if f.stream == "body"] == list(range(15))
    assert all(f.dropped_before == 0 for f in frames)
    assert session.stats()["frames_sent.face"] == 30 and session.stats()["frames_dropped.face"] == 0


@pytest.mark.parametrize("outbox", [1, 3])
def test_a_congested_client_gets_the_newest_frames_and_drops_are_counted_per_stream(outbox: int) -> None:
    session = core(outbox_frames=outbox)
    hello(session)
    feed(session, "face", range(20), congested=True)
    feed(session, "body", range(10), congested=True)
    frames = [m for m in drain(session) if isinstance(m, P.Frame)]
    face = [f for f in frames if f.stream == "face"]
    body = [f for f in frames if f.stream == "body"]
    assert [f.index for f in face] == list(range(20 - outbox, 20))
    assert [f.index for f in body] == list(range(10 - outbox, 10))
    assert face[0].dropped_before == 20 - outbox and body[0].dropped_before == 10 - outbox  # each its own stream's
    for stream, produced in (("face", 20), ("body", 10)):
        stats = session.stats()
        assert stats[f"frames_sent.{stream}"] + stats[f"frames_dropped.{stream}"] == produced


def test_frames_that_never_arrived_count_as_dropped() -> None:
    session = core()
    hello(session)
    feed(session, "face", range(5))
    feed(session, "face", range(9, 12))  # 5..8 were lost on the way
    frames = [m for m in drain(session) if isinstance(m, P.Frame)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 9, 10, 11] and frames[5].dropped_before == 4
    assert session.stats()["frames_sent.face"] + session.stats()["frames_dropped.face"] == 12


def test_the_end_flushes_each_stream_to_a_final_frame_then_ends_and_closes() -> None:
    session = core()
    hello(session)
    session.receive(audio(0, 0, np.zeros(RATE // 2, np.int16)), 0)  # 30 face and 15 body frames
    session.receive(P.encode_control(P.EndRequest()), 0)
    assert session.audio.silence > 0.2 * RATE  # type: ignore[attr-defined]
    feed(session, "face", range(40))  # the silence after the end makes frames that are not sent
    feed(session, "body", range(20))
    messages = drain(session)
    frames = [m for m in messages if isinstance(m, P.Frame)]
    assert [f.index for f in frames if f.stream == "face"] == list(range(30))
    finals = [f for f in frames if f.flags & P.FRAME_FLAG_FINAL]
    assert [(f.stream, f.index) for f in finals] == [("face", 29), ("body", 14)]
    assert isinstance(messages[-1], P.EndOfSession) and session.close_code == (1000, "session ended")
    assert isinstance(session.commands.sent[-1], CloseSlot)  # type: ignore[attr-defined]
    assert session.audio.closing == [3]  # type: ignore[attr-defined]  # its place is free at once


def test_a_full_ring_answers_overloaded_and_the_chunk_is_heard_as_silence() -> None:
    session = core(audio=FakeAudio(room=False))
    hello(session)
    session.receive(audio(0, 0, np.zeros(320, np.int16)), 0)
    assert errors(session) == [("overloaded", False)] and session.samples == 0
    assert session.stats()["overloaded_chunks"] == 1


def test_timers_send_stats_and_close_an_idle_session() -> None:
    session = core(stats_interval_s=0.5, idle_timeout_s=2.0)
    hello(session)
    session.poll(600_000)
    assert [type(m) for m in drain(session)] == [P.Stats]
    session.receive(P.encode_control(P.ClockPing(5)), 1_500_000)
    assert [type(m) for m in drain(session)] == [P.ClockPong]
    session.poll(3_000_000)
    assert [type(m) for m in drain(session)] == [P.Stats]  # 1.5 s since the ping: not idle yet
    session.poll(3_600_000)
    assert errors(session) == [("idle_timeout", True)] and session.close_code is not None


def test_a_session_closes_even_where_the_shared_table_cannot_be_told() -> None:
    from emostream.runtime.errors import SharedStateError

    audio = FakeAudio()
    session = core(audio=audio)
    hello(session)

    def died_holding_the_lock(slot: int) -> None:
        raise SharedStateError("a lock shared with another server process was not released in 1.0 s")

    audio.mark_closing = died_holding_the_lock  # type: ignore[method-assign]
    with pytest.raises(SharedStateError):
        session.fail("internal", "the inference process died")
    assert session.phase is Phase.CLOSED and session.close_code is not None
    session.fail("shutting_down", "the server is stopping")  # a second end leaves the table alone: no error
