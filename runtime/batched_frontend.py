"""The log-mel front-end for many streams at once: a few batched tensor operations per tick, whatever the
number of streams.

Two stages, each batched over every stream that has new audio:

1. **Resampling by hops.** Hop h is the model-rate samples [h * HOP, (h + 1) * HOP). The polyphase
   resampler (runtime/audio.Resampler) is linear, and the alignment of a hop on the input grid repeats
   every `period` hops (P = up / gcd(up, HOP_LENGTH) for a rate ratio up/down), so for one input rate a
   hop is `x[first(h) : first(h) + length] @ hop_matrices[h % P]`. The hops of every stream with the same
   rate and phase are gathered from the streams' input rings and multiplied at once, then written to a
   model-rate ring per stream (at 24 kHz they are copied).
2. **Log-mel frames.** Feature frame j is the window of model samples [(j + 1) * HOP - WIN, (j + 1) * HOP),
   which ends with hop j: windows of every stream are gathered from the model-rate rings, then Hann
   window, one batched FFT, power, mel filters and log.

Rings are mirrored (`MirroredRing`): any window shorter than the mirror is contiguous, so a gather is one
row copy per window rather than an index per sample. The result equals `LogMelFrontEnd` (float64 NumPy,
the reference that training uses) to float32 rounding at every supported rate
(tests/runtime/test_batched_frontend.py). Samples before the first are silence (rings start zeroed); the
end of a stream is silence too: the server appends zeros after the last chunk, which is what
`LogMelFrontEnd.flush` pads with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.audio import (
    HOP_LENGTH,
    LOG_FLOOR,
    MODEL_SAMPLE_RATE_HZ,
    N_FFT,
    SUPPORTED_RATES_HZ,
    WIN_LENGTH,
    Resampler,
    mel_filterbank,
)
from emostream.runtime.audio_table import INPUT_RING, MirroredRing
from emostream.runtime.pitch import PITCH_WINDOW, pitch_of_windows

MODEL_RING_SAMPLES = 40 * HOP_LENGTH  # per stream, a whole number of hops: 333 ms at 24 kHz
MODEL_MIRROR_SAMPLES = 5 * HOP_LENGTH  # covers a window (480 samples; 960 for pitch) starting anywhere in the ring
# A longer backlog waits for the next tick:
MAX_HOPS_PER_TICK = (MODEL_RING_SAMPLES - max(WIN_LENGTH, PITCH_WINDOW)) // HOP_LENGTH


MODEL_RING = MirroredRing(MODEL_RING_SAMPLES, MODEL_MIRROR_SAMPLES)


@dataclass(frozen=True)
class RatePlan:
    """Where each hop of a stream at one input rate reads its input samples, and the matrices that
    resample them."""

    rate_hz: int
    period: int  # P: hops after which the alignment on the input grid repeats
    shift: int  # input samples between hop h and hop h + P
    first: np.ndarray  # (P,) int64: input index of the first sample hop p (< P) reads; negative is silence
    last: np.ndarray  # (P,) int64: input index of the newest sample hop p depends on (the resampler's wait)
    length: int  # input samples one hop reads (the longest phase's; shorter ones have zero rows)
    matrices: np.ndarray | None  # (P, length, HOP) float64: input samples -> model-rate samples; None: a copy

    def hops_ready(self, n_samples: np.ndarray) -> np.ndarray:
        """How many hops (and so feature frames) the first `n_samples` input samples complete."""
        n = np.asarray(n_samples, np.int64)[..., None]
        return np.maximum(0, (n - 1 - self.last) // self.shift + 1).sum(axis=-1)

    def newest_sample(self, hop: np.ndarray) -> np.ndarray:
        """Input index of the newest sample that hop (and feature frame) `hop` depends on."""
        hop = np.asarray(hop, np.int64)
        return self.last[hop % self.period] + (hop // self.period) * self.shift

    def starts(self, hop: np.ndarray) -> np.ndarray:
        hop = np.asarray(hop, np.int64)
        return self.first[hop % self.period] + (hop // self.period) * self.shift


def rate_plan(rate_hz: int) -> RatePlan:
    """The hop matrices of one input rate: model sample n is sum_m x[n * down // up - W + 1 + m] *
    taps[n % up, m] (Resampler._emit), collected per hop phase."""
    resampler = Resampler(rate_hz, MODEL_SAMPLE_RATE_HZ)
    up, down, W = resampler.up, resampler.down, resampler.half_width
    period = up // math.gcd(up, HOP_LENGTH)
    n0 = np.arange(period) * HOP_LENGTH  # first model sample of hops 0 .. P - 1
    if up == down:
        first = n0.copy()
        return RatePlan(rate_hz, period, HOP_LENGTH, first, first + HOP_LENGTH - 1, HOP_LENGTH, None)
    first = n0 * down // up - W + 1
    last = (n0 + HOP_LENGTH - 1) * down // up + W
    length = int((last - first).max()) + 1
    assert length <= INPUT_RING.mirror
    matrices = np.zeros((period, length, HOP_LENGTH))
    for p in range(period):
        n = n0[p] + np.arange(HOP_LENGTH)
        rows = (n * down // up - W + 1 - first[p])[:, None] + np.arange(2 * W)[None, :]  # (HOP, 2W)
        columns = np.broadcast_to(np.arange(HOP_LENGTH)[:, None], rows.shape)
        np.add.at(matrices[p], (rows, columns), resampler.taps[n % up])
    return RatePlan(rate_hz, period, period * HOP_LENGTH * down // up, first, last, length, matrices)


class BatchedLogMel:
    """Hops and log-mel frames of many streams, from their input rings into their model-rate rings.

    `inputs`: (n_slots, INPUT_RING.row) float32, stream s's input sample i at ring position i (mirrored);
    `model`: (n_slots, MODEL_RING.row) float32 on this front-end's device, a row zeroed when its stream
    starts. Input samples before a stream's first are read from the end of its (zeroed) row.
    """

    def __init__(self, device: torch.device | str = "cpu", rates: tuple[int, ...] = SUPPORTED_RATES_HZ) -> None:
        self.device = torch.device(device)
        self.plans = {rate: rate_plan(rate) for rate in rates}
        self._matrices = {  # (P, length, HOP)
            rate: torch.from_numpy(plan.matrices).to(self.device, torch.float32)
            for rate, plan in self.plans.items()
            if plan.matrices is not None
        }
        self._window = torch.from_numpy(np.hanning(WIN_LENGTH + 1)[:-1]).to(self.device, torch.float32)
        self._filters = torch.from_numpy(mel_filterbank().T.copy()).to(self.device, torch.float32)  # (bins, mels)

    def resample_hops(self, inputs: Tensor, model: Tensor, rate_hz: int, slots: np.ndarray, hops: np.ndarray) -> None:
        """Computes hops `hops[i]` of streams `slots[i]` (all at `rate_hz`) into their model-rate rings.
        The caller guarantees the input is there (plan.hops_ready) and not yet overwritten."""
        plan = self.plans[rate_hz]
        slots, hops = np.asarray(slots, np.int64), np.asarray(hops, np.int64)
        starts = torch.from_numpy(plan.starts(hops) % INPUT_RING.size)
        samples = inputs.unfold(1, plan.length, 1)[torch.from_numpy(slots), starts].to(self.device)  # (n, length)
        if plan.matrices is not None:
            # One product per phase present, on that phase's hops (a product of every hop with every
            # phase's matrix would do P times the arithmetic).
            phases = hops % plan.period
            resampled = samples.new_empty(hops.size, HOP_LENGTH)
            for phase in np.unique(phases):
                chosen = torch.from_numpy(np.flatnonzero(phases == phase)).to(self.device)
                resampled[chosen] = samples[chosen] @ self._matrices[rate_hz][int(phase)]
            samples = resampled
        self._write_hops(model, slots, (hops * HOP_LENGTH) % MODEL_RING.size, samples)

    def _write_hops(self, model: Tensor, slots: np.ndarray, positions: np.ndarray, samples: Tensor) -> None:
        """Hop-aligned writes into the model-rate rings, mirror included."""
        hops_view = model.unfold(1, HOP_LENGTH, HOP_LENGTH)  # (n_slots, row / HOP, HOP), a view
        rows = torch.from_numpy(slots).to(self.device)
        hops_view[rows, torch.from_numpy(positions // HOP_LENGTH).to(self.device)] = samples
        mirrored = positions < MODEL_RING.mirror
        if mirrored.any():
            chosen = torch.from_numpy(np.flatnonzero(mirrored)).to(self.device)
            mirror_hops = torch.from_numpy((positions[mirrored] + MODEL_RING.size) // HOP_LENGTH).to(self.device)
            hops_view[rows[chosen], mirror_hops] = samples[chosen]

    def frames(self, model: Tensor, slots: np.ndarray, frames: np.ndarray) -> Tensor:
        """Feature frames `frames[i]` of streams `slots[i]` from their model-rate rings (the hops up to each
        frame must be computed): (n, N_MELS) float32."""
        windows = self._windows(model, slots, frames, WIN_LENGTH) * self._window
        power = torch.view_as_real(torch.fft.rfft(windows, n=N_FFT, dim=1)).square().sum(-1)  # (n, N_BINS)
        return torch.log_((power @ self._filters).add_(LOG_FLOOR))

    def pitch(self, model: Tensor, slots: np.ndarray, frames: np.ndarray) -> Tensor:
        """Pitch frames (runtime/pitch.py) `frames[i]` of streams `slots[i]`, as `frames` reads log-mel:
        (n, N_PITCH) float32."""
        return pitch_of_windows(self._windows(model, slots, frames, PITCH_WINDOW))

    def _windows(self, model: Tensor, slots: np.ndarray, frames: np.ndarray, length: int) -> Tensor:
        """(n, length): the model-rate samples of stream `slots[i]` that end with frame `frames[i]`'s hop."""
        starts = (np.asarray(frames, np.int64) * HOP_LENGTH + HOP_LENGTH - length) % MODEL_RING.size
        rows = torch.from_numpy(np.asarray(slots, np.int64)).to(self.device)
        return model.unfold(1, length, 1)[rows, torch.from_numpy(starts).to(self.device)]
