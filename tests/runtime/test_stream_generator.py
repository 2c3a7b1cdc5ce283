import math

import numpy as np
import pytest
import torch

from emostream.runtime.controls import emotion_vector
from emostream.runtime.models.face import FaceConfig, FaceGenerator, FaceNetwork
from emostream.runtime.stream import GeneratorStream
from tests.fixtures import speech_sample


@pytest.fixture(scope="module")
def generator() -> FaceGenerator:
    torch.manual_seed(0)
    return FaceGenerator(FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval(), lookahead=7)


def run(generator: FaceGenerator, pcm: np.ndarray, rate: int, sizes: list[int], seed: int = 0) -> np.ndarray:
    stream = GeneratorStream(generator, rate, seed=seed)
    out, start, i = [], 0, 0
    while start < pcm.size:
        size = sizes[i % len(sizes)]
        out.append(stream.push(pcm[start : start + size]))
        start, i = start + size, i + 1
    out.append(stream.finish())
    return np.concatenate(out)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_any_chunking_gives_the_same_frames_one_per_sixtieth_of_a_second(generator: FaceGenerator, rate: int) -> None:
    pcm = speech_sample(rate)
    a = run(generator, pcm, rate, [rate // 50])
    b = run(generator, pcm, rate, [1, 333, 2_000, 17])
    assert a.shape == (math.ceil(pcm.size / rate * 60), 59)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_seed_changes_frames_and_the_same_seed_repeats_them(generator: FaceGenerator) -> None:
    pcm = speech_sample(16_000)
    a = run(generator, pcm, 16_000, [320], seed=1)
    assert np.array_equal(a, run(generator, pcm, 16_000, [320], seed=1))
    assert not np.allclose(a, run(generator, pcm, 16_000, [320], seed=2))


def test_emotion_vector_is_one_hot_times_intensity() -> None:
    np.testing.assert_array_equal(emotion_vector("sad", 0.5), [0, 0, 0.5, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown emotion"):
        emotion_vector("bored", 1.0)
