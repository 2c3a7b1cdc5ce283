import numpy as np
import pytest

from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import FACE_CHANNELS
from emostream.training.align import Phone
from emostream.training.metrics import closure_rates, lip_gap
from emostream.training.teacher_face import MOUTH_CHANNELS, teach

CH = {n: i for i, n in enumerate(FACE_CHANNELS)}
RATE = 16_000

# "Bob picked up the map", with hand-made timings.
PHONES = [
    Phone(label, start, end)
    for label, start, end in [
        ("SIL", 0.0, 0.2), ("B", 0.2, 0.26), ("AA", 0.26, 0.4), ("B", 0.4, 0.47), ("P", 0.47, 0.55),
        ("IH", 0.55, 0.62), ("K", 0.62, 0.7), ("T", 0.7, 0.75), ("AH", 0.75, 0.85), ("P", 0.85, 0.92),
        ("DH", 0.92, 0.97), ("AH", 0.97, 1.03), ("M", 1.03, 1.12), ("AE", 1.12, 1.3), ("P", 1.3, 1.4),
        ("SIL", 1.4, 1.8),
    ]
]  # fmt: skip


def speech_like_audio() -> np.ndarray:
    """Noise that is loud during phones and silent during SIL, so loudness follows the phones."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.8 * RATE)) / RATE
    envelope = ((t > 0.2) & (t < 1.4)).astype(float)
    return (0.3 * envelope * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_bilabial_closes_and_open_vowels_stay_open_under_every_emotion(emotion: str) -> None:
    out = teach(PHONES, speech_like_audio(), RATE, emotion, intensity=1.0, seed=3)
    hit_rate, false_rate, n_bilabials, n_vowels = closure_rates(out.face, PHONES)
    assert n_bilabials == 6 and n_vowels == 4
    assert hit_rate == 1.0
    assert false_rate == 0.0


def test_output_layout_and_ranges() -> None:
    out = teach(PHONES, speech_like_audio(), RATE)
    assert out.face.shape == (108, len(FACE_CHANNELS)) and out.face.dtype == np.float32
    assert out.face[:, :52].min() >= 0 and out.face[:, :52].max() <= 1
    assert np.all(np.isfinite(out.face))
    assert out.visemes.shape == (108,)


def test_mouth_follows_speech_but_upper_face_and_head_follow_the_seed() -> None:
    a = teach(PHONES, speech_like_audio(), RATE, seed=1).face
    b = teach(PHONES, speech_like_audio(), RATE, seed=2).face
    mouth = [CH[c] for c in MOUTH_CHANNELS]
    np.testing.assert_array_equal(a[:, mouth], b[:, mouth])
    head = [CH["headYaw"], CH["headPitch"], CH["headRoll"], CH["leftEyeYaw"]]
    assert np.abs(a[:, head] - b[:, head]).mean() > 0.01


def test_rounding_is_anticipated_before_a_rounded_vowel() -> None:
    phones = [Phone("SIL", 0.0, 0.3), Phone("S", 0.3, 0.45), Phone("UW", 0.45, 0.7), Phone("SIL", 0.7, 1.0)]
    out = teach(phones, speech_like_audio()[:RATE], RATE).face
    pucker = out[:, CH["mouthPucker"]]
    during_s = pucker[int(0.32 * 60) : int(0.44 * 60)]
    assert during_s.max() > 0.3  # the lips round while /s/ is still heard


def test_emotions_move_their_action_units() -> None:
    neutral = teach(PHONES, speech_like_audio(), RATE, "neutral").face.mean(axis=0)
    expect = {"happy": "mouthSmileLeft", "sad": "mouthFrownLeft", "surprised": "browOuterUpLeft",
              "angry": "browDownLeft", "disgusted": "noseSneerLeft", "fear": "eyeWideLeft",
              "contempt": "mouthDimpleLeft"}  # fmt: skip
    for emotion, channel in expect.items():
        face = teach(PHONES, speech_like_audio(), RATE, emotion, intensity=1.0).face.mean(axis=0)
        assert face[CH[channel]] - neutral[CH[channel]] > 0.2, emotion


def test_quieter_speech_opens_the_jaw_less() -> None:
    audio = speech_like_audio()
    softened = audio.copy()
    softened[int(1.1 * RATE) : int(1.4 * RATE)] *= 0.1  # the last vowel 20 dB below the rest
    normal = teach(PHONES, audio, RATE).face[:, CH["jawOpen"]]
    soft = teach(PHONES, softened, RATE).face[:, CH["jawOpen"]]
    ae = slice(int(1.15 * 60), int(1.28 * 60))
    assert soft[ae].mean() < 0.8 * normal[ae].mean()


def test_lip_gap_follows_its_definition() -> None:
    face = np.zeros((1, len(FACE_CHANNELS)), np.float32)
    face[0, CH["jawOpen"]] = 0.5
    face[0, CH["mouthClose"]] = 0.2
    face[0, CH["mouthLowerDownLeft"]] = 0.4
    face[0, CH["mouthUpperUpRight"]] = 0.2
    face[0, CH["mouthFunnel"]] = 0.5
    assert lip_gap(face)[0] == pytest.approx(0.3 + 0.5 * 0.2 + 0.5 * 0.1 + 0.15)
