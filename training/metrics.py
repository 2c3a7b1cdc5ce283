"""Lip-sync metrics over ARKit curves (the definitions of issue 3's face-quality benchmark)."""

from __future__ import annotations

import numpy as np

from emostream.runtime.models.face import lip_gap
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS
from emostream.training.align import Phone
from emostream.training.visemes import BILABIALS, OPEN_VOWELS

CH = {name: i for i, name in enumerate(FACE_CHANNELS)}
CLOSED_BELOW = 0.1


def frames_of(phone: Phone, n_frames: int, widen: int) -> slice:
    start = int(np.floor(phone.start_s * FACE_FPS)) - widen
    end = int(np.ceil(phone.end_s * FACE_FPS)) + widen
    return slice(max(start, 0), min(end, n_frames))


def central_frames(phone: Phone, n_frames: int) -> slice:
    quarter = (phone.end_s - phone.start_s) / 4
    start = int(np.floor((phone.start_s + quarter) * FACE_FPS))
    end = max(int(np.ceil((phone.end_s - quarter) * FACE_FPS)), start + 1)
    return slice(max(start, 0), min(end, n_frames))


def closure_rates(face: np.ndarray, phones: list[Phone]) -> tuple[float, float, int, int]:
    """(bilabial closure hit rate, false-closure rate during open vowels, n bilabials, n open vowels).

    A bilabial hits when the lips close (gap < 0.1) at least once within its interval widened by one frame
    on each side; a false closure is an open vowel whose central half has a closed frame (its edges may
    legitimately close into a neighbouring bilabial).
    """
    gap = lip_gap(face)
    closed = gap < CLOSED_BELOW
    hits = [bool(closed[frames_of(p, len(gap), 1)].any()) for p in phones if p.label in BILABIALS]
    false = [bool(closed[central_frames(p, len(gap))].any()) for p in phones if p.label in OPEN_VOWELS]
    hit_rate = float(np.mean(hits)) if hits else float("nan")
    false_rate = float(np.mean(false)) if false else float("nan")
    return hit_rate, false_rate, len(hits), len(false)


BLINK_CLOSED_ABOVE = 0.5  # mean of eyeBlinkLeft and eyeBlinkRight


def blink_durations_s(face: np.ndarray) -> np.ndarray:
    """Lengths in seconds of the runs of frames whose eyes are closed (mean eyeBlink above 0.5); a run
    cut by the clip's end counts as far as it goes."""
    closed = (face[:, CH["eyeBlinkLeft"]] + face[:, CH["eyeBlinkRight"]]) / 2 > BLINK_CLOSED_ABOVE
    edges = np.diff(np.concatenate([[0], closed.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return (ends - starts) / FACE_FPS
