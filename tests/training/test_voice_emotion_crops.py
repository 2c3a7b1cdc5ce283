import numpy as np

from emostream.runtime.audio import N_MELS
from emostream.runtime.models.voice_emotion import SILENT_LOG_MEL
from emostream.runtime.pitch import N_PITCH
from emostream.training.train_voice_emotion import crop_batch


def test_crops_of_short_takes_are_padded_with_silence_of_no_pitch() -> None:
    width = N_MELS + N_PITCH
    takes = [np.full((30, width), 1.0, np.float16), np.full((40, width), 2.0, np.float16)]
    x, y, _, _ = crop_batch(np.random.default_rng(0), takes, np.array([3, 5]), [], batch=4)
    assert x.shape[2] == width and set(y.tolist()) <= {3, 5}
    for row in x.numpy():
        spoken = row[:, 0] > 0
        assert spoken[:30].all() and not spoken[40:].any()  # a crop starts with its take, then silence
        np.testing.assert_array_equal(row[~spoken, :N_MELS], np.float32(SILENT_LOG_MEL))
        np.testing.assert_array_equal(row[~spoken, N_MELS:], 0.0)
