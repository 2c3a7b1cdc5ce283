"""Control values as the generators take them (torch-free: the I/O side builds them too)."""

from __future__ import annotations

import numpy as np

from emostream.runtime.audio import FEATURE_RATE_HZ
from emostream.runtime.protocol import AUTO_EMOTION, EMOTIONS

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


def chosen_and_weight(emotion: str, auto_weight: float) -> tuple[str, float]:
    """ "auto" means neutral, wholly from the voice; any other emotion keeps the weight it was given."""
    if emotion == AUTO_EMOTION:
        return "neutral", 1.0
    return emotion, min(max(auto_weight, 0.0), 1.0)


def emotion_controls(emotion: str, intensity: float, auto_weight: float) -> tuple[np.ndarray, float]:
    """The generators' emotion input as a chosen part and a share of the voice's estimated blend
    (runtime/auto_emotion.py): input = vector + scale * estimate, that is intensity * ((1 - auto_weight) *
    onehot(chosen) + auto_weight * estimate), the intensity held to [0, 1] as `emotion_vector` holds it."""
    chosen, weight = chosen_and_weight(emotion, auto_weight)
    intensity = min(max(intensity, 0.0), 1.0)
    return emotion_vector(chosen, intensity * (1.0 - weight)), intensity * weight
