"""Training examples for the face generator: corpus utterances -> (augmented log-mel, teacher faces).

For every utterance: `n_audio` versions of its audio (the clean one and augmented ones) through the very
front-end the runtime streams with, and `n_renders` teacher renders with random emotion, intensity and
seed. The utterances are the TTS corpus's and real people's recordings phone-aligned by pocketsphinx
(training/real_voices.py, its training languages).
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emostream.runtime.audio import SUPPORTED_RATES_HZ, LogMelFrontEnd, Resampler
from emostream.runtime.audio_files import read_audio
from emostream.runtime.protocol import EMOTIONS
from emostream.training.align import Phone
from emostream.training.augment import augment
from emostream.training.captures import Capture, load_captures
from emostream.training.corpus import load_utterance
from emostream.training.metrics import CLOSED_BELOW, lip_gap
from emostream.training.real_voices import RealUtterance
from emostream.training.teacher_face import teach

REAL_SEEDS = 1_000_000  # first seed of the real recordings' examples


@dataclass
class FaceExample:
    features: list[np.ndarray]  # per audio version: float16 (T_f, 80) log-mel at 120 fps
    faces: list[np.ndarray]  # per render: float16 (T, 59) at 60 fps
    emotions: list[np.ndarray]  # per render: float32 (8,) one-hot times intensity
    visemes: np.ndarray  # int8 (T,) viseme index per frame (clean timing)
    closure: np.ndarray  # float16 (T,) bilabial closure weight per frame (clean timing)
    time_scales: list[float]  # per audio version: how much it stretched time (speed perturbation)


def supported_rate(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    if rate in SUPPORTED_RATES_HZ:
        return audio, rate
    return Resampler(rate, 16_000).offline(audio).astype(np.float32), 16_000


def scale_phones(phones: list[Phone], scale: float) -> list[Phone]:
    return [Phone(p.label, p.start_s * scale, p.end_s * scale) for p in phones]


def audio_versions(
    rng: np.random.Generator, audio: np.ndarray, rate: int, n_audio: int
) -> tuple[list[np.ndarray], list[float]]:
    """Log-mel of the clean audio and of n_audio - 1 augmented versions, with their time scales."""
    features, scales = [], []
    for i in range(n_audio):
        if i == 0:
            version, version_rate, scale = audio, rate, 1.0
        else:
            version, version_rate, scale = augment(rng, audio, rate)
        features.append(LogMelFrontEnd(version_rate).offline(version).astype(np.float16))
        scales.append(scale)
    return features, scales


def example(audio: np.ndarray, rate: int, phones: list[Phone], n_audio: int, n_renders: int, seed: int) -> FaceExample:
    rng = np.random.default_rng(seed)
    audio, rate = supported_rate(audio, rate)
    features, scales = audio_versions(rng, audio, rate, n_audio)
    faces, emotions = [], []
    # Renders use the clean timing; a speed-perturbed version is matched by stretching at sample time.
    for r in range(n_renders):
        emotion = EMOTIONS[(seed + r) % len(EMOTIONS)] if r < len(EMOTIONS) else str(rng.choice(EMOTIONS))
        intensity = float(rng.choice([1.0, rng.uniform(0.3, 1.0)]))
        out = teach(phones, audio, rate, emotion, intensity, seed=int(rng.integers(1 << 30)))
        faces.append(out.face.astype(np.float16))
        vector = np.zeros(len(EMOTIONS), np.float32)
        vector[EMOTIONS.index(emotion)] = intensity
        emotions.append(vector)
    plain = teach(phones, audio, rate)
    return FaceExample(features, faces, emotions, plain.visemes.astype(np.int8), plain.closure.astype(np.float16),
                       scales)  # fmt: skip


def corpus_example(job: tuple[Path, int, int, int]) -> FaceExample:
    path, n_audio, n_renders, seed = job
    audio, rate, phones = load_utterance(path)
    return example(audio, rate, phones, n_audio, n_renders, seed)


def real_example(job: tuple[RealUtterance, int, int, int]) -> FaceExample:
    utterance, n_audio, n_renders, seed = job
    return example(utterance.audio, utterance.rate, utterance.phones, n_audio, n_renders, seed)


def capture_example(capture: Capture, n_audio: int, seed: int) -> FaceExample:
    """A real capture as a training example. With no phone labels, the closure target comes from the
    captured lips themselves (closed where the lip gap is under the metric's threshold)."""
    audio, rate = read_audio(capture.audio_path, require_supported_rate=False)
    audio, rate = supported_rate(audio, rate)
    features, scales = audio_versions(np.random.default_rng(seed), audio, rate, n_audio)
    vector = np.zeros(len(EMOTIONS), np.float32)
    vector[EMOTIONS.index(capture.emotion)] = capture.intensity
    closure = (lip_gap(capture.face) < CLOSED_BELOW).astype(np.float16)
    visemes = np.zeros(capture.face.shape[0], np.int8)  # unknown without a transcript
    return FaceExample(features, [capture.face.astype(np.float16)], [vector], visemes, closure, scales)


def build_capture_dataset(folder: Path, n_audio: int = 3) -> list[FaceExample]:
    return [capture_example(c, n_audio, i) for i, c in enumerate(tqdm(load_captures(folder), desc="captures"))]


def build_dataset(corpus: Path, n_audio: int = 3, n_renders: int = 4, workers: int = 2, held_out: bool = False,
                  limit: int | None = None) -> list[FaceExample]:  # fmt: skip
    """Examples for the training voices (or, with held_out=True, for the held-out voices)."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    entries = [e for e in manifest["utterances"] if e["held_out"] == held_out][:limit]
    jobs = [(corpus / f"{e['id']}.npz", n_audio, n_renders, i) for i, e in enumerate(entries)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(corpus_example, jobs, chunksize=8), total=len(jobs), desc="face examples"))


def build_real_dataset(utterances: list[RealUtterance], n_audio: int = 3, n_renders: int = 4,
                       workers: int = 2, first: int = 0) -> list[FaceExample]:  # fmt: skip
    """Examples for real recordings; their seeds follow the corpus's so no random stream repeats (`first`:
    how many real recordings' seeds earlier examples took)."""
    jobs = [(u, n_audio, n_renders, REAL_SEEDS + first + i) for i, u in enumerate(utterances)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(real_example, jobs, chunksize=8), total=len(jobs), desc="real-voice examples"))
