"""Audio augmentation so models trained on TTS work on real voices: speed (tempo and pitch together, as
Kaldi's speed perturbation), noise, reverb, random EQ, level and clipping, then the channel: 8 kHz
telephone band-limiting, a real codec (G.711, GSM, G.722, Opus, MP3 through ffmpeg, training/codecs.py)
or a lower sample rate.

`augment` returns new audio, its rate and the time scale to apply to phone timings.
"""

from __future__ import annotations

import numpy as np

from emostream.runtime.audio import Resampler
from emostream.training.codecs import CODECS, through_codec

CHANNEL_RATES_HZ = (16_000, 22_050)  # band limits of wideband microphones and web audio


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    return Resampler(rate_in, rate_out).offline(x)


def speed(x: np.ndarray, rate_hz: int, factor: float) -> np.ndarray:
    """Plays `factor` times faster (higher pitch too): resample to rate/factor, keep the nominal rate."""
    target = round(rate_hz / factor / 50.0) * 50  # a rate with a small gcd keeps the filter table small
    return _resample(x, rate_hz, target)


def add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: float) -> np.ndarray:
    """White or pink-ish noise at the given signal-to-noise ratio over the speech's power."""
    noise = rng.normal(size=x.size)
    if rng.random() < 0.5:  # pink-ish: 1/f spectrum
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        noise = np.fft.irfft(spectrum, n=x.size)
    power = np.mean(x**2) + 1e-12
    return x + noise * np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))


def reverb(rng: np.random.Generator, x: np.ndarray, rate_hz: int, rt60_s: float) -> np.ndarray:
    """Convolution with a synthetic room response: a direct path, then exponentially decaying noise."""
    n = int(rt60_s * rate_hz)
    t = np.arange(n) / rate_hz
    rir = rng.normal(size=n) * np.exp(-6.9 * t / rt60_s) * 0.3
    rir[0] = 1.0
    wet = np.fft.irfft(np.fft.rfft(x, x.size + n) * np.fft.rfft(rir, x.size + n), x.size + n)[: x.size]
    return wet * np.sqrt(np.mean(x**2) / (np.mean(wet**2) + 1e-12))


def random_eq(rng: np.random.Generator, x: np.ndarray, max_db: float = 8.0) -> np.ndarray:
    """A smooth random gain curve over log frequency (a few broad boosts and cuts)."""
    spectrum = np.fft.rfft(x)
    log_f = np.log(np.maximum(np.arange(spectrum.size), 1))
    knots = np.linspace(0, log_f[-1], 6)
    gain_db = np.interp(log_f, knots, rng.uniform(-max_db, max_db, knots.size))
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=x.size)


def telephone(x: np.ndarray, rate_hz: int) -> tuple[np.ndarray, int]:
    """Band-limit to 300-3400 Hz and deliver at 8 kHz, as a phone line would."""
    narrow = _resample(x, rate_hz, 8_000)
    spectrum = np.fft.rfft(narrow)
    f = np.fft.rfftfreq(narrow.size, 1 / 8_000)
    spectrum[(f < 300) | (f > 3400)] = 0
    return np.fft.irfft(spectrum, n=narrow.size), 8_000


def clip(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Driven into clipping: a gain that puts the loudest 0.5-5% of samples past full scale."""
    ceiling = np.quantile(np.abs(x), 1 - rng.uniform(0.005, 0.05)) + 1e-9
    return np.clip(x / ceiling, -1, 1)


def channel(rng: np.random.Generator, x: np.ndarray, rate_hz: int) -> tuple[np.ndarray, int]:
    """What carries the voice to the server: as recorded, a phone line, a codec or a lower rate."""
    draw = rng.random()
    if draw < 0.15:
        return telephone(x, rate_hz)
    if draw < 0.4:
        codec = CODECS[sorted(CODECS)[int(rng.integers(len(CODECS)))]]
        decoded, rate = through_codec(x, rate_hz, codec)
        return decoded.astype(np.float64), rate
    if draw < 0.5:
        rate = int(rng.choice(CHANNEL_RATES_HZ))
        return (_resample(x, rate_hz, rate), rate) if rate < rate_hz else (x, rate_hz)
    return x, rate_hz


def augment(rng: np.random.Generator, x: np.ndarray, rate_hz: int) -> tuple[np.ndarray, int, float]:
    """A random chain of the above. Returns (float32 audio in [-1, 1], rate, time scale for phones)."""
    y = x.astype(np.float64)
    time_scale = 1.0
    if rng.random() < 0.6:
        factor = rng.uniform(0.88, 1.12)
        y = speed(y, rate_hz, factor)
        time_scale = 1.0 / factor
    if rng.random() < 0.4:
        y = random_eq(rng, y)
    if rng.random() < 0.3:
        y = reverb(rng, y, rate_hz, rng.uniform(0.15, 0.7))
    if rng.random() < 0.5:
        y = add_noise(rng, y, rng.uniform(8, 35))
    y *= 10 ** (rng.uniform(-18, 4) / 20) / max(np.max(np.abs(y)), 1e-6) * 0.9
    if rng.random() < 0.1:
        y = clip(rng, y) * np.max(np.abs(y))
    y, out_rate = channel(rng, y, rate_hz)
    return np.clip(y, -1, 1).astype(np.float32), out_rate, time_scale
