"""Shared test data: real speech recordings committed under tests/data (made with espeak-ng and sox)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import soundfile

DATA = Path(__file__).parent / "data"


@cache
def speech_sample(rate_hz: int) -> np.ndarray:
    """About 2 s of TTS speech as int16 mono PCM at `rate_hz`, resampled by sox (not by our code)."""
    pcm, file_rate = soundfile.read(DATA / f"speech_{rate_hz}.wav", dtype="int16")
    assert file_rate == rate_hz and pcm.ndim == 1
    pcm.setflags(write=False)
    return pcm
