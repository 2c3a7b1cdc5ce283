"""`emostream animate`: a speech file through the streaming path, chunk by chunk, to an animation file.

The face and (by default) the gesture generator each run in a GeneratorStream, as the server runs them per
session, fed the same 20 ms chunks; nothing here looks ahead further than the models' lookahead.
Output formats: .npz (face and body arrays), .json, and .csv (the face in Live Link Face column order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emostream.runtime.animation_files import Animation
from emostream.runtime.assets import default_face_checkpoint, default_gesture_checkpoint
from emostream.runtime.audio import SUPPORTED_RATES_HZ, Resampler
from emostream.runtime.audio_files import chunks, read_audio
from emostream.runtime.auto_emotion import VoiceEmotionStream
from emostream.runtime.body_pose import body_frames
from emostream.runtime.controls import chosen_and_weight, emotion_controls, emotion_vector, lookahead_from_ms
from emostream.runtime.errors import ConfigError
from emostream.runtime.models.face import FaceGenerator, load_checkpoint
from emostream.runtime.models.gesture import GestureGenerator, load_gesture_checkpoint, style_embedding
from emostream.runtime.models.voice_emotion import load_voice_emotion
from emostream.runtime.rigs import BODY_FPS, FACE_FPS
from emostream.runtime.step import StepRunner, StreamingGenerator
from emostream.runtime.stream import GeneratorStream
from emostream.runtime.timelines import DEFAULT_STEPS

CHUNK_MS = 20.0
DEFAULT_LOOKAHEAD_MS = 60.0  # rounds to 58.3 ms: 7 feature frames
DEFAULT_STYLE = "ada"


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
    auto_weight: float = 0.0,
) -> Animation:
    """Runs the file through the same streaming path as the server, on any engines backend. `emotion`
    "auto", or an `auto_weight` above 0, mixes in the emotion estimated from the voice
    (runtime/auto_emotion.py), updated every chunk."""
    checkpoint = checkpoint or default_face_checkpoint()
    if not checkpoint.exists():
        raise ConfigError(f"no face checkpoint at {checkpoint}; train one with `emostream train face`")
    chosen, auto_weight = chosen_and_weight(emotion, auto_weight)
    try:
        vector = emotion_vector(chosen, intensity)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    chosen_part, voice_share = emotion_controls(emotion, intensity, auto_weight)
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
    voice = VoiceEmotionStream(load_voice_emotion()[0], rate) if auto_weight > 0 else None
    estimates = []
    outputs: list[list[np.ndarray]] = [[] for _ in streams]
    for _, chunk in chunks(samples, rate, CHUNK_MS):
        if voice is not None:  # the estimate after this chunk steers the frames this chunk completes
            estimate = voice.push(chunk)
            estimates.append(np.concatenate([estimate, voice.arousal_valence]))
            for stream in streams:
                stream.set_emotion(chosen_part + voice_share * estimate, transition_ms=CHUNK_MS)
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
        "auto_weight": auto_weight,
        "seed": seed,
        "audio": audio_path.name,
        "sample_rate_hz": rate,
        "chunk_ms": CHUNK_MS,
        **body_meta,
    }
    if estimates:  # the voice's emotion per chunk: blend (8), arousal, valence
        meta["voice_emotion"] = np.round(np.stack(estimates), 4).tolist()
        meta["voice_emotion_chunk_ms"] = CHUNK_MS
    face = np.concatenate(outputs[0]).astype(np.float32)
    poses = body_frames(np.concatenate(outputs[1])) if body else None
    return Animation(face, FACE_FPS, meta, poses)
