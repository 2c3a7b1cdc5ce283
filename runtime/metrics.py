"""/metrics in Prometheus' text format, through prometheus_client: a collector that reads the counters the
inference loop and every I/O process keep in shared memory, so whichever I/O process answers reports
the whole server."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from emostream.runtime.audio_table import AudioTable
from emostream.runtime.shared_counters import SharedCounters

STREAMS = ("face", "body")
TICK_BUCKETS_MS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 33.0, 66.0)
# The inference loop's counters (one row).
LOOP_FIELDS = (
    "ticks", "frames_face", "frames_body", "voice_estimates", "tick_seconds", "step_seconds", "frontend_seconds",
    "heartbeat_s", "pid", "eager_fallbacks", "blocks_dropped", "commands_failed",
    *(f"tick_le_{bound}" for bound in TICK_BUCKETS_MS),
)  # fmt: skip
# One row per I/O process.
WORKER_FIELDS = (
    "sessions", "refused", "overloaded_chunks",
    *(f"{name}_{stream}" for name in ("frames_sent", "frames_dropped", "late_frames") for stream in STREAMS),
)  # fmt: skip


class ServerCollector(Collector):
    def __init__(self, loop: SharedCounters, workers: SharedCounters, audio: AudioTable) -> None:
        self.loop, self.workers, self.audio = loop, workers, audio

    def collect(self) -> Iterator[Metric]:
        w, loop = self.workers, self.loop
        yield GaugeMetricFamily("emostream_sessions", "Open sessions.", value=w.get("sessions"))
        yield GaugeMetricFamily("emostream_free_slots", "Session slots free for new sessions.",
                                value=self.audio.free_slots())  # fmt: skip
        yield GaugeMetricFamily("emostream_slots", "Sessions admitted at once.", value=self.audio.session_limit)
        yield CounterMetricFamily("emostream_sessions_refused", "Sessions refused (full, bad token, bad hello).",
                                  value=w.get("refused"))  # fmt: skip
        yield CounterMetricFamily("emostream_overloaded_chunks", "Audio chunks dropped because the loop was behind.",
                                  value=w.get("overloaded_chunks"))  # fmt: skip
        for name, help_text in (
            ("frames_sent", "Frames sent to clients."),
            ("frames_dropped", "Frames made but not sent: the client read too slowly, or they were lost."),
            ("late_frames", "Frames sent more than one frame period after their audio arrived."),
        ):
            family = CounterMetricFamily(f"emostream_{name}", help_text, labels=["stream"])
            for stream in STREAMS:
                family.add_metric([stream], w.get(f"{name}_{stream}"))
            yield family
        made = CounterMetricFamily("emostream_frames_made", "Frames the inference loop made.", labels=["stream"])
        for stream in STREAMS:
            made.add_metric([stream], loop.get(f"frames_{stream}"))
        yield made
        yield CounterMetricFamily("emostream_voice_emotion_steps", "Steps of the voice-emotion estimator (one per "
                                  "four 60 Hz frames of each session whose emotion follows the voice).",
                                  value=loop.get("voice_estimates"))  # fmt: skip
        for name, help_text in (
            ("step_seconds", "Time in the generators' batched steps."),
            ("frontend_seconds", "Time in the batched audio front-end."),
            ("eager_fallbacks", "Generators run eager because their engine was not built at start."),
            ("blocks_dropped", "Frame blocks dropped because an I/O process did not take them."),
            ("commands_failed", "Session commands the loop could not apply (the session was ended)."),
        ):
            yield CounterMetricFamily(f"emostream_{name}", help_text, value=loop.get(name))
        buckets = [(str(bound / 1000), loop.get(f"tick_le_{bound}")) for bound in TICK_BUCKETS_MS]
        buckets.append(("+Inf", loop.get("ticks")))
        yield HistogramMetricFamily("emostream_tick_seconds", "Duration of one tick of the inference loop.",
                                    buckets=buckets, sum_value=loop.get("tick_seconds"))  # fmt: skip


def render(collector: ServerCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
