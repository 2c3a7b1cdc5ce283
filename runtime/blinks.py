"""Blinks as people blink, drawn procedurally over the face model's eyelids.

The face model learned the teacher's blinks (120 to 260 ms, Poisson) as rare random events, and a
few-step sampler smears them: on held-out voices its closed-eye runs reached 0.4 s at the median and 1 s
at the 95th percentile (`emostream bench real-voices`), which reads as nodding off, and capped at a fixed
0.3 the smears still left the eyes half shut for up to a second. A blink cannot be heard, so the model
can only guess at one; what it can know is the mood. So the eyelids the server sends are the model's,
capped at the resting level of the emotion it is given (`REST_LID`: only sadness lowers the lids, as in
the teacher, training/emotions.py), with blinks drawn here on top.

A blink is a pure function of (seed, frame index, emotion), with no state: time is cut into cells of
`CELL_S` (the fastest emotion's rate, fear's 26 a minute), each holding one blink of 120 to 260 ms at a
hashed position, closing in 40% of its length and opening in the rest (the teacher's shape), and a
hashed share of the cells keeps its blink: the emotion's rate over the fastest (`BLINKS_PER_MINUTE`,
the teacher's rates: 17 a minute in neutral, 8 in surprise, 10 in anger (a fixed stare), 26 in fear;
blends and intensities in between; an emotion that changes during a blink may end it early). The same
seed gives the same blinks in the server and in `emostream animate`, whatever the chunking.
"""

from __future__ import annotations

import numpy as np

from emostream.runtime.noise import splitmix64
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS

BLINK_NOISE = 3  # the hash `kind` of blinks (the face's and body's noise are 1 and 2)
# Blinks a minute per emotion at full intensity, the teacher's (training/teacher_face.py) and the drawn ones'.
BLINKS_PER_MINUTE = {"neutral": 17.0, "happy": 18.0, "sad": 12.0, "surprised": 8.0, "fear": 26.0,
                     "disgusted": 15.0, "angry": 10.0, "contempt": 14.0}  # fmt: skip
CELL_S = 60.0 / max(BLINKS_PER_MINUTE.values())
SHORTEST_S, LONGEST_S = 0.12, 0.26
CLOSING_SHARE = 0.4
DEPTH = 0.95  # how far a blink closes the lids
REST_LID = {"sad": 0.15}  # eyelid closure at rest per emotion at full intensity (others: open)
LIDS = [FACE_CHANNELS.index("eyeBlinkLeft"), FACE_CHANNELS.index("eyeBlinkRight")]
_REST_LID_VECTOR = np.array([REST_LID.get(name, 0.0) for name in EMOTIONS], np.float32)
_RATE_CHANGE = np.array([BLINKS_PER_MINUTE[name] - BLINKS_PER_MINUTE["neutral"] for name in EMOTIONS])


def _uniform(bits: np.ndarray) -> np.ndarray:
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def blinks_per_minute(emotion: np.ndarray) -> np.ndarray:
    """(n,) blink rate for (n, len(EMOTIONS)) emotion vectors: neutral's, moved by each emotion's weight
    toward that emotion's, within what the cells hold."""
    rate = BLINKS_PER_MINUTE["neutral"] + np.asarray(emotion, np.float64) @ _RATE_CHANGE
    return np.clip(rate, 0.0, 60.0 / CELL_S)


def blink_closure(seeds: np.ndarray, frames: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """(n,) eyelid closure of frame `frames[i]` (>= 0) of the stream seeded `seeds[i]` in `emotion[i]`."""
    t = np.asarray(frames, np.float64) / FACE_FPS
    cell = np.floor(t / CELL_S).astype(np.int64)
    key = splitmix64((np.asarray(seeds, np.uint64) << np.uint64(8)) | np.uint64(BLINK_NOISE))
    position_bits = splitmix64(key ^ cell.astype(np.uint64))
    length_bits = splitmix64(position_bits)
    kept = _uniform(splitmix64(length_bits)) * 60.0 < blinks_per_minute(emotion) * CELL_S
    duration = SHORTEST_S + (LONGEST_S - SHORTEST_S) * _uniform(length_bits)
    start = cell * CELL_S + _uniform(position_bits) * (CELL_S - duration)
    x = (t - start) / duration  # 0 .. 1 inside the blink
    closing = np.sin(0.5 * np.pi * np.clip(x / CLOSING_SHARE, 0.0, 1.0))
    opening = np.sin(0.5 * np.pi * np.clip((1.0 - x) / (1.0 - CLOSING_SHARE), 0.0, 1.0))
    shape = np.where(x < CLOSING_SHARE, closing, opening)
    return np.where(kept & (x >= 0.0) & (x <= 1.0), DEPTH * shape, 0.0).astype(np.float32)


def rest_lid(emotion: np.ndarray) -> np.ndarray:
    """(n,) the eyelids' resting closure for (n, len(EMOTIONS)) emotion vectors as the face model takes
    them (each emotion's weight times its intensity, blends included)."""
    return np.clip(np.asarray(emotion, np.float32) @ _REST_LID_VECTOR, 0.0, 1.0)


def apply_blinks(face: np.ndarray, seeds: np.ndarray, frames: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """`face` (n, FACE_CHANNELS) with its eyelids capped at the resting level of `emotion` (n, EMOTIONS)
    and the blinks of (seeds, frames, emotion) on top; a new array."""
    out = face.copy()
    blink = blink_closure(seeds, np.maximum(frames, 0), emotion)[:, None]
    out[:, LIDS] = np.maximum(np.minimum(face[:, LIDS], rest_lid(emotion)[:, None]), blink)
    return out
