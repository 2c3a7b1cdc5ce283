import threading
import time

import numpy as np
import torch

from emostream.runtime.inference import InferenceLoop, OutFrame
from emostream.runtime.models.face import FaceConfig, FaceNetwork
from emostream.runtime.stream import emotion_vector


def make_loop(**kwargs: object) -> tuple[InferenceLoop, list[OutFrame], threading.Event]:
    torch.manual_seed(0)
    network = FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval()
    received: list[OutFrame] = []
    got_all = threading.Event()

    def deliver(frames: list[OutFrame]) -> None:
        received.extend(frames)
        if len(received) >= 60:
            got_all.set()

    return InferenceLoop(network, max_sessions=4, deliver=deliver, **kwargs), received, got_all  # type: ignore[arg-type]


def test_a_backlog_is_worked_off_with_one_sampler_step_and_flagged() -> None:
    loop, received, got_all = make_loop(shed_after_frames=6)
    loop.start()
    try:
        loop.open("s", 16_000, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=7, steps=4)
        loop.audio("s", 0, 1_000, np.zeros(16_000, np.int16))  # one second at once: 60 frames behind
        loop.finish("s")
        assert got_all.wait(timeout=30)
    finally:
        loop.stop()
    indices = [f.index for f in received[:60]]
    assert indices == list(range(60))
    degraded = [f.degraded for f in received[:60]]
    assert degraded[0] and not degraded[-1]  # shed while behind, full steps once caught up
    assert loop.stats.shed_frames == sum(f.degraded for f in received)


def test_capture_stamps_follow_the_newest_audio_each_frame_used() -> None:
    loop, received, got_all = make_loop(shed_after_frames=1000)
    loop.start()
    try:
        loop.open("s", 16_000, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=0, steps=1)
        for k in range(50):  # 20 ms chunks, captured 20 ms apart from t = 1 s on
            loop.audio("s", 320 * k, 1_000_000 + 20_000 * k, np.zeros(320, np.int16))
        loop.finish("s")
        assert got_all.wait(timeout=30)
    finally:
        loop.stop()
    frame = next(f for f in received if f.index == 30)  # media time 0.5 s, lookahead 0
    # Its newest 24 kHz sample is number 11999 (just before 0.5 s), which sits at 16 kHz input sample
    # 7999.33; the resampler waits for its half width (16 samples at this rate) past input sample 7999.
    assert frame.capture_time_us == 1_000_000 + round((7999 + 16) * 1e6 / 16_000)


def test_a_failing_command_does_not_stop_the_loop() -> None:
    loop, received, got_all = make_loop()
    loop.start()
    try:
        loop.open("bad", 11_025, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=7, steps=2)  # raises inside
        loop.open("s", 16_000, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=7, steps=2)
        loop.audio("s", 0, 1_000, np.zeros(16_000, np.int16))
        loop.finish("s")
        assert got_all.wait(timeout=30)
    finally:
        loop.stop()
    assert "bad" not in loop.sessions and [f.index for f in received[:60]] == list(range(60))
    assert sum(slot is not None for slot in loop.groups[7].batcher.slots) == 1  # no slot leaked to "bad"


def test_the_silence_that_flushes_a_finished_session_is_not_counted_as_a_backlog() -> None:
    loop, received, got_all = make_loop(shed_after_frames=6)
    loop.start()
    try:
        loop.open("s", 16_000, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=7, steps=2)
        for k in range(50):  # 1 s in real time: never behind
            loop.audio("s", 320 * k, 1_000 + 20_000 * k, np.zeros(320, np.int16))
            time.sleep(0.02)
        loop.finish("s")  # its tail flush is 0.3 s of frames at once: more than 6
        assert got_all.wait(timeout=30)
    finally:
        loop.stop()
    assert [f.index for f in received[:60]] == list(range(60))
    assert loop.stats.shed_frames == 0 and not any(f.degraded for f in received)


def test_audio_that_waited_for_a_busy_loop_is_stepped_with_one_sampler_step() -> None:
    loop, received, got_all = make_loop(shed_after_frames=1000, shed_after_lag_ms=10.0)
    loop._on_stall = lambda: time.sleep(0.1)  # type: ignore[attr-defined]  # the thread busy for 100 ms
    loop.start()
    try:
        loop.open("s", 16_000, seed=0, emotion=emotion_vector("neutral", 1.0), lookahead=7, steps=2)
        # 20 ms chunks in real time, but the five after 0.4 s come at once while the thread is busy, as
        # after a network hiccup, so each waits about 100 ms. The loop reads the lag of the newest chunk it
        # handled, so a chunk that arrived just as the stall ended would hide the others' wait: none does.
        for k in range(50):
            if k == 20:
                loop.commands.put(("stall", ()))
            loop.audio("s", 320 * k, 1_000 + 20_000 * k, np.zeros(320, np.int16))
            if k == 24:
                time.sleep(0.15)  # past the stall's end
            elif not 20 <= k < 24:
                time.sleep(0.02)
        loop.finish("s")
        assert got_all.wait(timeout=30)
    finally:
        loop.stop()
    degraded = [f.degraded for f in received[:60]]
    assert not any(degraded[:20]) and any(degraded[20:40]) and not degraded[-1]
    assert loop.stats.shed_frames == sum(f.degraded for f in received)


def test_the_group_whose_frame_waited_longest_is_stepped_first() -> None:
    loop, _, _ = make_loop(shed_after_frames=1000)  # not started: the test runs the thread's methods itself
    neutral = emotion_vector("neutral", 1.0)
    for session, lookahead in (("waits for 58 ms of future audio", 7), ("waits for none", 0)):
        loop._on_open(session, 16_000, 0, neutral, lookahead, 1, None, True)
        loop._on_audio(session, 0, 1_000, 1_000, np.zeros(1_600, np.int16))  # 100 ms each
    stepped: list[int] = []
    step_group = loop._step_group
    loop._step_group = lambda key, group, by_slot: (stepped.append(key), step_group(key, group, by_slot))  # type: ignore[method-assign]
    loop._step_ready()
    # Both groups have a ready frame 0. The lookahead-0 group's frame needed audio up to 0 s, which came
    # in 100 ms ago; the other's needed audio up to 58 ms: the first is the more overdue, though its
    # group was made second.
    assert list(loop.groups) == [7, 0] and stepped[:2] == [0, 7]
