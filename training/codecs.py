"""Speech through the codecs that calls and streams use, by ffmpeg (the Debian package): encode, decode,
and put the result back in time with the input.

A codec changes the rate (G.711 and GSM are 8 kHz, G.722 16 kHz) and may delay the signal by its
frame and look-ahead; `through_codec` returns the decoded audio at the codec's rate, shifted so that it
lines up with the input, so phone timings of the input hold for it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from emostream.runtime.audio import Resampler


@dataclass(frozen=True)
class Codec:
    name: str
    rate_hz: int  # what it codes at
    container: str  # ffmpeg muxer
    arguments: tuple[str, ...]  # encoder options


CODECS = {
    "g711-mulaw": Codec("G.711 mu-law", 8000, "mulaw", ("-c:a", "pcm_mulaw")),
    "g711-alaw": Codec("G.711 A-law", 8000, "alaw", ("-c:a", "pcm_alaw")),
    "gsm": Codec("GSM 06.10", 8000, "gsm", ("-c:a", "libgsm")),
    "g722": Codec("G.722", 16000, "g722", ("-c:a", "g722")),
    "opus-12k": Codec("Opus 12 kb/s", 16000, "ogg", ("-c:a", "libopus", "-b:a", "12k", "-application", "voip")),
    "mp3-32k": Codec("MP3 32 kb/s", 16000, "mp3", ("-c:a", "libmp3lame", "-b:a", "32k")),
}
HEADERLESS = frozenset({"mulaw", "alaw"})  # raw G.722 is 16 kHz by definition
MAX_SHIFT_S = 0.1  # the largest codec delay looked for


class CodecUnavailable(RuntimeError):
    """ffmpeg (or its encoder) is missing."""


def _ffmpeg(arguments: list[str], data: bytes) -> bytes:
    if shutil.which("ffmpeg") is None:
        raise CodecUnavailable("ffmpeg is not installed: apt-get install ffmpeg")
    done = subprocess.run(["ffmpeg", "-v", "error", *arguments], input=data, capture_output=True)
    if done.returncode != 0:
        raise CodecUnavailable(f"ffmpeg failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout


def decode_file(path: str, input_format: str | None = None, rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """Any file ffmpeg reads (raw G.722 needs input_format="g722"), as float32 mono at its own rate or
    `rate_hz`."""
    probe = ["-f", input_format] if input_format else []
    rate = rate_hz or (16000 if input_format == "g722" else None)
    if rate is None:
        raise ValueError("give rate_hz for formats that do not state their rate")
    raw = _ffmpeg([*probe, "-i", path, "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"], b"")
    return np.frombuffer(raw, np.float32).copy(), rate


def through_codec(audio: np.ndarray, rate_hz: int, codec: Codec) -> tuple[np.ndarray, int]:
    """`audio` (float mono) encoded and decoded by `codec`: (decoded float32 at codec.rate_hz, that rate),
    aligned in time with the input."""
    x = audio.astype(np.float64)
    if rate_hz != codec.rate_hz:
        x = Resampler(rate_hz, codec.rate_hz).offline(x)
    pcm = np.clip(x, -1.0, 1.0).astype(np.float32).tobytes()
    source = ["-f", "f32le", "-ar", str(codec.rate_hz), "-ac", "1", "-i", "-"]
    encoded = _ffmpeg([*source, *codec.arguments, "-ar", str(codec.rate_hz), "-f", codec.container, "-"], pcm)
    # headerless formats do not state their rate: say it, or ffmpeg assumes another
    raw = ["-ar", str(codec.rate_hz), "-ac", "1"] if codec.container in HEADERLESS else []
    decoded_raw = _ffmpeg(["-f", codec.container, *raw, "-i", "-", "-ac", "1", "-ar", str(codec.rate_hz),
                           "-f", "f32le", "-"], encoded)  # fmt: skip
    decoded = np.frombuffer(decoded_raw, np.float32)
    shift = codec_delay(x, decoded, codec.rate_hz)
    out = np.zeros(x.size, np.float32)
    usable = decoded[shift : shift + x.size]
    out[: usable.size] = usable
    return out, codec.rate_hz


def codec_delay(reference: np.ndarray, decoded: np.ndarray, rate_hz: int) -> int:
    """Samples by which `decoded` lags `reference` (0 .. MAX_SHIFT_S), by cross-correlating envelopes."""
    hop = max(rate_hz // 1000, 1)  # 1 ms resolution, then refined on samples
    n = min(reference.size, decoded.size)

    def envelope(x: np.ndarray) -> np.ndarray:
        frames = np.abs(x[: (x.size // hop) * hop]).reshape(-1, hop).mean(1)
        return frames - frames.mean()

    ref, dec = envelope(reference[:n]), envelope(decoded)
    limit = int(MAX_SHIFT_S * rate_hz / hop)
    scores = [float(np.dot(ref[: ref.size - lag], dec[lag : lag + ref.size - lag])) if lag < dec.size else -np.inf
              for lag in range(limit)]  # fmt: skip
    coarse = int(np.argmax(scores)) * hop
    best, best_score = coarse, -np.inf
    for lag in range(max(coarse - hop, 0), coarse + hop + 1):
        m = min(reference.size, decoded.size - lag)
        if m <= 0:
            continue
        score = float(np.dot(reference[:m], decoded[lag : lag + m]))
        if score > best_score:
            best, best_score = lag, score
    return best
