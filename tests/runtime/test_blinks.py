"""Blinks drawn over the face model's eyelids: as long as people's and as frequent as the teacher's in
each mood, a pure function of seed, frame and mood, and the model's own lids never held shut: at rest
they sit where the mood puts them."""

import numpy as np
import pytest

from emostream.runtime.blinks import LIDS, REST_LID, apply_blinks, blink_closure
from emostream.runtime.controls import emotion_vector
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS


def closed_runs_s(closure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate([[0], (closure > 0.5).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts / FACE_FPS, (ends - starts) / FACE_FPS


def _in(emotion: str, intensity: float, n: int) -> np.ndarray:
    return np.tile(emotion_vector(emotion, intensity), (n, 1))


MOODS = [("neutral", 1.0, 17), ("fear", 1.0, 26), ("surprised", 1.0, 8), ("surprised", 0.5, 12.5)]


@pytest.mark.parametrize(("emotion", "intensity", "per_minute"), MOODS)
def test_ten_minutes_of_blinks_are_short_and_as_frequent_as_people_blink_in_that_mood(
    emotion: str, intensity: float, per_minute: float
) -> None:
    frames = np.arange(10 * 60 * FACE_FPS)
    for seed in (0, 1, 12345):
        starts, lengths = closed_runs_s(
            blink_closure(np.full(frames.size, seed), frames, _in(emotion, intensity, frames.size))
        )
        assert abs(starts.size / 10 - per_minute) <= 0.2 * per_minute
        assert lengths.min() >= 0.05 and lengths.max() <= 0.2  # the closed part of a 120-260 ms blink
        assert np.diff(starts).min() > 0.1  # never two at once


def test_a_blink_depends_only_on_seed_frame_and_mood_and_a_calmer_mood_drops_some() -> None:
    frames = np.arange(3000)
    neutral = _in("neutral", 1.0, frames.size)
    whole = blink_closure(np.full(frames.size, 7), frames, neutral)
    pieces = np.concatenate([blink_closure(np.full(n.size, 7), n, neutral[n]) for n in np.array_split(frames, 37)])
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, blink_closure(np.full(frames.size, 8), frames, neutral))
    surprised = blink_closure(np.full(frames.size, 7), frames, _in("surprised", 1.0, frames.size))
    assert np.all((surprised == whole) | (surprised == 0))  # the same blinks, fewer of them
    assert closed_runs_s(surprised)[0].size < closed_runs_s(whole)[0].size


def test_the_model_lids_rest_where_the_mood_puts_them_and_blinks_are_drawn_on_top() -> None:
    n = 20 * FACE_FPS
    face = np.full((n, len(FACE_CHANNELS)), 0.7, np.float32)  # eyes shut for 20 s, everything else at 0.7
    others = [i for i in range(len(FACE_CHANNELS)) if i not in LIDS]
    for emotion, intensity, rest in [("neutral", 1.0, 0.0), ("sad", 1.0, REST_LID["sad"]), ("sad", 0.5, 0.075)]:
        vector = _in(emotion, intensity, n)
        blinks = blink_closure(np.full(n, 3), np.arange(n), vector)
        out = apply_blinks(face, np.full(n, 3), np.arange(n), vector)
        np.testing.assert_array_equal(out[:, others], face[:, others])
        lids = out[:, LIDS[0]]
        np.testing.assert_allclose(lids, np.maximum(blinks, rest), atol=1e-6)
        _, lengths = closed_runs_s(lids)
        assert lengths.size > 2 and lengths.max() <= 0.2  # the 20 s closure is gone; only blinks close the eyes
    open_lids = np.full((n, len(FACE_CHANNELS)), 0.02, np.float32)  # lids the model leaves more open stay so
    sad = _in("sad", 1.0, n)
    lids = apply_blinks(open_lids, np.full(n, 3), np.arange(n), sad)[:, LIDS[0]]
    np.testing.assert_allclose(lids, np.maximum(blink_closure(np.full(n, 3), np.arange(n), sad), 0.02), atol=1e-6)
