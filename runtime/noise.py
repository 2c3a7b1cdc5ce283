"""Counter-based Gaussian noise: the noise of a stream's step is a pure function of (seed, stream kind,
step index), drawn for many streams at once with a few array operations and no generator object per
stream. The same seed and audio give the same motion whatever else the server is doing, and the batch-one
path (`emostream animate`) draws exactly what the server draws.

(seed, kind, step) hashes with SplitMix64 (Steele, Lea and Flood 2014, "Fast splittable pseudorandom
number generators") to a row of a fixed bank of standard normal vectors (`BANK_ROWS` rows, made once
from the same hash by the Box-Muller transform). A step's noise is then one row lookup, not thousands of
transcendental functions: a stream sees the bank's rows in its own pseudo-random order, and two streams
meet the same row at the same step once in BANK_ROWS steps, which a sampler cannot tell from fresh noise.
"""

from __future__ import annotations

from functools import cache

import numpy as np

FACE_NOISE = 1  # `kind`: the face and the body of one session draw from unrelated sequences
BODY_NOISE = 2
BANK_ROWS = 1 << 16
BANK_COLUMNS = 64  # the widest noise a generator takes (the face's 59 channels)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


@cache
def noise_bank() -> np.ndarray:
    """(BANK_ROWS, BANK_COLUMNS) float32 standard normal values, the same on every machine."""
    bits = splitmix64(np.arange(BANK_ROWS * BANK_COLUMNS, dtype=np.uint64)).reshape(BANK_ROWS, BANK_COLUMNS)
    u1 = ((bits >> np.uint64(32)).astype(np.float64) + 1.0) / 4294967297.0  # (0, 1): the log stays finite
    u2 = (bits & _LOW32).astype(np.float64) / 4294967296.0
    bank = (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)
    bank.setflags(write=False)
    return bank


def gaussian_noise(seeds: np.ndarray, steps: np.ndarray, n_values: int, kind: int) -> np.ndarray:
    """Standard normal noise (n, n_values) float32 for n streams: row i is the noise of step `steps[i]`
    of the stream seeded `seeds[i]`. seeds: (n,) in [0, 2^31); steps: (n,) >= 0."""
    if n_values > BANK_COLUMNS:
        raise ValueError(f"noise of {n_values} values; the bank holds {BANK_COLUMNS} per row")
    key = splitmix64((np.asarray(seeds, np.uint64) << np.uint64(8)) | np.uint64(kind))
    row = splitmix64(key ^ np.asarray(steps, np.uint64)) >> np.uint64(48)  # the top 16 bits
    return noise_bank()[row.astype(np.intp), :n_values]
