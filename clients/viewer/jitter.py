"""The viewer's frame jitter buffer and its playout clock.

Every frame carries the media time it stands for. Media time t was captured at wall time `origin + t` (the
source's clock), so a frame is `lateness = arrival - (origin + t)` behind its own audio. Playing media time
`now - origin - delay` with `delay` a little above the recent lateness keeps motion smooth under network
jitter; the same delay applied to the audio keeps mouth and sound in sync. The delay rises at once when a
frame comes later than it allows and decays slowly when the network calms down.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlayoutStats:
    delay_s: float
    frames_buffered: int
    underruns: int  # samples asked for a media time no frame had reached yet (the last frame was held)
    late_frames: int  # frames that arrived after their playout time (dropped from smooth playback)


class JitterBuffer:
    """Thread-safe: a network thread pushes, the render thread samples."""

    def __init__(
        self,
        min_delay_s: float = 0.02,
        max_delay_s: float = 1.0,
        margin_s: float = 0.008,
        window: int = 240,
        decay_per_s: float = 0.05,
    ) -> None:
        self.min_delay_s, self.max_delay_s, self.margin_s = min_delay_s, max_delay_s, margin_s
        self.decay_per_s = decay_per_s
        self._lateness: deque[float] = deque(maxlen=window)
        self._times: list[float] = []
        self._values: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.origin_s: float | None = None  # wall time at which media time 0 was captured
        self.delay_s = min_delay_s
        self._last_sample_wall: float | None = None
        self.underruns = 0
        self.late_frames = 0

    def push(self, media_time_s: float, values: np.ndarray, arrival_s: float, captured_s: float | None) -> None:
        """A frame arrived. `captured_s` is when its media time was captured (wall clock), if known."""
        with self._lock:
            if self.origin_s is None:
                self.origin_s = (captured_s if captured_s is not None else arrival_s) - media_time_s
            lateness = arrival_s - (self.origin_s + media_time_s)
            self._lateness.append(lateness)
            needed = float(np.percentile(self._lateness, 95)) + self.margin_s
            if needed > self.delay_s:
                self.delay_s = min(needed, self.max_delay_s)
            if self._last_sample_wall is not None and arrival_s > self._playout_wall(media_time_s):
                self.late_frames += 1
            k = bisect.bisect(self._times, media_time_s)
            self._times.insert(k, media_time_s)
            self._values.insert(k, np.asarray(values, np.float32))
            # Bounded: keep two seconds behind the newest frame.
            cut = bisect.bisect(self._times, self._times[-1] - 2.0)
            del self._times[:cut], self._values[:cut]

    def _playout_wall(self, media_time_s: float) -> float:
        assert self.origin_s is not None
        return self.origin_s + media_time_s + self.delay_s

    def media_time(self, now_s: float) -> float | None:
        """The media time to present at wall time `now_s`, or None before the first frame."""
        with self._lock:
            return None if self.origin_s is None else now_s - self.origin_s - self.delay_s

    def sample(self, now_s: float, at_least_s: float = 0.0) -> np.ndarray | None:
        """The frame for wall time `now_s`, interpolated between the two frames around its media time.
        `at_least_s` holds playout back further, so that two streams (face and body, whose frames wait for
        different lookaheads) play in sync at the larger of their delays."""
        with self._lock:
            if self.origin_s is None or not self._times:
                return None
            if self._last_sample_wall is not None:
                # Let the delay creep back down while frames keep arriving in time.
                elapsed = max(0.0, now_s - self._last_sample_wall)
                floor = max(self.min_delay_s, float(np.percentile(self._lateness, 95)) + self.margin_s)
                self.delay_s = max(floor, self.delay_s - self.decay_per_s * elapsed)
            self._last_sample_wall = now_s
            t = now_s - self.origin_s - max(self.delay_s, at_least_s)
            k = bisect.bisect(self._times, t)
            if k == 0:
                return self._values[0]
            if k == len(self._times):
                if t > self._times[-1] + 1e-6:
                    self.underruns += 1
                return self._values[-1]
            t0, t1 = self._times[k - 1], self._times[k]
            a = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return (1 - a) * self._values[k - 1] + a * self._values[k]

    def stats(self) -> PlayoutStats:
        with self._lock:
            return PlayoutStats(self.delay_s, len(self._times), self.underruns, self.late_frames)
