"""Emotional speech without downloads: the corpus sentences spoken by the TTS voices with the prosody the
vocal-emotion literature measures, and each take labelled with its emotion.

The profiles follow the acoustic correlates reported by Banse and Scherer (1996, "Acoustic profiles in
vocal emotion expression", JPSP 70) and reviewed by Juslin and Laukka (2003, "Communication of emotions in
vocal expression and music performance", Psych. Bull. 129): anger and joy raise F0 level, range, loudness
and high-frequency energy and speed up; sadness lowers all of them and slows down; fear raises F0 and
rate with a narrow, unsteady contour; disgust and contempt are slow and low. Surprise, absent from those
studies, gets a high, wide contour. Each take draws its own strength and jitter around the profile, so
the classes overlap as real speakers do, and neutral takes vary too.

Engines: espeak-ng through SSML <prosody> (rate, pitch level, pitch range), flite through its F0 target
(level and spread) and duration stretch; then, for every take, a gain, a spectral tilt (a shelf above
1.5 kHz: vocal effort) and, for fear, a tremor (5-8 Hz amplitude and pitch wobble). No package on PyPI,
Debian or npm ships emotional speech that could be found (docs/voice-emotion.md).
"""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from emostream.runtime.protocol import EMOTIONS
from emostream.training.tts import Voice, corpus_voices


@dataclass(frozen=True)
class Prosody:
    """A take's prosody relative to the voice's own neutral."""

    rate: float = 1.0  # speaking rate factor
    pitch_st: float = 0.0  # F0 level shift, semitones
    pitch_range: float = 1.0  # F0 spread factor
    gain_db: float = 0.0
    tilt_db: float = 0.0  # high-shelf gain above 1.5 kHz: positive is a tenser, brighter voice
    tremor: float = 0.0  # depth of a 5-8 Hz wobble (fear)


PROFILES: dict[str, Prosody] = {
    "neutral": Prosody(),
    "happy": Prosody(rate=1.10, pitch_st=3.5, pitch_range=1.6, gain_db=3.0, tilt_db=3.0),
    "sad": Prosody(rate=0.80, pitch_st=-2.5, pitch_range=0.55, gain_db=-6.0, tilt_db=-6.0),
    "surprised": Prosody(rate=0.95, pitch_st=5.5, pitch_range=2.0, gain_db=2.0, tilt_db=2.0),
    "fear": Prosody(rate=1.18, pitch_st=4.5, pitch_range=0.75, gain_db=0.0, tilt_db=1.5, tremor=0.35),
    "angry": Prosody(rate=1.12, pitch_st=2.0, pitch_range=1.4, gain_db=7.0, tilt_db=7.0),
    "disgusted": Prosody(rate=0.85, pitch_st=-1.5, pitch_range=1.1, gain_db=-1.0, tilt_db=-1.5),
    "contempt": Prosody(rate=0.88, pitch_st=-3.0, pitch_range=0.8, gain_db=-2.0, tilt_db=0.5),
}

# Where each emotion sits on the circumplex (Russell 1980): arousal and valence in [-1, 1].
AROUSAL_VALENCE: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "happy": (0.5, 0.8), "sad": (-0.6, -0.6), "surprised": (0.8, 0.2),
    "fear": (0.7, -0.6), "angry": (0.8, -0.6), "disgusted": (0.2, -0.7), "contempt": (0.1, -0.5),
}  # fmt: skip

FLITE_F0 = {"kal": (100.0, 15.0), "kal16": (100.0, 15.0), "rms": (100.0, 15.0), "slt": (175.0, 25.0),
            "awb": (110.0, 16.0)}  # fmt: skip  # the voices' own F0 mean and spread, Hz
SHELF_HZ = 1500.0


def draw_prosody(emotion: str, rng: np.random.Generator) -> Prosody:
    """The profile at a random strength (0.6-1.2), each cue jittered, plus a random recording level."""
    p = PROFILES[emotion]
    strength = rng.uniform(0.6, 1.2)

    def cue(value: float, neutral: float, spread: float) -> float:
        return neutral + (value - neutral) * strength * rng.uniform(0.75, 1.25) + rng.normal(0.0, spread)

    return Prosody(
        rate=float(np.clip(cue(p.rate, 1.0, 0.04), 0.6, 1.5)),
        pitch_st=cue(p.pitch_st, 0.0, 0.8),
        pitch_range=float(np.clip(cue(p.pitch_range, 1.0, 0.1), 0.3, 2.5)),
        gain_db=cue(p.gain_db, 0.0, 1.5) + rng.uniform(-4.0, 4.0),  # the microphone's level too
        tilt_db=cue(p.tilt_db, 0.0, 1.0),
        tremor=max(0.0, cue(p.tremor, 0.0, 0.03)),
    )


def _espeak(voice: Voice, text: str, prosody: Prosody, out: Path) -> None:
    pitch = 100.0 * (2.0 ** (prosody.pitch_st / 12.0) - 1.0)
    ssml = (f'<speak><prosody rate="{100 * prosody.rate:.0f}%" pitch="{pitch:+.0f}%" '
            f'range="{100 * prosody.pitch_range:.0f}%">{text}</prosody></speak>')  # fmt: skip
    wpm = int(165 * voice.speed)
    command = ["espeak-ng", "-m", "-v", voice.name, "-s", str(wpm), "-p", str(voice.pitch), "-w", str(out), ssml]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _flite(voice: Voice, text: str, prosody: Prosody, out: Path) -> None:
    mean, spread = FLITE_F0.get(voice.name, (110.0, 16.0))
    stretch = 1.0 / (voice.speed * prosody.rate)
    f0_mean, f0_spread = mean * 2.0 ** (prosody.pitch_st / 12.0), spread * prosody.pitch_range
    command = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch:.3f}",
               "--setf", f"int_f0_target_mean={f0_mean:.1f}", "--setf", f"int_f0_target_stddev={f0_spread:.1f}",
               "-t", text, "-o", str(out)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _tilt(audio: np.ndarray, rate: int, db: float) -> np.ndarray:
    """A smooth shelf: 0 dB below SHELF_HZ / 2, `db` above SHELF_HZ * 2, log-linear between."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(audio.size, 1.0 / rate)
    position = np.clip(np.log2(np.maximum(freqs, 1.0) / (SHELF_HZ / 2)) / 2.0, 0.0, 1.0)
    return np.fft.irfft(spectrum * 10.0 ** (db * position / 20.0), n=audio.size).astype(np.float32)


def _tremor(audio: np.ndarray, rate: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """An unsteady voice: loudness and (through a varying delay) pitch wobble at 5-8 Hz."""
    t = np.arange(audio.size) / rate
    wobble = np.sin(2 * np.pi * rng.uniform(5.0, 8.0) * t + rng.uniform(0, 2 * np.pi))
    delay = depth * 0.0015 * rate * (1.0 + wobble)  # up to ~1.5 ms: a few percent of pitch
    warped = np.interp(np.arange(audio.size) - delay, np.arange(audio.size), audio)
    return (warped * (1.0 + 0.5 * depth * wobble)).astype(np.float32)


def render(voice: Voice, text: str, emotion: str, seed: int) -> tuple[np.ndarray, int, Prosody]:
    """One emotional take: float32 mono samples, their rate, and the prosody drawn."""
    rng = np.random.default_rng(seed)
    prosody = draw_prosody(emotion, rng)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "take.wav"
        (_espeak if voice.engine == "espeak" else _flite)(voice, text, prosody, out)
        audio, rate = soundfile.read(out, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    audio = _tilt(audio, rate, prosody.tilt_db)
    if prosody.tremor > 0:
        audio = _tremor(audio, rate, prosody.tremor, rng)
    audio = audio / max(float(np.abs(audio).max()), 1e-6) * 0.5 * 10.0 ** (prosody.gain_db / 20.0)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), int(rate), prosody


def emotion_voices(held_out: bool) -> list[Voice]:
    """The voices whose prosody can be steered (espeak-ng and flite), training or held out."""
    return [v for v in corpus_voices() if v.engine in ("espeak", "flite") and v.held_out == held_out]


@dataclass(frozen=True)
class Take:
    emotion: str
    voice: str
    text: str
    path: Path
    prosody: Prosody


def _render_job(job: tuple[Voice, str, str, int, Path]) -> Take | None:
    voice, text, emotion, seed, path = job
    try:
        audio, rate, prosody = render(voice, text, emotion, seed)
    except (subprocess.SubprocessError, RuntimeError):
        return None
    soundfile.write(path, audio, rate)
    return Take(emotion, voice.id, text, path, prosody)


def build_takes(texts: list[str], out: Path, per_emotion: int, held_out: bool, seed: int = 0,
                workers: int = 2) -> list[Take]:  # fmt: skip
    """`per_emotion` takes of each emotion, each a random sentence and a random voice of the split."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    voices = emotion_voices(held_out)
    jobs = []
    for e, emotion in enumerate(EMOTIONS):
        for k in range(per_emotion):
            voice = voices[int(rng.integers(len(voices)))]
            text = texts[int(rng.integers(len(texts)))]
            jobs.append((voice, text, emotion, seed * 1_000_003 + e * 10_007 + k, out / f"{emotion}_{k:04d}.wav"))
    with ProcessPoolExecutor(workers) as pool:
        done = list(tqdm(pool.map(_render_job, jobs, chunksize=8), total=len(jobs), desc="emotional takes"))
    return [t for t in done if t is not None]
