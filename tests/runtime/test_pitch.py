import numpy as np
import pytest
import torch

from emostream.runtime.audio import HOP_LENGTH, MODEL_SAMPLE_RATE_HZ
from emostream.runtime.batched_frontend import MODEL_RING, BatchedLogMel
from emostream.runtime.pitch import PitchFrontEnd, model_rate, pitch_frames


def _voice_like(f0_hz: float, seconds: float = 0.5, rate: int = MODEL_SAMPLE_RATE_HZ) -> np.ndarray:
    """A buzz with falling harmonics, as a vowel's source: the fundamental is not the loudest partial."""
    t = np.arange(int(seconds * rate)) / rate
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0_hz * t + k) for k in range(1, 12)).astype(np.float32)


def _hz(frames: np.ndarray) -> np.ndarray:
    return 100.0 * 2 ** (frames[:, 1] / frames[:, 0])


@pytest.mark.parametrize("f0_hz", [75.0, 110.0, 180.0, 260.0, 400.0])
def test_a_steady_voice_reads_as_periodic_at_its_pitch(f0_hz: float) -> None:
    frames = pitch_frames(_voice_like(f0_hz), 40, first_frame=10)
    assert frames[:, 0].min() > 0.9
    np.testing.assert_allclose(_hz(frames), f0_hz, rtol=0.03)  # within half a semitone


def test_noise_and_silence_read_as_aperiodic() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, MODEL_SAMPLE_RATE_HZ).astype(np.float32)
    assert pitch_frames(noise, 60, first_frame=10)[:, 0].mean() < 0.4
    np.testing.assert_array_equal(pitch_frames(np.zeros(4800), 20), 0.0)  # no nan from a silent window


def test_chunks_give_the_whole_signal_frames_at_every_rate() -> None:
    for rate in (8_000, 16_000, 44_100, 48_000):
        hiss = np.random.default_rng(1).normal(0, 0.01, int(0.4 * rate)).astype(np.float32)
        pcm = _voice_like(140.0, 0.4, rate) + hiss
        front, chunks = PitchFrontEnd(rate), []
        for start in range(0, pcm.size, 333):
            chunks.append(front.push(pcm[start : start + 333]))
        streamed = np.concatenate(chunks)
        whole = pitch_frames(model_rate(pcm, rate), len(streamed))
        np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_the_server_front_end_reads_the_same_pitch_from_its_rings() -> None:
    audio = model_rate(_voice_like(120.0, 0.5), MODEL_SAMPLE_RATE_HZ)  # longer than the ring: it wraps
    n_frames = audio.size // HOP_LENGTH
    ring = torch.zeros(1, MODEL_RING.row)
    for hop in range(n_frames):  # written hop by hop, mirror included, as the server does
        position = hop * HOP_LENGTH % MODEL_RING.size
        samples = torch.from_numpy(audio[hop * HOP_LENGTH : (hop + 1) * HOP_LENGTH])
        ring[0, position : position + HOP_LENGTH] = samples
        if position < MODEL_RING.mirror:
            ring[0, MODEL_RING.size + position : MODEL_RING.size + position + HOP_LENGTH] = samples
    last = np.arange(n_frames - 20, n_frames)
    batched = BatchedLogMel().pitch(ring, np.zeros(20, np.int64), last).numpy()
    np.testing.assert_allclose(batched, pitch_frames(audio, n_frames)[last], atol=1e-4)
