from __future__ import annotations

import numpy as np
import pytest

from emostream.clients.viewer.jitter import JitterBuffer

FPS = 60.0


def _feed(buffer: JitterBuffer, lateness_s: np.ndarray, origin: float = 1000.0) -> None:
    for k, late in enumerate(lateness_s):
        t = k / FPS
        buffer.push(t, np.array([t], np.float32), origin + t + late, origin + t)


def test_delay_covers_the_network_jitter_and_playback_is_smooth() -> None:
    rng = np.random.default_rng(0)
    lateness = 0.015 + rng.exponential(0.006, 300)  # 15 ms base, a jittery tail
    buffer = JitterBuffer(margin_s=0.005, window=240, decay_per_s=0.05)
    for k, late in enumerate(lateness):  # frames arrive while the window keeps drawing
        t = k / FPS
        buffer.push(t, np.array([t], np.float32), 1000.0 + t + late, 1000.0 + t)
        buffer.sample(1000.0 + t + late)
    expected = np.percentile(lateness[-240:], 95) + 0.005
    assert buffer.delay_s == pytest.approx(expected, abs=0.004)
    # Sampling on the playout clock gives the media time it stands for, interpolated between frames.
    now = 1000.0 + 4.5 + buffer.delay_s
    value = buffer.sample(now)
    assert value is not None and value[0] == pytest.approx(4.5, abs=1e-3)
    assert buffer.media_time(now) == pytest.approx(4.5, abs=1e-3)


def test_a_late_burst_raises_the_delay_at_once_and_it_decays_slowly() -> None:
    buffer = JitterBuffer(margin_s=0.0, window=60, decay_per_s=0.05)
    lateness = np.full(200, 0.02)
    lateness[100:110] = 0.2  # a network stall
    _feed(buffer, lateness[:110])
    assert buffer.delay_s == pytest.approx(0.2, abs=1e-3)
    _feed_from = 110
    for k in range(_feed_from, 200):
        t = k / FPS
        buffer.push(t, np.array([t], np.float32), 1000.0 + t + 0.02, 1000.0 + t)
        buffer.sample(1000.0 + t + 0.03)
    # 90 frames of calm (1.5 s at 60 fps): 75 ms of decay, but never below what the window still holds.
    assert 0.02 <= buffer.delay_s < 0.2


def test_underrun_holds_the_last_frame_and_is_counted() -> None:
    buffer = JitterBuffer()
    _feed(buffer, np.full(10, 0.01))
    last = buffer.sample(1000.0 + 5.0)
    assert last is not None and last[0] == pytest.approx(9 / FPS)
    assert buffer.stats().underruns == 1


def test_memory_is_bounded_to_two_seconds_of_frames() -> None:
    buffer = JitterBuffer()
    _feed(buffer, np.full(1000, 0.01))
    assert buffer.stats().frames_buffered <= int(2.0 * FPS) + 2


def test_display_is_not_claimed_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from emostream.clients.viewer.window import display_available

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
