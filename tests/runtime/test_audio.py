import numpy as np
import pytest

from emostream.runtime import audio
from emostream.runtime.audio import LogMelFrontEnd, Resampler
from emostream.runtime.errors import AudioFormatError
from tests.fixtures import speech_sample


def feed_in_random_chunks(front_end: LogMelFrontEnd, pcm: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    state = front_end.init_state()
    frames, start = [], 0
    while start < pcm.size:
        size = int(rng.choice([0, 1, 7, 160, 441, 1000, int(rng.integers(1, 5000))]))
        chunk_frames, state = front_end.push(state, pcm[start : start + size])
        frames.append(chunk_frames)
        start += size
    tail, state = front_end.flush(state)
    frames.append(tail)
    assert state.n_frames == sum(f.shape[0] for f in frames)
    return np.concatenate(frames)


@pytest.mark.parametrize("rate", audio.SUPPORTED_RATES_HZ)
def test_random_chunks_of_a_speech_file_equal_one_offline_call(rate: int) -> None:
    pcm = speech_sample(rate)
    front_end = LogMelFrontEnd(rate)
    offline = front_end.offline(pcm)
    for seed in range(3):
        streamed = feed_in_random_chunks(front_end, pcm, seed)
        assert streamed.shape == offline.shape
        assert np.max(np.abs(streamed - offline)) < 1e-4
    # One frame per hop of model-rate audio that the file spans.
    expected = round(pcm.size * audio.MODEL_SAMPLE_RATE_HZ / rate) // audio.HOP_LENGTH
    assert abs(offline.shape[0] - expected) <= 1


def test_int16_and_float32_input_give_the_same_features() -> None:
    pcm = speech_sample(16_000)
    as_float = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
    front_end = LogMelFrontEnd(16_000)
    np.testing.assert_allclose(front_end.offline(pcm), front_end.offline(as_float), atol=1e-4)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000])
def test_resampler_keeps_a_sine_in_band(rate: int) -> None:
    frequency_hz, seconds = 1_000.0, 0.5
    t_in = np.arange(int(rate * seconds)) / rate
    resampler = Resampler(rate, audio.MODEL_SAMPLE_RATE_HZ)
    out, state = resampler.push(resampler.init_state(), np.sin(2 * np.pi * frequency_hz * t_in))
    t_out = np.arange(out.size) / audio.MODEL_SAMPLE_RATE_HZ
    ideal = np.sin(2 * np.pi * frequency_hz * t_out)
    settled = slice(200, out.size)  # skip the start, where the filter sees silence before time 0
    assert np.max(np.abs(out[settled] - ideal[settled])) < 1e-3  # zero phase and unit gain
    assert out.size == state.n_out


def test_resampler_removes_content_above_the_new_nyquist() -> None:
    rate = 48_000
    t = np.arange(rate) / rate
    resampler = Resampler(rate, audio.MODEL_SAMPLE_RATE_HZ)
    out, _ = resampler.push(resampler.init_state(), np.sin(2 * np.pi * 15_000 * t))
    assert np.sqrt(np.mean(out[500:-500] ** 2)) < 1e-3  # 15 kHz would alias to 9 kHz


def test_a_tone_lights_up_the_mel_band_that_holds_it() -> None:
    rate = 24_000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32)
    features = LogMelFrontEnd(rate).offline(tone)
    peak_band = int(np.argmax(features[50]))
    filters = audio.mel_filterbank()
    bin_hz = np.fft.rfftfreq(audio.N_FFT, 1 / rate)
    centre_hz = bin_hz[np.argmax(filters[peak_band])]
    assert abs(centre_hz - 1_000) < 150


def test_features_are_causal() -> None:
    pcm = speech_sample(16_000)
    front_end = LogMelFrontEnd(16_000)
    base = front_end.offline(pcm)
    changed = pcm.copy()
    cut = 12_000  # 0.75 s at 16 kHz
    changed[cut:] = 0
    altered = front_end.offline(changed)
    # Frames whose window ends before the change (less the resampler's look-ahead) are untouched.
    cut_model = cut * audio.MODEL_SAMPLE_RATE_HZ / 16_000 - front_end.resampler.half_width * 1.5
    last_safe = int(cut_model // audio.HOP_LENGTH) - 1
    np.testing.assert_array_equal(base[:last_safe], altered[:last_safe])
    assert not np.allclose(base[last_safe + 3 :], altered[last_safe + 3 :])


def test_frame_times_are_the_newest_sample_of_each_window() -> None:
    front_end = LogMelFrontEnd(48_000)
    np.testing.assert_allclose(front_end.frame_times_s(0, 3), [1 / 120, 2 / 120, 3 / 120])
    assert front_end.resampler_delay_s < 0.003


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (np.array([0.0, np.nan], np.float32), 16_000, "NaN"),
        (np.array([0.0, np.inf], np.float32), 16_000, "NaN or infinite"),
        (np.zeros(10, np.float64), 16_000, "dtype"),
        (np.zeros(10, np.int32), 16_000, "dtype"),
        (np.zeros((10, 2), np.float32), 16_000, "mono"),
        (np.zeros(16_000 * 6, np.float32), 16_000, "over the limit"),
        (np.full(10, 3000.0, np.float32), 16_000, "int16 values sent as float"),
        (np.zeros(10, np.float32), 11_025, "not supported"),
    ],
)
def test_bad_audio_is_rejected_with_a_clear_error(pcm: np.ndarray, rate: int, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        audio.validate_pcm(pcm, rate)


def test_front_end_rejects_an_unsupported_rate_up_front() -> None:
    with pytest.raises(AudioFormatError, match="11025"):
        LogMelFrontEnd(11_025)
    front_end = LogMelFrontEnd(16_000)
    with pytest.raises(AudioFormatError):
        front_end.push(front_end.init_state(), np.array([np.nan], np.float32))
