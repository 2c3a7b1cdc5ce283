"""The face training batches: each frame's teacher viseme stays on its frame through speed perturbation."""

import numpy as np

from emostream.runtime.audio import N_MELS
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.face_data import FaceExample
from emostream.training.train_face import make_batch, stretch, stretch_labels


def test_stretched_labels_follow_the_stretched_curves_and_keep_their_length() -> None:
    labels = np.repeat(np.arange(6), [5, 3, 7, 2, 6, 4])
    for scale in (0.9, 1.0, 1.13):
        stretched = stretch_labels(labels, scale)
        curves = stretch(np.eye(6, dtype=np.float32)[labels], scale)
        assert stretched.shape == (curves.shape[0],)
        # Away from a change of label, the nearest frame's label is the curve's largest weight.
        assert np.mean(stretched == curves.argmax(1)) > 0.85
        assert set(stretched) == set(labels)


def test_a_batch_carries_each_frame_s_viseme_with_its_face_at_every_time_scale() -> None:
    rng = np.random.default_rng(0)
    visemes = np.repeat(rng.integers(0, 15, 12), 6).astype(np.int8)  # (72,) frames
    faces = np.zeros((visemes.size, len(FACE_CHANNELS)), np.float16)
    faces[:, 0] = visemes / 20  # the viseme written into a face channel, to follow it through the batch
    def example(scale: float) -> FaceExample:
        features = np.zeros((int(2 * visemes.size * scale) + 8, N_MELS), np.float16)
        neutral, closure = np.eye(8, dtype=np.float32)[0], np.zeros(visemes.size, np.float16)
        return FaceExample(features=[features], faces=[faces], emotions=[neutral], visemes=visemes,
                           closure=closure, time_scales=[scale])  # fmt: skip

    examples = [example(scale) for scale in (1.0, 0.9, 1.12)]
    batch = make_batch(examples, rng, lookahead=7)
    mask = batch["mask"].numpy() > 0
    written = np.rint(batch["target"][..., 0].numpy() * 20)
    assert batch["visemes"].shape == mask.shape
    agree = (written == batch["visemes"].numpy())[mask]
    assert agree.mean() > 0.85  # all but frames at a change, where the stretched curve is between two
