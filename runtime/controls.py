"""Control values as the generators take them (torch-free: the I/O side builds them too)."""

from __future__ import annotations

import numpy as np

from emostream.runtime.audio import FEATURE_RATE_HZ
from emostream.runtime.protocol import EMOTIONS

FEATURE_MS = 1000.0 / FEATURE_RATE_HZ  # one log-mel feature frame: the face lookahead's unit
MAX_LOOKAHEAD = 12  # feature frames (100 ms): the longest face lookahead the model was trained for


def lookahead_from_ms(lookahead_ms: float) -> int:
    """Nearest supported face lookahead, in feature frames, to a request in milliseconds."""
    return int(min(MAX_LOOKAHEAD, max(0, round(lookahead_ms / FEATURE_MS))))


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """One-hot emotion times intensity: the generator's emotion input."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {EMOTIONS}")
    vector = np.zeros(len(EMOTIONS), np.float32)
    vector[EMOTIONS.index(emotion)] = min(max(intensity, 0.0), 1.0)
    return vector
