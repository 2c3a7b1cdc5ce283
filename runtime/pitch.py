"""Voice pitch per feature frame, for the voice-emotion estimator: F0 level and contour are among the
strongest acoustic cues of vocal emotion (Banse and Scherer 1996), and the log-mel frames hide them: at
24 kHz a 512-point FFT puts bins 47 Hz apart, so the harmonics of a 100 Hz voice are not resolved.

Frame j (as a log-mel frame) reads the PITCH_WINDOW model-rate samples that end with its hop, 40 ms, two
periods of the lowest voice it looks for. The window is averaged down by 3 to 8 kHz and searched by
YIN (de Cheveigné and Kawahara 2002, "YIN, a fundamental frequency estimator for speech and music",
JASA 111): the cumulative-mean-normalised difference function, its first dip under YIN_THRESHOLD (the
global minimum where none is), over periods from F0_MAX_HZ down to F0_MIN_HZ. Two numbers per frame:

- `periodicity`: 1 minus the normalised difference at that period, clipped to [0, 1]: near 1 in a
  steady vowel, low in noise, fricatives and silence;
- `voiced_octaves`: periodicity times log2(F0 / 100 Hz), so an aperiodic frame says little about pitch.

One implementation in torch serves every path: whole signals offline (training, benchmarks,
`PitchFrontEnd` for one stream) and many streams' windows at once (the server's front-end).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.audio import HOP_LENGTH, MODEL_SAMPLE_RATE_HZ, Resampler, validate_pcm

PITCH_WINDOW = 960  # model-rate samples per frame: 40 ms at 24 kHz
DECIMATION = 3  # to 8 kHz, where a period of the lowest voice is 133 samples
F0_MIN_HZ, F0_MAX_HZ = 60.0, 450.0
YIN_THRESHOLD = 0.15
N_PITCH = 2  # values per frame: periodicity, voiced_octaves
REFERENCE_HZ = 100.0

_RATE = MODEL_SAMPLE_RATE_HZ // DECIMATION
_LAG_MAX = int(_RATE / F0_MIN_HZ)  # 133
_LAG_MIN = int(_RATE / F0_MAX_HZ)  # 17
_SPAN = PITCH_WINDOW // DECIMATION - _LAG_MAX  # samples each difference sums over
_FFT = 512  # >= the window: the correlation of its head with it does not wrap
# Constants of the search: lags 1 .. _LAG_MAX, where the energy of the span shifted by each starts and
# ends in the energy's cumulative sum; per searched lag (_LAG_MIN on), a key that ranks dips by lag
# ahead of any value, and the octaves above REFERENCE_HZ of its period.
_LAGS = torch.arange(1, _LAG_MAX + 1)
_SHIFTED_SPAN = torch.stack([_LAGS + _SPAN, _LAGS])
_DIP_KEY = _LAGS[_LAG_MIN - 1 :].float() - 1e6
_OCTAVES = torch.log2(_RATE / _LAGS[_LAG_MIN - 1 :].double() / REFERENCE_HZ).float()


def pitch_of_windows(windows: Tensor) -> Tensor:
    """(n, PITCH_WINDOW) model-rate samples -> (n, N_PITCH) float32: periodicity, voiced_octaves.
    Written in few, batched operations: at small batches their number, not the arithmetic, is the cost."""
    device = windows.device
    x = windows.float().reshape(windows.shape[0], -1, DECIMATION).mean(-1)  # (n, 320) at 8 kHz
    x = x - x.mean(-1, keepdim=True)
    spectrum = torch.fft.rfft(x, n=_FFT) * torch.fft.rfft(x[:, :_SPAN], n=_FFT).conj()
    cross = torch.fft.irfft(spectrum, n=_FFT)[:, 1 : _LAG_MAX + 1]  # sum_j<span x_j x_j+lag
    energy = torch.nn.functional.pad(x.square().cumsum(-1), (1, 0))  # energy[k] = sum_j<k x_j^2
    ends = energy[:, _SHIFTED_SPAN.to(device)]  # (n, 2, lags)
    # YIN's difference d(lag) = sum_j<span (x_j - x_j+lag)^2, over the mean of d up to that lag (1, no
    # period, where the window is silent).
    difference = (energy[:, _SPAN : _SPAN + 1] + ends[:, 0] - ends[:, 1] - 2 * cross).clamp(min=0.0)
    normalised = (difference * _LAGS.to(device) + 1e-9) / (difference.cumsum(-1) + 1e-9)
    search = normalised[:, _LAG_MIN - 1 :]
    # YIN's choice: the shortest period at a local minimum under the threshold, else the lowest minimum.
    lowest_near = -torch.nn.functional.max_pool1d(-search[:, None], 3, 1, 1)[:, 0]
    dips = (search <= lowest_near) & (search < YIN_THRESHOLD)
    best = torch.where(dips, _DIP_KEY.to(device), search).argmin(-1, keepdim=True)
    periodicity = (1.0 - search.gather(-1, best)).clamp(0.0, 1.0)
    return torch.cat([periodicity, periodicity * _OCTAVES.to(device)[best]], dim=-1)


def pitch_frames(model_audio: np.ndarray, n_frames: int, first_frame: int = 0) -> np.ndarray:
    """(n_frames, N_PITCH) float32 for frames first_frame.. of a model-rate signal whose sample 0 is the
    stream's first (earlier samples are silence), as the server computes them."""
    padded = np.concatenate([np.zeros(PITCH_WINDOW), np.asarray(model_audio, np.float64)])
    starts = (np.arange(first_frame, first_frame + n_frames) + 1) * HOP_LENGTH
    if n_frames and starts[-1] + PITCH_WINDOW > padded.size:
        padded = np.concatenate([padded, np.zeros(starts[-1] + PITCH_WINDOW - padded.size)])
    return _pitch_at(padded, starts)


def _pitch_at(samples: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(len(starts), N_PITCH) float32: the pitch of the windows of `samples` that begin at `starts`."""
    if starts.size == 0:
        return np.zeros((0, N_PITCH), np.float32)
    windows = samples[starts[:, None] + np.arange(PITCH_WINDOW)[None, :]]
    with torch.no_grad():
        return pitch_of_windows(torch.from_numpy(windows)).numpy()


def model_rate(pcm: np.ndarray, rate_hz: int) -> np.ndarray:
    """A whole signal resampled to the model rate as the front-end does (the resampler's tail included)."""
    return Resampler(rate_hz, MODEL_SAMPLE_RATE_HZ).offline(validate_pcm(pcm, rate_hz, None))


class PitchFrontEnd:
    """Pitch frames of one stream chunk by chunk, the same as `pitch_frames` of the whole signal: its own
    resampler to the model rate and the samples of the next window kept between chunks."""

    def __init__(self, input_rate_hz: int) -> None:
        self.input_rate_hz = input_rate_hz
        self.resampler = Resampler(input_rate_hz, MODEL_SAMPLE_RATE_HZ)
        self.pending = np.zeros(PITCH_WINDOW - HOP_LENGTH)  # the first window starts in silence
        self.state = self.resampler.init_state()

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Consumes a chunk; returns the (n_new, N_PITCH) frames it completes."""
        resampled, self.state = self.resampler.push(self.state, validate_pcm(pcm, self.input_rate_hz, None))
        self.pending = np.concatenate([self.pending, resampled])
        n_new = max(0, (self.pending.size - PITCH_WINDOW) // HOP_LENGTH + 1)
        frames = _pitch_at(self.pending, np.arange(n_new) * HOP_LENGTH)
        self.pending = self.pending[n_new * HOP_LENGTH :]
        return frames
