"""`emostream animate`: a speech file through the streaming path, chunk by chunk, to an animation file.

The face and (by default) the gesture generator each run in a GeneratorStream, as the server runs them per
session, fed the same 20 ms chunks; nothing here looks ahead further than the models' lookahead.
Output formats: .npz (face and body arrays), .json, and .csv (the face in Live Link Face column order).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emostream.clients.audio_files import chunks, read_audio
from emostream.runtime.audio import SUPPORTED_RATES_HZ, Resampler
from emostream.runtime.body_pose import body_arrays, body_frames
from emostream.runtime.controls import emotion_vector, lookahead_from_ms
from emostream.runtime.errors import ConfigError
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from emostream.runtime.models.gesture import GestureGenerator, load_gesture_checkpoint, style_embedding
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, BODY_FPS, FACE_CHANNELS, FACE_FPS, SMPLX_JOINTS, SMPLX_PARENTS
from emostream.runtime.step import StepRunner, StreamingGenerator
from emostream.runtime.stream import GeneratorStream

CHUNK_MS = 20.0
DEFAULT_LOOKAHEAD_MS = 60.0  # rounds to 58.3 ms: 7 feature frames
DEFAULT_STEPS = 2
DEFAULT_STYLE = "ada"


def default_face_checkpoint() -> Path:
    return Path(str(resources.files("emostream.runtime") / "assets" / "face.pt"))


def default_gesture_checkpoint() -> Path:
    return Path(str(resources.files("emostream.runtime") / "assets" / "gesture.pt"))


@dataclass(frozen=True)
class Animation:
    face: np.ndarray  # float32 (T, 59) in FACE_CHANNELS order
    fps: int
    meta: dict[str, Any]
    body: np.ndarray | None = None  # float32 (T_b, 223) body frames in the wire layout (BODY_CHANNELS)
    body_fps: int = BODY_FPS

    @property
    def time(self) -> np.ndarray:
        """Media time in seconds of each face frame."""
        return np.arange(self.face.shape[0]) / self.fps

    @property
    def body_time(self) -> np.ndarray:
        return np.arange(0 if self.body is None else self.body.shape[0]) / self.body_fps


def make_runner(generator: StreamingGenerator, backend: str, device: str, engine_cache: Path | None) -> StepRunner:
    """The generator itself for eager on the CPU, otherwise an engines backend around it."""
    if backend == "eager" and device == "cpu":
        return generator
    from emostream.engines.cache import EngineCache
    from emostream.engines.factory import make_backend

    return make_backend(backend, generator, device=device, buckets=(1,), cache=EngineCache(engine_cache))


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
    body: bool = True,
    style: str = DEFAULT_STYLE,
    gesture_checkpoint: Path | None = None,
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
    samples, rate = load_speech(audio_path)

    def runner(generator: StreamingGenerator) -> StepRunner:
        return make_runner(generator, backend, device, engine_cache)

    streams = [GeneratorStream(generator, rate, seed=seed, emotion=vector, make_runner=runner)]
    body_meta: dict[str, Any] = {}
    if body:
        gesture_checkpoint = gesture_checkpoint or default_gesture_checkpoint()
        if not gesture_checkpoint.exists():
            raise ConfigError(f"no gesture checkpoint at {gesture_checkpoint}; train one with "
                              "`emostream train gesture`, or pass --no-body")  # fmt: skip
        gesture_network, style_names, _ = load_gesture_checkpoint(gesture_checkpoint)
        gestures = GestureGenerator(gesture_network, n_steps=steps).eval()
        embedding = style_embedding(gesture_network, style_names, style)
        streams.append(GeneratorStream(gestures, rate, seed=seed, emotion=vector, fps=BODY_FPS, style=embedding,
                                       make_runner=runner))  # fmt: skip
        body_meta = {"body_model": gesture_checkpoint.name, "style": style,
                     "body_lookahead_ms": round(gestures.lookahead_ms, 2)}  # fmt: skip
    outputs: list[list[np.ndarray]] = [[] for _ in streams]
    for _, chunk in chunks(samples, rate, CHUNK_MS):
        for stream, out in zip(streams, outputs, strict=True):
            out.append(stream.push(chunk))
    for stream, out in zip(streams, outputs, strict=True):
        out.append(stream.finish())
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
        **body_meta,
    }
    face = np.concatenate(outputs[0]).astype(np.float32)
    poses = body_frames(np.concatenate(outputs[1])) if body else None
    return Animation(face, FACE_FPS, meta, poses)


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def live_link_columns() -> list[str]:
    """Live Link Face CSV header: timecode, count, 52 PascalCase shapes, head and both eyes' yaw/pitch/roll."""
    rotations = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip
    return ["Timecode", "BlendShapeCount", *[_pascal(n) for n in ARKIT_BLENDSHAPES], *rotations]


OUTPUT_FORMATS = (".npz", ".json", ".csv")


def check_output_format(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown output format {path.suffix!r}: use .npz, .json or .csv")


def write_animation(animation: Animation, path: Path) -> None:
    """Writes .npz (arrays), .json (lists) or .csv (Live Link Face layout, angles in radians)."""
    check_output_format(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        arrays: dict[str, Any] = {
            "face": animation.face,
            "face_channels": np.array(FACE_CHANNELS),
            "fps": animation.fps,
            "time": animation.time,
            "meta": json.dumps(animation.meta),
        }
        if animation.body is not None:
            arrays |= body_arrays(animation.body, animation.body_fps)
        np.savez(path, **arrays)
    elif suffix == ".json":
        document = {"face_channels": list(FACE_CHANNELS), "fps": animation.fps, "time": animation.time.tolist(),
                    "face": animation.face.round(5).tolist(), "meta": animation.meta}  # fmt: skip
        if animation.body is not None:
            arrays = body_arrays(animation.body, animation.body_fps)
            document |= {"body_joints": list(SMPLX_JOINTS), "body_parents": list(SMPLX_PARENTS),
                         "body_fps": animation.body_fps, "body_quat": arrays["body_quat"].round(6).tolist(),
                         "body_trans": arrays["body_trans"].round(6).tolist()}  # fmt: skip
        path.write_text(json.dumps(document))
    else:  # .csv
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
