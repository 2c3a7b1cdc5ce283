"""`emostream animate`: a speech file through the streaming path, chunk by chunk, to a face animation file.

The same FaceStream the server runs per session is fed 20 ms chunks; nothing here looks ahead further
than the model's lookahead. Output formats: .npz, .json, and .csv in Live Link Face column order.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from clients.audio_files import chunks, read_audio
from runtime.audio import SUPPORTED_RATES_HZ, Resampler
from runtime.errors import ConfigError
from runtime.face_stream import FaceStream, emotion_vector
from runtime.models.face import FaceGenerator, load_checkpoint, lookahead_from_ms
from runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, FACE_FPS
from runtime.step import StepRunner

CHUNK_MS = 20.0
DEFAULT_LOOKAHEAD_MS = 60.0  # rounds to 58.3 ms: 7 feature frames
DEFAULT_STEPS = 2


def default_face_checkpoint() -> Path:
    return Path(str(resources.files("runtime") / "assets" / "face.pt"))


@dataclass(frozen=True)
class Animation:
    face: np.ndarray  # float32 (T, 59) in FACE_CHANNELS order
    fps: int
    meta: dict[str, Any]

    @property
    def time(self) -> np.ndarray:
        """Media time in seconds of each frame."""
        return np.arange(self.face.shape[0]) / self.fps


def load_speech(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 audio at a rate the front-end takes; other rates are converted to the next one up."""
    samples, rate = read_audio(path, require_supported_rate=False)
    if rate in SUPPORTED_RATES_HZ:
        return samples, rate
    target = min((r for r in SUPPORTED_RATES_HZ if r >= rate), default=SUPPORTED_RATES_HZ[-1])
    converted = Resampler(rate, target).offline(samples)
    return np.clip(converted, -1, 1).astype(np.float32), target


def animate(
    audio_path: Path,
    checkpoint: Path | None = None,
    emotion: str = "neutral",
    intensity: float = 1.0,
    seed: int = 0,
    lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
    steps: int = DEFAULT_STEPS,
    backend: str = "eager",
    device: str = "cpu",
    engine_cache: Path | None = None,
) -> Animation:
    """Runs the file through the same streaming path as the server, on any engines backend."""
    checkpoint = checkpoint or default_face_checkpoint()
    if not checkpoint.exists():
        raise ConfigError(f"no face checkpoint at {checkpoint}; train one with `emostream train face`")
    try:
        vector = emotion_vector(emotion, intensity)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    network, metadata = load_checkpoint(checkpoint)
    generator = FaceGenerator(network, lookahead=lookahead_from_ms(lookahead_ms), n_steps=steps).eval()
    runner: StepRunner = generator
    if backend != "eager" or device != "cpu":
        from engines.cache import EngineCache
        from engines.factory import make_backend

        runner = make_backend(backend, generator, device=device, buckets=(1,), cache=EngineCache(engine_cache))
    samples, rate = load_speech(audio_path)
    stream = FaceStream(generator, rate, seed=seed, emotion=vector, runner=runner)
    frames = [stream.push(chunk) for _, chunk in chunks(samples, rate, CHUNK_MS)]
    frames.append(stream.finish())
    meta = {
        "model": checkpoint.name,
        "model_created": metadata.get("created"),
        "lookahead_ms": round(generator.lookahead_ms, 2),
        "steps": steps,
        "backend": backend,
        "emotion": emotion,
        "intensity": intensity,
        "seed": seed,
        "audio": audio_path.name,
        "sample_rate_hz": rate,
        "chunk_ms": CHUNK_MS,
    }
    return Animation(np.concatenate(frames).astype(np.float32), FACE_FPS, meta)


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def live_link_columns() -> list[str]:
    """Live Link Face CSV header: timecode, count, 52 PascalCase shapes, head and both eyes' yaw/pitch/roll."""
    rotations = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip
    return ["Timecode", "BlendShapeCount", *[_pascal(n) for n in ARKIT_BLENDSHAPES], *rotations]


def write_animation(animation: Animation, path: Path) -> None:
    """Writes .npz (arrays), .json (lists) or .csv (Live Link Face layout, angles in radians)."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        np.savez(
            path, face=animation.face, face_channels=np.array(FACE_CHANNELS), fps=animation.fps,
            time=animation.time, meta=json.dumps(animation.meta),
        )  # fmt: skip
    elif suffix == ".json":
        body = {"face_channels": list(FACE_CHANNELS), "fps": animation.fps, "time": animation.time.tolist(),
                "face": animation.face.round(5).tolist(), "meta": animation.meta}  # fmt: skip
        path.write_text(json.dumps(body))
    elif suffix == ".csv":
        idx = {n: i for i, n in enumerate(FACE_CHANNELS)}
        order = ["headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch", None,
                 "rightEyeYaw", "rightEyePitch", None]  # fmt: skip
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(live_link_columns())
            for k, frame in enumerate(animation.face):
                seconds, sub = divmod(k, animation.fps)
                timecode = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{sub:02d}.000"
                rotations = [frame[idx[n]] if n else 0.0 for n in order]
                writer.writerow([timecode, 61, *[f"{v:.5f}" for v in frame[:52]], *[f"{v:.5f}" for v in rotations]])
    else:
        raise ConfigError(f"unknown output format {suffix!r}: use .npz, .json or .csv")
