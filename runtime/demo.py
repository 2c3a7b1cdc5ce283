"""`emostream demo` as far as the pipeline reaches today: the bundled speech sample streamed in real time
through the wire codec and the session state machine into the streaming front-end and the face
generator, with the emotion changing during the take.

It writes to the output folder: face.npz and face.csv (the `emostream animate` layouts), face.png (mouth,
blink and emotion curves over time), logmel.png, and latency.json with p50/p95/p99 from the moment a
sample is "captured" on the paced clock to the moment the face frame that used it exists.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from clients.audio_files import chunks, to_int16
from runtime import protocol as P
from runtime.animate import DEFAULT_LOOKAHEAD_MS, DEFAULT_STEPS, Animation, load_speech, write_animation
from runtime.audio import HOP_LENGTH, MODEL_SAMPLE_RATE_HZ, LogMelFrontEnd
from runtime.face_stream import FaceStream, emotion_vector
from runtime.models.face import FaceGenerator, load_checkpoint, lookahead_from_ms
from runtime.rigs import FACE_CHANNELS, FACE_FPS
from runtime.session_protocol import ServerSessionProtocol

CHUNK_MS = 20.0  # what a microphone callback typically delivers
# (fraction of the take, emotion, intensity): the emotion control changes live during the demo.
EMOTION_SCRIPT = ((0.0, "neutral", 1.0), (0.25, "happy", 0.9), (0.5, "sad", 0.9), (0.75, "surprised", 0.9))
TRANSITION_MS = 400.0


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


def run_demo(
    out_dir: Path, audio_path: Path | None = None, realtime: bool = True, checkpoint: Path | None = None
) -> DemoResult:
    """Streams the audio chunk by chunk; with `realtime` each chunk is handed over when its last sample
    would have been captured, so the measured latencies are what a live microphone would see."""
    from runtime.animate import default_face_checkpoint

    samples, rate = load_speech(audio_path or bundled_speech())
    pcm16 = to_int16(samples)
    session = ServerSessionProtocol()
    session.receive_text(P.encode_control(P.Hello(sample_rate_hz=rate, sample_format="s16le", client="demo")))
    network, _ = load_checkpoint(checkpoint or default_face_checkpoint())
    generator = FaceGenerator(network, lookahead_from_ms(DEFAULT_LOOKAHEAD_MS), DEFAULT_STEPS).eval()
    stream = FaceStream(generator, rate, seed=0)
    frames: list[np.ndarray] = []
    latency_ms: list[float] = []
    compute_ms: list[float] = []
    script = list(EMOTION_SCRIPT)
    t0 = time.perf_counter()
    for seq, (start, chunk) in enumerate(chunks(pcm16, rate, CHUNK_MS)):
        if script and start >= script[0][0] * pcm16.size:
            _, emotion, intensity = script.pop(0)
            stream.set_emotion(emotion_vector(emotion, intensity), TRANSITION_MS)
        captured_end = t0 + (start + chunk.size) / rate
        if realtime:
            time.sleep(max(0.0, captured_end - time.perf_counter()))
        began = time.perf_counter()
        accepted = session.receive_binary(P.encode_audio(P.AudioChunk(seq, start, int(captured_end * 1e6), chunk)))
        new_frames = stream.push(accepted.chunk.samples)
        done = time.perf_counter()
        compute_ms.append((done - began) * 1e3)
        first = sum(f.shape[0] for f in frames)
        for k in range(first, first + new_frames.shape[0]):
            latency_ms.append((done - (t0 + k / FACE_FPS)) * 1e3)  # frame k stands for media time k / 60 s
        frames.append(new_frames)
    frames.append(stream.finish())
    face = np.concatenate(frames)

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model": "face.pt", "lookahead_ms": round(generator.lookahead_ms, 2), "steps": DEFAULT_STEPS,
            "emotion_script": EMOTION_SCRIPT, "seed": 0, "chunk_ms": CHUNK_MS}  # fmt: skip
    animation = Animation(face, FACE_FPS, meta)
    write_animation(animation, out_dir / "face.npz")
    write_animation(animation, out_dir / "face.csv")
    summary: dict[str, Any] = {
        "audio_seconds": samples.size / rate,
        "input_rate_hz": float(rate),
        "chunk_ms": CHUNK_MS,
        "face_fps": FACE_FPS,
        "lookahead_ms": generator.lookahead_ms,
        "algorithmic_latency_ms": generator.lookahead_ms + CHUNK_MS,
        "realtime": float(realtime),
        "capture_to_face_frame": percentiles(latency_ms) if realtime else {},
        "compute_per_chunk": percentiles(compute_ms),
    }
    (out_dir / "latency.json").write_text(json.dumps(summary, indent=2))
    # The plot's spectrogram: one offline pass, which equals what the stream computed chunk by chunk.
    plot_demo(LogMelFrontEnd(rate).offline(pcm16), samples, rate, face, out_dir)
    return DemoResult(out_dir, int(face.shape[0]), summary)


def plot_demo(features: np.ndarray, samples: np.ndarray, rate: int, face: np.ndarray, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ch = {n: i for i, n in enumerate(FACE_CHANNELS)}
    seconds = samples.size / rate
    fig, (wave_ax, mel_ax, mouth_ax, upper_ax) = plt.subplots(
        4, 1, figsize=(12, 8), sharex=True, height_ratios=[1, 1.5, 1.5, 1.5]
    )
    wave_ax.plot(np.arange(samples.size) / rate, samples, linewidth=0.4)
    wave_ax.set_ylabel("speech")
    mel_seconds = features.shape[0] * HOP_LENGTH / MODEL_SAMPLE_RATE_HZ
    mel_ax.imshow(features.T, origin="lower", aspect="auto", extent=(0, mel_seconds, 0, features.shape[1]))
    mel_ax.set_ylabel("log-mel band")
    t = np.arange(face.shape[0]) / FACE_FPS
    for name in ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker"):
        mouth_ax.plot(t, face[:, ch[name]], linewidth=0.9, label=name)
    mouth_ax.set_ylabel("mouth")
    mouth_ax.legend(fontsize=7, loc="upper right", ncol=4)
    for name in ("eyeBlinkLeft", "browInnerUp", "mouthSmileLeft", "mouthFrownLeft", "eyeWideLeft"):
        upper_ax.plot(t, face[:, ch[name]], linewidth=0.9, label=name)
    for fraction, emotion, _ in EMOTION_SCRIPT:
        upper_ax.axvline(fraction * seconds, color="gray", linestyle=":")
        upper_ax.text(fraction * seconds + 0.05, 0.95, emotion, fontsize=8, va="top")
    upper_ax.set_ylim(0, 1)
    upper_ax.set_ylabel("emotion, blinks")
    upper_ax.set_xlabel("media time (s)")
    upper_ax.legend(fontsize=7, loc="upper right", ncol=5)
    fig.suptitle("emostream demo: streamed speech -> face (60 fps), emotion changed live")
    fig.tight_layout()
    fig.savefig(out_dir / "face.png", dpi=90)
    plt.close(fig)
