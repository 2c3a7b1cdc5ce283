"""The loop-alone benchmark at toy size: every frame the simulated audio allows is made, and the server
clock never ticks sooner than the fixed one."""

import pytest

from emostream.benchmarks.inference_loop import measure


@pytest.mark.parametrize("clock", ["fixed", "server"])
def test_the_loop_benchmark_makes_every_frame_and_splits_the_tick(clock: str) -> None:
    # Under the server clock a tick longer than a frame (11 ms) falls behind at one round, which a loaded
    # 2-core CI machine did (28 ms ticks); four rounds let the loop catch up. On a slower day it was still
    # 14 frames a stream behind when the half second ended, so every frame from the streams' start is
    # counted, those still owed then included: the bookkeeping is checked here, the speed by the benchmark.
    rounds = 1 if clock == "fixed" else 4
    row = measure(4, 0.5, "eager", "cpu", 4.0, "compact", rounds=rounds, clock=clock)
    # All but the frames whose lookahead runs past the audio's end: 58 ms of face at 60 fps and 200 ms of
    # body at 30 fps, 9.5 a stream; give or take a frame a stream.
    assert abs(row["frames_expected_in_all"] - row["frames_in_all"] - 4 * 9.5) <= 4
    if clock == "fixed":  # which never falls behind: the window alone has its frames too
        assert abs(row["frames"] - row["frames_expected"]) <= 4 * 2  # a frame per stream either side of the ends
        assert row["frames_behind_at_end"] == 0
    assert row["interval_mean_ms"] >= 4.0 - 1e-9
    if clock == "fixed":
        assert row["interval_p99_ms"] == pytest.approx(4.0)
    parts = row["step_ms_per_tick"] + row["frontend_ms_per_tick"] + row["other_ms_per_tick"]
    assert parts == pytest.approx(row["tick_mean_ms"])
    assert 0 < row["step_ms_per_tick"] < row["tick_mean_ms"]


def test_with_the_voice_s_emotion_the_estimator_runs_and_is_timed() -> None:
    row = measure(4, 0.5, "eager", "cpu", 4.0, "compact", auto=True)
    assert abs(row["frames"] - row["frames_expected"]) <= 4 * 2  # estimate rows are not counted as frames
    assert 0 < row["voice_emotion_ms_per_tick"] < row["tick_mean_ms"]
