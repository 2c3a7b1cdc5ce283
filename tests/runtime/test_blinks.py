"""Blinks drawn over the face model's eyelids: as long and as frequent as people's, a pure function of
seed and frame, and the model's own lids never held shut: at rest they sit where the mood puts them."""

import numpy as np

from emostream.runtime.blinks import LIDS, REST_LID, apply_blinks, blink_closure
from emostream.runtime.controls import emotion_vector
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS


def closed_runs_s(closure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate([[0], (closure > 0.5).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts / FACE_FPS, (ends - starts) / FACE_FPS


def test_ten_minutes_of_blinks_are_short_and_as_frequent_as_people_blink() -> None:
    frames = np.arange(10 * 60 * FACE_FPS)
    for seed in (0, 1, 12345):
        starts, lengths = closed_runs_s(blink_closure(np.full(frames.size, seed), frames))
        assert 140 <= starts.size <= 200  # 17 a minute
        assert lengths.min() >= 0.05 and lengths.max() <= 0.2  # the closed part of a 120-260 ms blink
        assert np.diff(starts).min() > 0.1  # never two at once


def test_a_blink_depends_only_on_seed_and_frame() -> None:
    frames = np.arange(3000)
    whole = blink_closure(np.full(frames.size, 7), frames)
    pieces = np.concatenate([blink_closure(np.full(n.size, 7), n) for n in np.array_split(frames, 37)])
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, blink_closure(np.full(frames.size, 8), frames))


def test_the_model_lids_rest_where_the_mood_puts_them_and_blinks_are_drawn_on_top() -> None:
    n = 20 * FACE_FPS
    face = np.full((n, len(FACE_CHANNELS)), 0.7, np.float32)  # eyes shut for 20 s, everything else at 0.7
    others = [i for i in range(len(FACE_CHANNELS)) if i not in LIDS]
    blinks = apply_blinks(np.zeros_like(face), np.full(n, 3), np.arange(n), np.zeros((n, 8)))[:, LIDS[0]]
    for emotion, intensity, rest in [("neutral", 1.0, 0.0), ("sad", 1.0, REST_LID["sad"]), ("sad", 0.5, 0.075)]:
        vector = np.tile(emotion_vector(emotion, intensity), (n, 1))
        out = apply_blinks(face, np.full(n, 3), np.arange(n), vector)
        np.testing.assert_array_equal(out[:, others], face[:, others])
        lids = out[:, LIDS[0]]
        np.testing.assert_allclose(lids, np.maximum(blinks, rest), atol=1e-6)
        _, lengths = closed_runs_s(lids)
        assert lengths.size > 2 and lengths.max() <= 0.2  # the 20 s closure is gone; only blinks close the eyes
    open_lids = np.full((n, len(FACE_CHANNELS)), 0.02, np.float32)  # lids the model leaves more open stay so
    sad = np.tile(emotion_vector("sad", 1.0), (n, 1))
    np.testing.assert_allclose(apply_blinks(open_lids, np.full(n, 3), np.arange(n), sad)[:, LIDS[0]],
                               np.maximum(blinks, 0.02), atol=1e-6)  # fmt: skip
