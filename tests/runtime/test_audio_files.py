from pathlib import Path

import numpy as np
import pytest
import soundfile

from emostream.runtime.audio_files import chunks, read_audio
from emostream.runtime.errors import AudioFormatError
from tests.fixtures import DATA


def test_reads_a_wav_as_float_mono() -> None:
    samples, rate = read_audio(DATA / "speech_16000.wav")
    assert rate == 16_000 and samples.dtype == np.float32 and samples.ndim == 1
    assert 0.1 < np.max(np.abs(samples)) <= 1.0


def test_stereo_flac_is_averaged_to_mono(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 4_800, dtype=np.float32)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, -left], axis=1), 48_000)
    samples, rate = read_audio(path)
    assert rate == 48_000
    np.testing.assert_allclose(samples, 0.0, atol=1e-4)


def test_unsupported_rate_and_unreadable_files_give_clear_errors(tmp_path: Path) -> None:
    odd = tmp_path / "odd.wav"
    soundfile.write(odd, np.zeros(100, np.float32), 11_025)
    with pytest.raises(AudioFormatError, match="11025 Hz is not supported"):
        read_audio(odd)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioFormatError, match="cannot read"):
        read_audio(junk)


def test_chunks_cover_the_signal_without_overlap() -> None:
    samples = np.arange(1_000, dtype=np.float32)
    parts = chunks(samples, 16_000, 20.0)
    assert [start for start, _ in parts] == [0, 320, 640, 960]
    np.testing.assert_array_equal(np.concatenate([c for _, c in parts]), samples)
