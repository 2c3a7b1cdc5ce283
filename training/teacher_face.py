"""The procedural face teacher: phones + audio -> 60 fps ARKit-52 + head + eyes (docs/teacher.md).

Deterministic parts follow the speech: visemes blended by dominance (coarticulation, with lip rounding
anticipated before a rounded vowel is heard), jaw opening scaled by loudness, bilabials that always
close the lips, labiodentals that tuck the lower lip. Stochastic parts are drawn from the seed: blinks,
brow raises on loud stressed vowels, head motion that follows prosody, eye saccades. The emotion adds a
FACS preset over the whole face and changes articulation, blink rate and head motion, but the bilabial
closure is applied last, so no emotion can stop a p, b or m from closing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emostream.runtime.blinks import BLINKS_PER_MINUTE
from emostream.runtime.models.face import apply_closure
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, FACE_FPS, FACE_REGION_CHANNELS
from emostream.training.align import Phone
from emostream.training.emotions import EMOTION_STYLES
from emostream.training.visemes import (
    BILABIALS,
    LABIODENTALS,
    PHONE_TO_VISEME,
    VISEME_DOMINANCE,
    VISEME_POSES,
    VISEMES,
    expand_sides,
)

CH = {name: i for i, name in enumerate(FACE_CHANNELS)}
N_SHAPES = len(ARKIT_BLENDSHAPES)
ROUNDING = ("mouthFunnel", "mouthPucker")
MOUTH_CHANNELS: tuple[str, ...] = FACE_REGION_CHANNELS["lower"]


def _pose_vector(pose: dict[str, float]) -> np.ndarray:
    v = np.zeros(len(FACE_CHANNELS))
    for name, weight in expand_sides(pose).items():
        v[CH[name]] = weight
    return v


VISEME_TARGETS = {v: _pose_vector(VISEME_POSES[v]) for v in VISEMES}
EMOTION_POSES = {e: _pose_vector(style.pose) for e, style in EMOTION_STYLES.items()}


@dataclass(frozen=True)
class TeacherOutput:
    face: np.ndarray  # float32 (T, 59) in FACE_CHANNELS order
    visemes: np.ndarray  # int64 (T,) index into VISEMES of the phone under each frame
    loudness: np.ndarray  # float32 (T,) in [0, 1]
    closure: np.ndarray  # float32 (T,) in [0, 1]: how closed the lips are held for a bilabial


def frame_count(duration_s: float) -> int:
    return int(np.ceil(duration_s * FACE_FPS))


def loudness_envelope(audio: np.ndarray, rate_hz: int, n_frames: int) -> np.ndarray:
    """Per-frame loudness in [0, 1]: RMS in 30 ms windows, in dB over a 40 dB range below the peak."""
    hop = rate_hz / FACE_FPS
    half = int(0.015 * rate_hz)
    centres = (np.arange(n_frames) * hop).astype(int)
    padded = np.pad(audio.astype(np.float64), (half, half + int(hop) + 1))
    windows = padded[centres[:, None] + np.arange(2 * half)[None, :]]
    db = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-10)
    return np.clip((db - (db.max() - 40.0)) / 40.0, 0.0, 1.0)


def _smooth_bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def _coarticulate(phones: list[Phone], t: np.ndarray) -> np.ndarray:
    """Dominance-weighted blend of viseme targets (Cohen & Massaro 1993), (T, 59).

    Each phone's dominance falls off from its centre; rounding channels reach further ahead (anticipation).
    """
    n = len(phones)
    centres = np.array([(p.start_s + p.end_s) / 2 for p in phones])
    halves = np.array([max((p.end_s - p.start_s) / 2, 0.025) for p in phones])
    alphas = np.array([VISEME_DOMINANCE[PHONE_TO_VISEME.get(p.label, "sil")] for p in phones])
    targets = np.stack([VISEME_TARGETS[PHONE_TO_VISEME.get(p.label, "sil")] for p in phones])  # (n, 59)
    # Lips release fast after a bilabial or labiodental: their hold fades quickly once past the centre.
    reach_after = np.array([0.5 if PHONE_TO_VISEME.get(p.label) in ("PP", "FF") else 1.3 for p in phones])
    dt = t[:, None] - centres[None, :]  # (T, n); negative before the centre
    out = np.zeros((t.size, len(FACE_CHANNELS)))
    for reach_ahead, channels in ((1.3, None), (3.0, ROUNDING)):
        spread = np.where(dt < 0, halves * reach_ahead, halves * reach_after)
        dominance = alphas * np.exp(-(np.abs(dt / spread) ** 1.5))  # (T, n)
        blended = dominance @ targets / np.maximum(dominance.sum(axis=1, keepdims=True), 1e-8)
        if channels is None:
            out = blended
        else:
            idx = [CH[c] for c in channels]
            out[:, idx] = blended[:, idx]
    assert n == targets.shape[0]
    return out


def _closure_weight(phones: list[Phone], t: np.ndarray, labels: frozenset[str]) -> np.ndarray:
    """(T,) in [0, 1]: 1 through the core of each phone in `labels`, easing in over 25 ms, out over 15 ms."""
    w = np.zeros(t.size)
    for p in phones:
        if p.label in labels:
            core = np.clip(np.minimum((t - p.start_s) / 0.025, (p.end_s - t) / 0.015) + 1.0, 0.0, 1.0)
            w = np.maximum(w, np.sin(0.5 * np.pi * core) ** 2)
    return w


def _blinks(rng: np.random.Generator, t: np.ndarray, per_minute: float) -> np.ndarray:
    """(T,) eyelid closure from a Poisson train of blinks: fast close (40%), slower open."""
    out = np.zeros(t.size)
    time_s = rng.uniform(0.0, 60.0 / per_minute)
    while time_s < t[-1] + 1:
        duration = rng.uniform(0.12, 0.26)
        close, reopen = 0.4 * duration, 0.6 * duration
        rising = np.clip((t - time_s) / close, 0, 1)
        falling = np.clip(1 - (t - time_s - close) / reopen, 0, 1)
        shape = np.where(t < time_s + close, np.sin(0.5 * np.pi * rising), np.sin(0.5 * np.pi * falling))
        out = np.maximum(out, np.where((t >= time_s) & (t <= time_s + duration), shape, 0.0))
        double = rng.random() < 0.1  # an occasional double blink
        time_s += duration + (0.12 if double else max(0.4, rng.exponential(60.0 / per_minute)))
    return out


def _ou_noise(rng: np.random.Generator, n: int, tau_s: float, sigma: float) -> np.ndarray:
    """Smooth random drift at FACE_FPS: an Ornstein-Uhlenbeck process (time constant tau_s, std sigma),
    low-passed over 0.25 s so the head never jitters from frame to frame."""
    a = np.exp(-1.0 / (FACE_FPS * tau_s))
    kernel = np.hanning(17)[1:-1]
    kernel /= kernel.sum()
    pad = kernel.size
    x = np.zeros(n + 2 * pad)
    value = rng.normal(0, sigma)
    for i, innovation in enumerate(rng.normal(0, sigma * np.sqrt(1 - a * a), n + 2 * pad)):
        value = a * value + innovation
        x[i] = value
    return np.convolve(x, kernel, mode="same")[pad:-pad]


def _saccades(rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaze yaw and pitch (radians): fixations of 0.3-2 s joined by fast 40 ms jumps."""
    yaw, pitch = np.zeros(t.size), np.zeros(t.size)
    time_s, y, p = 0.0, rng.normal(0, 0.05), rng.normal(0, 0.03)
    while time_s <= t[-1]:
        hold = rng.uniform(0.3, 2.0)
        new_y, new_p = np.clip(rng.normal(0, 0.12), -0.3, 0.3), np.clip(rng.normal(0, 0.07), -0.2, 0.2)
        ramp = np.clip((t - time_s - hold) / 0.04, 0, 1)
        mask = t >= time_s
        yaw = np.where(mask, y + (new_y - y) * ramp, yaw)
        pitch = np.where(mask, p + (new_p - p) * ramp, pitch)
        time_s, y, p = time_s + hold, new_y, new_p
    return yaw, pitch


def teach(
    phones: list[Phone],
    audio: np.ndarray,
    rate_hz: int,
    emotion: str = "neutral",
    intensity: float = 1.0,
    seed: int = 0,
) -> TeacherOutput:
    """Face curves for one utterance; the phones' times are in seconds from the audio's start."""
    style = EMOTION_STYLES[emotion]
    rng = np.random.default_rng(seed)
    n = frame_count(audio.size / rate_hz)
    t = np.arange(n) / FACE_FPS
    loud = loudness_envelope(audio, rate_hz, n)

    face = _coarticulate(phones, t)
    mouth = [CH[c] for c in MOUTH_CHANNELS]
    face[:, CH["jawOpen"]] *= 0.5 + 0.8 * loud  # louder speech opens the jaw wider
    face[:, mouth] *= 1.0 + (style.articulation - 1.0) * intensity
    face += intensity * EMOTION_POSES[emotion]

    # Labiodentals: the lower lip tucks under the upper teeth.
    tuck = _closure_weight(phones, t, LABIODENTALS)
    for name in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthFunnel", "mouthPucker"):
        face[:, CH[name]] *= 1 - 0.8 * tuck
    face[:, CH["mouthRollLower"]] = np.maximum(face[:, CH["mouthRollLower"]], 0.5 * tuck)

    # Stochastic upper face.
    blink = _blinks(rng, t, BLINKS_PER_MINUTE[emotion] * (0.8 + 0.4 * rng.random()))
    for side in ("Left", "Right"):
        lid = CH[f"eyeBlink{side}"]
        face[:, lid] = np.maximum(face[:, lid], blink * rng.uniform(0.92, 1.0))
    vowel_centres = [
        (p.start_s + p.end_s) / 2 for p in phones if PHONE_TO_VISEME.get(p.label) in {"aa", "E", "ih", "oh", "ou"}
    ]
    accent = np.zeros(n)
    for c in vowel_centres:
        k = min(int(c * FACE_FPS), n - 1)
        if loud[k] > 0.75 and rng.random() < 0.35:
            accent += rng.uniform(0.2, 0.45) * _smooth_bump(t, c, rng.uniform(0.1, 0.2))
    accent = np.minimum(accent, 0.6) * style.brow_raise
    raise_, lower = np.maximum(accent, 0), np.maximum(-accent, 0)
    face[:, CH["browInnerUp"]] += raise_
    for side in ("Left", "Right"):
        face[:, CH[f"browOuterUp{side}"]] += 0.8 * raise_
        face[:, CH[f"browDown{side}"]] += lower

    # Head: slow drift plus nods that follow loudness, scaled by the emotion.
    amp = style.head_amplitude * (0.6 + 0.4 * intensity)
    loud_slow = np.convolve(loud, np.ones(12) / 12, mode="same")
    face[:, CH["headYaw"]] = amp * _ou_noise(rng, n, 1.5, 0.06)
    face[:, CH["headPitch"]] = (
        amp * (_ou_noise(rng, n, 1.0, 0.03) + 0.06 * (loud_slow - loud_slow.mean()) + 0.8 * accent * 0.1)
        + intensity * style.head_pitch_rad
    )
    face[:, CH["headRoll"]] = amp * _ou_noise(rng, n, 2.0, 0.03)

    # Eyes: saccades, partly counter-rotating against head yaw; look blendshapes agree with the angles.
    gaze_yaw, gaze_pitch = _saccades(rng, t)
    gaze_yaw -= 0.5 * face[:, CH["headYaw"]]
    for side in ("left", "right"):
        face[:, CH[f"{side}EyeYaw"]] = gaze_yaw
        face[:, CH[f"{side}EyePitch"]] = gaze_pitch
    face[:, CH["eyeLookOutLeft"]] += np.maximum(gaze_yaw, 0) / 0.4
    face[:, CH["eyeLookInRight"]] += np.maximum(gaze_yaw, 0) / 0.4
    face[:, CH["eyeLookInLeft"]] += np.maximum(-gaze_yaw, 0) / 0.4
    face[:, CH["eyeLookOutRight"]] += np.maximum(-gaze_yaw, 0) / 0.4
    for side in ("Left", "Right"):
        face[:, CH[f"eyeLookDown{side}"]] += np.maximum(gaze_pitch, 0) / 0.3
        face[:, CH[f"eyeLookUp{side}"]] += np.maximum(-gaze_pitch, 0) / 0.3

    # Bilabials last: whatever the emotion did, the lips meet (jaw may stay a little open).
    closure = _closure_weight(phones, t, BILABIALS)
    face[:, :N_SHAPES] = np.clip(face[:, :N_SHAPES], 0.0, 1.0)
    face = apply_closure(torch.from_numpy(face), torch.from_numpy(closure)).numpy()

    face[:, :N_SHAPES] = np.clip(face[:, :N_SHAPES], 0.0, 1.0)
    frame_phone = np.searchsorted([p.end_s for p in phones], t, side="right").clip(0, len(phones) - 1)
    visemes = np.array([VISEMES.index(PHONE_TO_VISEME.get(phones[i].label, "sil")) for i in frame_phone])
    return TeacherOutput(face.astype(np.float32), visemes, loud.astype(np.float32), closure.astype(np.float32))
