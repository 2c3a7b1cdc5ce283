"""Reading speech files for streaming: WAV, FLAC and whatever else libsndfile reads. No torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from emostream.runtime.errors import AudioFormatError
from emostream.runtime.protocol import SAMPLE_RATES_HZ


def read_audio(path: str | Path, require_supported_rate: bool = True) -> tuple[np.ndarray, int]:
    """Returns (float32 mono samples in [-1, 1], sample rate in Hz). Stereo and wider are averaged.

    Raises AudioFormatError for unreadable files and, unless told otherwise, for rates the server does not
    take (the caller then converts).
    """
    if not Path(path).is_file():
        raise AudioFormatError(f"no such audio file: {path}")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFormatError(f"cannot read audio file {str(path)!r}: {exc}") from None
    if require_supported_rate and rate not in SAMPLE_RATES_HZ:
        raise AudioFormatError(
            f"{path}: sample rate {rate} Hz is not supported; convert to one of {SAMPLE_RATES_HZ} "
            f"(for example: sox in.wav -r 16000 out.wav)"
        )
    mono = samples.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioFormatError(f"{path}: the file contains NaN or infinite samples")
    return mono, int(rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] to int16 PCM, rounded and clipped."""
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


def chunks(samples: np.ndarray, rate_hz: int, chunk_ms: float) -> list[tuple[int, np.ndarray]]:
    """Splits samples into consecutive chunks of chunk_ms (the last may be shorter): (start_sample, chunk)."""
    size = max(1, round(rate_hz * chunk_ms / 1000.0))
    return [(start, samples[start : start + size]) for start in range(0, samples.size, size)]
