"""`emostream demo` as far as the pipeline reaches today: a bundled speech file streamed in real time
through the wire codec and the session state machine into the streaming log-mel front-end.

It writes features.npz, a spectrogram plot and a latency summary (p50/p95/p99 from the moment a sample
is "captured" on the paced clock to the moment the feature frame holding it exists) to the output folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from clients.audio_files import chunks, read_audio
from runtime import protocol as P
from runtime.audio import HOP_LENGTH, MODEL_SAMPLE_RATE_HZ, LogMelFrontEnd
from runtime.session_protocol import ServerSessionProtocol

CHUNK_MS = 20.0  # what a microphone callback typically delivers


def bundled_speech() -> Path:
    """The speech sample that ships with the package (espeak-ng, 16 kHz mono)."""
    return Path(str(resources.files("runtime") / "assets" / "speech_sample.wav"))


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    n_frames: int
    summary: dict[str, Any]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "count": float(a.size),
    }


def run_demo(out_dir: Path, audio_path: Path | None = None, realtime: bool = True) -> DemoResult:
    """Streams the audio chunk by chunk; with `realtime` each chunk is sent when its last sample would
    have been captured, so the measured latencies are what a live microphone would see."""
    samples, rate = read_audio(audio_path or bundled_speech())
    pcm16 = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    session = ServerSessionProtocol()
    session.receive_text(P.encode_control(P.Hello(sample_rate_hz=rate, sample_format="s16le", client="demo")))
    front_end = LogMelFrontEnd(rate)
    state = front_end.init_state()
    frames: list[np.ndarray] = []
    latency_ms: list[float] = []
    compute_ms: list[float] = []
    t0 = time.perf_counter()
    for seq, (start, chunk) in enumerate(chunks(pcm16, rate, CHUNK_MS)):
        captured_end = t0 + (start + chunk.size) / rate
        if realtime:
            time.sleep(max(0.0, captured_end - time.perf_counter()))
        began = time.perf_counter()
        message = P.encode_audio(P.AudioChunk(seq, start, int(captured_end * 1e6), chunk))
        accepted = session.receive_binary(message)
        new, state = front_end.push(state, accepted.chunk.samples)
        done = time.perf_counter()
        compute_ms.append((done - began) * 1e3)
        first = state.n_frames - new.shape[0]
        for media_s in front_end.frame_times_s(first, new.shape[0]):
            latency_ms.append((done - (t0 + media_s)) * 1e3)
        frames.append(new)
    tail, state = front_end.flush(state)
    features = np.concatenate(frames + [tail])

    out_dir.mkdir(parents=True, exist_ok=True)
    times_s = front_end.frame_times_s(0, features.shape[0])
    np.savez(out_dir / "features.npz", logmel=features, time=times_s, sample_rate_hz=rate)
    summary: dict[str, Any] = {
        "audio_seconds": samples.size / rate,
        "input_rate_hz": float(rate),
        "chunk_ms": CHUNK_MS,
        "feature_fps": MODEL_SAMPLE_RATE_HZ / HOP_LENGTH,
        "resampler_delay_ms": front_end.resampler_delay_s * 1e3,
        "realtime": float(realtime),
        "capture_to_feature": percentiles(latency_ms) if realtime else {},
        "compute_per_chunk": percentiles(compute_ms),
    }
    (out_dir / "latency.json").write_text(json.dumps(summary, indent=2))
    plot_features(features, samples, rate, out_dir / "logmel.png")
    return DemoResult(out_dir, int(features.shape[0]), summary)


def plot_features(features: np.ndarray, samples: np.ndarray, rate: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wave_ax, mel_ax) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=[1, 2])
    wave_ax.plot(np.arange(samples.size) / rate, samples, linewidth=0.4)
    wave_ax.set_ylabel("waveform")
    seconds = features.shape[0] * HOP_LENGTH / MODEL_SAMPLE_RATE_HZ
    mel_ax.imshow(features.T, origin="lower", aspect="auto", extent=(0, seconds, 0, features.shape[1]))
    mel_ax.set_ylabel("mel band")
    mel_ax.set_xlabel("media time (s)")
    fig.suptitle("streamed log-mel features (chunked, causal)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
