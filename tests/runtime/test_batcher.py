import numpy as np
import pytest
import torch

from emostream.runtime.batcher import EmotionBlend, StreamBatcher
from emostream.runtime.errors import SessionError
from emostream.runtime.models.face import FaceConfig, FaceGenerator, FaceNetwork
from emostream.runtime.stream import emotion_vector

NEUTRAL = emotion_vector("neutral", 1.0)


@pytest.fixture(scope="module")
def generator() -> FaceGenerator:
    torch.manual_seed(0)
    return FaceGenerator(FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval(), lookahead=4)


def features(seed: int, n: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).normal(-5, 2, (n, 80)).astype(np.float32)


def drain(batcher: StreamBatcher) -> dict[int, list[np.ndarray]]:
    out: dict[int, list[np.ndarray]] = {}
    while batcher.ready():
        for frame in batcher.tick():
            out.setdefault(frame.slot, []).append(frame.values)
    return out


def test_a_stream_gives_the_same_frames_alone_or_beside_others_fed_at_other_times(generator: FaceGenerator) -> None:
    alone = StreamBatcher(generator, n_slots=3)
    a = alone.open(seed=1, emotion=NEUTRAL)
    alone.feed(a, features(1))
    expected = np.stack(drain(alone)[a])

    shared = StreamBatcher(generator, n_slots=3)
    other = shared.open(seed=9, emotion=emotion_vector("angry", 1.0))
    mine = shared.open(seed=1, emotion=NEUTRAL)
    got: list[np.ndarray] = []
    shared.feed(other, features(5, 100))
    for start in range(0, 60, 7):  # my audio arrives in uneven pieces while the other stream runs
        shared.feed(mine, features(1)[start : start + 7])
        for frame in shared.tick():
            if frame.slot == mine:
                got.append(frame.values)
    got += drain(shared).get(mine, [])
    assert len(got) == len(expected) == (60 + generator.prefix) // 2 - generator.delay
    # Another slot position may round differently in the last bit (BLAS blocking), nothing more.
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)


def test_full_batcher_refuses_and_a_closed_slot_starts_fresh(generator: FaceGenerator) -> None:
    batcher = StreamBatcher(generator, n_slots=1)
    slot = batcher.open(seed=1, emotion=NEUTRAL)
    with pytest.raises(SessionError, match="all 1 slots"):
        batcher.open(seed=2, emotion=NEUTRAL)
    batcher.feed(slot, features(1))
    first = np.stack(drain(batcher)[slot])
    batcher.close(slot)
    again = batcher.open(seed=1, emotion=NEUTRAL)
    batcher.feed(again, features(1))
    np.testing.assert_array_equal(np.stack(drain(batcher)[again]), first)  # no state left from before


def test_emotion_blend_reaches_the_target_linearly() -> None:
    blend = EmotionBlend(emotion_vector("neutral", 1.0))
    blend.set(emotion_vector("happy", 1.0), transition_ms=50)  # 3 frames at 60 fps
    steps = [blend.advance().copy() for _ in range(4)]
    np.testing.assert_allclose([s[1] for s in steps], [1 / 3, 2 / 3, 1, 1], atol=1e-6)
    np.testing.assert_allclose([s[0] for s in steps], [2 / 3, 1 / 3, 0, 0], atol=1e-6)
