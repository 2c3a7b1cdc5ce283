"""Streaming audio front-end: PCM chunks at any supported rate -> log-mel frames, with explicit state.

`LogMelFrontEnd.push(state, pcm)` is pure: it returns the feature frames completed by this chunk and a
new state. Feeding a signal in chunks of any sizes, then `flush`, gives the same frames as one call on the
whole signal. Everything runs in float64 and is cast to float32 at the end.

Timing: feature frame j covers model-rate samples [(j+1)*HOP - WIN, (j+1)*HOP) and stands for media time
(j+1) * HOP_LENGTH / MODEL_SAMPLE_RATE_HZ seconds (its newest sample). The resampler is zero-phase, so it
adds no shift, only `resampler_delay_s` of waiting for future input samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from emostream.runtime.errors import AudioFormatError

MODEL_SAMPLE_RATE_HZ = 24_000
HOP_LENGTH = 200  # 8.33 ms: 120 frames/s, 2 per face frame at 60 fps, 4 per body frame at 30 fps
WIN_LENGTH = 480  # 20 ms analysis window
N_FFT = 512
N_MELS = 80
FMIN_HZ = 40.0
FMAX_HZ = 8_000.0  # the band 16 kHz input carries in full; telephone audio is handled by augmentation
FEATURE_RATE_HZ = MODEL_SAMPLE_RATE_HZ / HOP_LENGTH  # 120 frames per second
LOG_FLOOR = 1e-6  # added to mel power before the log, so silence maps to about -13.8
SILENT_LOG_MEL = math.log(LOG_FLOOR)  # a log-mel value of silence, which also precedes every stream

SUPPORTED_RATES_HZ: tuple[int, ...] = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
MAX_CHUNK_SECONDS = 5.0  # larger chunks are a client bug or an attack, not streaming
MAX_FLOAT_PEAK = 2.0  # float PCM is nominally in [-1, 1]; far beyond that is int16 data sent as float

_RESAMPLER_ZERO_CROSSINGS = 16  # sinc lobes on each side of the centre tap
_RESAMPLER_ROLLOFF = 0.94  # cutoff as a fraction of the lower Nyquist frequency
_POLYPHASE_LOOP_MAX_UP = 8  # up to this many phases, filter phase by phase (strided views); beyond, gather
_KAISER_BETA = 8.6


def validate_pcm(pcm: np.ndarray, sample_rate_hz: int, max_seconds: float | None = MAX_CHUNK_SECONDS) -> np.ndarray:
    """Checks a mono PCM chunk and returns it as float64 in [-1, 1].

    Accepts 1-D int16 (full scale 32768) or float32 (full scale 1.0). Raises AudioFormatError on another
    dtype or shape, an unsupported rate, a chunk over MAX_CHUNK_SECONDS, or non-finite samples.
    """
    if sample_rate_hz not in SUPPORTED_RATES_HZ:
        raise AudioFormatError(f"sample rate {sample_rate_hz} Hz is not supported; use one of {SUPPORTED_RATES_HZ}")
    if not isinstance(pcm, np.ndarray):
        raise AudioFormatError(f"PCM must be a numpy array, got {type(pcm).__name__}")
    if pcm.ndim != 1:
        raise AudioFormatError(f"PCM must be mono with shape (n_samples,), got shape {pcm.shape}")
    if max_seconds is not None and pcm.shape[0] > int(max_seconds * sample_rate_hz):
        raise AudioFormatError(
            f"chunk of {pcm.shape[0]} samples is over the limit of "
            f"{int(max_seconds * sample_rate_hz)} ({max_seconds} s)"
        )
    if pcm.dtype == np.int16:
        return pcm.astype(np.float64) / 32768.0
    if pcm.dtype != np.float32:
        raise AudioFormatError(f"PCM dtype must be int16 or float32, got {pcm.dtype}")
    samples = pcm.astype(np.float64)
    if not np.all(np.isfinite(samples)):
        raise AudioFormatError("PCM contains NaN or infinite samples")
    if samples.size and np.max(np.abs(samples)) > MAX_FLOAT_PEAK:
        raise AudioFormatError(
            f"float32 PCM must be in [-1, 1]; peak is {np.max(np.abs(samples)):.1f} (int16 values sent as float?)"
        )
    return samples


@dataclass(frozen=True)
class ResamplerState:
    """Input samples still needed by future outputs, and counters."""

    history: np.ndarray  # float64 (n,), input samples from absolute index history_start on
    history_start: int  # absolute input index of history[0]; negative indices are silence
    n_in: int  # real input samples received so far
    n_out: int  # output samples produced so far


class Resampler:
    """Polyphase windowed-sinc resampler by the rational factor up/down, streaming and zero-phase.

    Output sample n sits at input position n * down / up. It is emitted once the input reaches that
    position plus `half_width` samples: the resampler's only latency.
    """

    def __init__(self, input_rate_hz: int, output_rate_hz: int) -> None:
        g = math.gcd(input_rate_hz, output_rate_hz)
        self.up, self.down = output_rate_hz // g, input_rate_hz // g
        self.input_rate_hz, self.output_rate_hz = input_rate_hz, output_rate_hz
        ratio = min(1.0, self.up / self.down)
        self.half_width = 0 if self.up == self.down else math.ceil(_RESAMPLER_ZERO_CROSSINGS / ratio)
        self._cutoff = ratio * _RESAMPLER_ROLLOFF

    @cached_property
    def taps(self) -> np.ndarray:
        """(up, 2 * half_width) filter weights; row r serves outputs n with n % up == r."""
        W = self.half_width
        offsets = np.arange(-W + 1, W + 1)  # input index relative to floor(position)
        phase_frac = (np.arange(self.up) * self.down % self.up) / self.up  # fractional input position
        t = phase_frac[:, None] - offsets[None, :]  # distance from output position to each input sample
        window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (t / W) ** 2, 0, None))) / np.i0(_KAISER_BETA)
        taps = self._cutoff * np.sinc(self._cutoff * t) * window
        return taps / taps.sum(axis=1, keepdims=True)  # unit gain at DC for every phase

    def init_state(self) -> ResamplerState:
        W = self.half_width
        return ResamplerState(history=np.zeros(2 * W), history_start=-2 * W, n_in=0, n_out=0)

    def push(self, state: ResamplerState, samples: np.ndarray) -> tuple[np.ndarray, ResamplerState]:
        """Returns the output samples that `samples` completes, and the new state."""
        if self.up == self.down:
            return samples, replace(state, n_in=state.n_in + samples.size, n_out=state.n_out + samples.size)
        return self._emit(state, samples, n_real=state.n_in + samples.size, limit=None)

    def flush(self, state: ResamplerState) -> tuple[np.ndarray, ResamplerState]:
        """Pads silence to emit every output that lies within the real input."""
        if self.up == self.down:
            return np.zeros(0), state
        limit = -(-state.n_in * self.up // self.down)  # outputs at input positions < n_in
        return self._emit(state, np.zeros(self.half_width + 1), n_real=state.n_in, limit=limit)

    def offline(self, samples: np.ndarray) -> np.ndarray:
        """A whole signal at once (float64): what pushing it in any chunks and flushing gives."""
        head, state = self.push(self.init_state(), np.asarray(samples, dtype=np.float64))
        return np.concatenate([head, self.flush(state)[0]])

    def _filter_by_phase(self, buffer: np.ndarray, n: np.ndarray, buffer_start: int) -> np.ndarray:
        """The outputs n, one correlation per phase: outputs of one phase are `down` input samples apart,
        so they are every `down`-th value of the buffer correlated with that phase's taps (no gather)."""
        W, up, down = self.half_width, self.up, self.down
        out = np.empty(n.size)
        for r in range(min(up, n.size)):
            first_n = int(n[r])
            count = (n.size - r + up - 1) // up
            first = first_n * down // up - W + 1 - buffer_start
            span = buffer[first : first + (count - 1) * down + 2 * W]
            out[r::up] = np.correlate(span, self.taps[first_n % up], "valid")[::down]
        return out

    def _emit(
        self, state: ResamplerState, samples: np.ndarray, n_real: int, limit: int | None
    ) -> tuple[np.ndarray, ResamplerState]:
        W, up, down = self.half_width, self.up, self.down
        buffer = np.concatenate([state.history, samples])
        newest = state.history_start + buffer.size - 1  # absolute index of the newest input sample
        # Output n is ready when floor(n * down / up) + W <= newest.
        n_end = max(state.n_out, ((newest - W + 1) * up + down - 1) // down)
        if limit is not None:
            n_end = min(n_end, limit)
        n = np.arange(state.n_out, n_end)
        if n.size == 0:
            out = np.zeros(0)
        elif up <= _POLYPHASE_LOOP_MAX_UP:
            out = self._filter_by_phase(buffer, n, state.history_start)
        else:
            base = n * down // up  # floor of each output's input position
            gather = base[:, None] + np.arange(-W + 1, W + 1)[None, :] - state.history_start
            out = np.sum(buffer[gather] * self.taps[n % up], axis=1)
        keep_from = (n_end * down // up) - W + 1  # first input the next output needs
        keep_from = min(keep_from, newest + 1)
        history = buffer[keep_from - state.history_start :]
        return out, ResamplerState(history=history, history_start=keep_from, n_in=n_real, n_out=n_end)


def mel_filterbank(
    sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin_hz: float = FMIN_HZ,
    fmax_hz: float = FMAX_HZ,
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale, each with unit area (Slaney)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges_hz = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin_hz)), hz_to_mel(np.array(fmax_hz)), n_mels + 2))
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (upper - lower))


@dataclass(frozen=True)
class FrontEndState:
    """Everything the front-end carries between chunks of one stream."""

    resampler: ResamplerState
    pending: np.ndarray  # float64 model-rate samples from the start of the next frame's window on
    n_frames: int  # feature frames emitted so far


class LogMelFrontEnd:
    """Resample to MODEL_SAMPLE_RATE_HZ and compute causal log-mel frames, chunk by chunk."""

    def __init__(self, input_rate_hz: int) -> None:
        if input_rate_hz not in SUPPORTED_RATES_HZ:
            raise AudioFormatError(f"sample rate {input_rate_hz} Hz is not supported; use one of {SUPPORTED_RATES_HZ}")
        self.input_rate_hz = input_rate_hz
        self.resampler = Resampler(input_rate_hz, MODEL_SAMPLE_RATE_HZ)
        self._window = np.hanning(WIN_LENGTH + 1)[:-1]  # periodic Hann
        self._filters = mel_filterbank()

    def newest_input_sample(self, end_s: float) -> int:
        """Index of the newest input sample that the feature frames ending at `end_s` (a multiple of the
        hop) depend on: their newest model-rate sample, plus the `half_width` input samples past it that
        the resampler waits for."""
        newest_model_sample = round(end_s * MODEL_SAMPLE_RATE_HZ) - 1
        r = self.resampler
        return newest_model_sample * r.down // r.up + r.half_width

    @property
    def resampler_delay_s(self) -> float:
        """Seconds of future input the resampler waits for before emitting a sample."""
        return self.resampler.half_width / self.input_rate_hz

    def init_state(self) -> FrontEndState:
        # The first window starts WIN - HOP samples before time 0, in silence.
        return FrontEndState(self.resampler.init_state(), np.zeros(WIN_LENGTH - HOP_LENGTH), 0)

    def push(
        self, state: FrontEndState, pcm: np.ndarray, max_seconds: float | None = MAX_CHUNK_SECONDS
    ) -> tuple[np.ndarray, FrontEndState]:
        """Consumes one PCM chunk; returns float32 (n_new_frames, N_MELS) log-mel frames and the new state."""
        samples = validate_pcm(pcm, self.input_rate_hz, max_seconds)
        resampled, resampler_state = self.resampler.push(state.resampler, samples)
        return self._frames(state, resampler_state, resampled)

    def flush(self, state: FrontEndState) -> tuple[np.ndarray, FrontEndState]:
        """Ends the stream: emits the frames that the resampler's tail completes."""
        resampled, resampler_state = self.resampler.flush(state.resampler)
        return self._frames(state, resampler_state, resampled)

    def offline(self, pcm: np.ndarray) -> np.ndarray:
        """All frames of a whole signal: the reference that chunked streaming must match."""
        first, state = self.push(self.init_state(), pcm, max_seconds=None)
        tail, _ = self.flush(state)
        return np.concatenate([first, tail])

    def frame_times_s(self, first_frame: int, n_frames: int) -> np.ndarray:
        """Media time in seconds (the newest sample) of frames first_frame .. first_frame + n_frames - 1."""
        return (np.arange(first_frame, first_frame + n_frames) + 1) * HOP_LENGTH / MODEL_SAMPLE_RATE_HZ

    def _frames(
        self, state: FrontEndState, resampler_state: ResamplerState, resampled: np.ndarray
    ) -> tuple[np.ndarray, FrontEndState]:
        pending = np.concatenate([state.pending, resampled])
        n_new = max(0, (pending.size - WIN_LENGTH) // HOP_LENGTH + 1)
        if n_new == 0:
            return np.zeros((0, N_MELS), np.float32), FrontEndState(resampler_state, pending, state.n_frames)
        starts = np.arange(n_new) * HOP_LENGTH
        windows = pending[starts[:, None] + np.arange(WIN_LENGTH)[None, :]] * self._window  # (n, WIN)
        spectrum = np.fft.rfft(windows, n=N_FFT, axis=1)
        power = spectrum.real**2 + spectrum.imag**2  # (n, N_FFT // 2 + 1); |.|**2 without the square root
        mel = power @ self._filters.T  # (n, N_MELS)
        features = np.log(mel + LOG_FLOOR).astype(np.float32)
        rest = pending[n_new * HOP_LENGTH :]
        return features, FrontEndState(resampler_state, rest, state.n_frames + n_new)


@functools.cache
def telephone_band_gain() -> np.ndarray:
    """(N_MELS,) float32: how much of each mel band's power the 8 kHz path (16 kHz audio resampled to 8 kHz
    and heard at that rate) keeps against the 16 kHz path: all of it in the bands centred up to 3.0 kHz, half
    at 3.5 kHz, none from 4 kHz on.
    Measured on seeded white noise (a flat spectrum within each band), so it is the resamplers' response,
    not any voice's. The face's closure head hears the features weighted by it (runtime/models/face.py)."""
    noise = np.random.default_rng(0).standard_normal(4 * 16_000) * 0.05
    wide = LogMelFrontEnd(16_000).offline(noise.astype(np.float32))
    narrow = LogMelFrontEnd(8_000).offline(Resampler(16_000, 8_000).offline(noise).astype(np.float32))
    n = min(len(wide), len(narrow))
    inner = slice(20, n - 20)  # away from the resamplers' start and end
    power = [np.clip(np.exp(f[inner].astype(np.float64)) - LOG_FLOOR, 0.0, None).sum(0) for f in (wide, narrow)]
    return np.minimum(power[1] / power[0], 1.0).astype(np.float32)
