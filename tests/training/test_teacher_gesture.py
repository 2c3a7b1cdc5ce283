import numpy as np
import pytest

from emostream.runtime.body_pose import pose_features
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import LOWER_BODY_JOINTS, SMPLX_JOINTS, forward_kinematics, rest_offsets
from emostream.runtime.rotations import axis_angle_to_matrix
from emostream.training.align import Phone
from emostream.training.gesture_evaluation import arm_joint_speed, pose_statistics, positions
from emostream.training.teacher_gesture import PLAN_CODES, STYLES, VOWELS, teach_gesture

J = {n: i for i, n in enumerate(SMPLX_JOINTS)}
RATE = 16_000


def speech(seconds: float = 6.0, seed: int = 0, stress_every: int = 2,
           irregular: bool = False) -> tuple[list[Phone], np.ndarray]:  # fmt: skip
    """Syllables every 0.25 s (consonant then vowel), every `stress_every`-th vowel loud and long (some
    louder than others, as in speech; `irregular`: each vowel stressed with chance 1 / stress_every
    instead), with audio whose loudness follows the vowels."""
    rng = np.random.default_rng(seed)
    phones, audio = [], np.zeros(int(seconds * RATE), np.float32)
    t = 0.2
    k = 0
    while t < seconds - 0.4:
        loud = rng.random() < 1 / stress_every if irregular else k % stress_every == 0
        vowel = 0.16 if loud else 0.08
        phones += [Phone("T", t, t + 0.06), Phone("AA", t + 0.06, t + 0.06 + vowel)]
        a, b = int((t + 0.06) * RATE), int((t + 0.06 + vowel) * RATE)
        level = rng.uniform(0.25, 0.6) if loud else rng.uniform(0.05, 0.2)
        audio[a:b] = level * np.sin(2 * np.pi * 180 * np.arange(b - a) / RATE)
        t += 0.06 + vowel + 0.1
        k += 1
    return phones, audio + 1e-4 * rng.normal(size=audio.size).astype(np.float32)


def wrist_speed(axis_angle: np.ndarray, trans: np.ndarray) -> np.ndarray:
    positions, _ = forward_kinematics(axis_angle_to_matrix(axis_angle), trans, rest_offsets())
    wrists = positions[:, [J["left_wrist"], J["right_wrist"]]]
    return np.linalg.norm(np.diff(wrists, axis=0), axis=-1).max(axis=1) * 30


def test_sixteen_distinct_styles() -> None:
    assert len(STYLES) >= 16
    vectors = np.stack([s.vector() for s in STYLES.values()])
    assert len({tuple(v.round(4)) for v in vectors}) == len(STYLES)
    assert {s.rest for s in STYLES.values()} == {"hang", "front", "low"}


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_gives_finite_grounded_motion(emotion: str) -> None:
    phones, audio = speech()
    out = teach_gesture(phones, audio, RATE, emotion, 1.0, "ada", seed=1)
    n = int(np.ceil(audio.size / RATE * 30))
    assert out.axis_angle.shape == (n, 55, 3) and out.trans.shape == (n, 3)
    assert np.isfinite(out.axis_angle).all() and np.isfinite(pose_features(out.axis_angle, out.trans)).all()
    feet = [J[f"{s}_{p}"] for s in ("left", "right") for p in ("ankle", "foot")]
    assert np.abs(out.axis_angle[:, feet]).max() == 0  # ankles and feet stay at rest
    assert np.abs(out.trans).max() < 0.06  # the weight shift stays small
    lower = [j for j in LOWER_BODY_JOINTS if j not in feet]
    assert np.abs(out.axis_angle[:, lower]).max() < 0.2


def test_strokes_land_on_stressed_vowels_and_the_hand_stops_there() -> None:
    phones, audio = speech()
    out = teach_gesture(phones, audio, RATE, "happy", 1.0, "dev", seed=3)
    assert len(out.strokes) >= 3
    vowels = [p for p in phones if p.label in VOWELS]
    for stroke in out.strokes:
        assert any(p.start_s - 0.01 <= stroke <= p.end_s for p in vowels), stroke
    speed = wrist_speed(out.axis_angle, out.trans)
    peak = speed.max()
    for stroke in out.strokes:
        k = round(float(stroke) * 30)
        before = speed[max(0, k - 5) : k - 1]
        if before.size and k < speed.size:
            # fast into the stroke, (almost) still at its end
            assert before.max() > 3 * speed[min(k, speed.size - 1)] or speed[k] < 0.1 * peak


def test_emotion_sets_speed_and_posture() -> None:
    # A stress on a third of the syllables, at irregular places as in read speech; with one every other
    # syllable even neutral gestures without a pause, and angry can only be bigger, not more frequent.
    phones, audio = speech(8.0, stress_every=3, irregular=True)
    speeds, lean = {}, {}
    for emotion in ("angry", "sad", "neutral"):
        runs = [teach_gesture(phones, audio, RATE, emotion, 1.0, "ada", seed=s) for s in range(4)]
        speeds[emotion] = np.mean([arm_joint_speed(pose_features(r.axis_angle, r.trans)) for r in runs])
        lean[emotion] = np.mean([r.axis_angle[:, J["spine2"], 0].mean() for r in runs])
    # issue 32's targets for the model, met with a margin by its teacher
    assert speeds["angry"] > 1.3 * speeds["neutral"] and speeds["sad"] < 0.8 * speeds["neutral"]
    assert lean["sad"] > lean["neutral"] + 0.05  # slumped forward


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_hands_rest_low_and_gesture_in_front_never_out_at_shoulder_height(emotion: str) -> None:
    phones, audio = speech(8.0)
    takes = [teach_gesture(phones, audio, RATE, emotion, 1.0, style, seed=1) for style in STYLES]
    stats = [pose_statistics(positions(pose_features(r.axis_angle, r.trans))) for r in takes]
    assert np.median([s["wrist_sideways_median_m"] for s in stats]) <= 0.25
    assert max(s["wide_at_shoulder_share"] for s in stats) <= 0.01
    assert np.median([s["wrist_forward_median_m"] for s in stats]) > 0.05  # in front of the body, not beside it


def test_fingers_and_idle_body_are_never_frozen() -> None:
    phones, audio = speech(4.0)
    out = teach_gesture(phones, audio, RATE, "neutral", 1.0, "ben", seed=0)
    assert out.axis_angle[:, 25:55].std(axis=0).mean() > 0.005
    assert out.axis_angle[:, J["spine3"]].std(axis=0).max() > 0.002


def test_seeds_and_styles_change_the_motion() -> None:
    phones, audio = speech()
    a = teach_gesture(phones, audio, RATE, "neutral", 1.0, "ada", seed=0).axis_angle
    b = teach_gesture(phones, audio, RATE, "neutral", 1.0, "ada", seed=1).axis_angle
    c = teach_gesture(phones, audio, RATE, "neutral", 1.0, "omar", seed=0).axis_angle
    assert not np.allclose(a, b) and not np.allclose(a, c)


def test_most_gestures_are_made_with_one_hand() -> None:
    """What `one_sidedness` reads in the benchmark: a speaker's strokes are mostly one-handed (the style's
    handedness), so one wrist moves clearly more than the other over a take."""
    phones, audio = speech(8.0)
    takes = [teach_gesture(phones, audio, RATE, "neutral", 1.0, style, seed=2) for style in STYLES]
    sidedness = [pose_statistics(positions(pose_features(r.axis_angle, r.trans)))["one_sidedness"] for r in takes]
    assert np.median(sidedness) > 0.1  # the shipped model's takes: 0.03 to 0.08 (docs/gestures.md)


def test_the_plan_names_each_strokes_moving_arm_and_rests_before_and_after_the_speech() -> None:
    """What the model learns to draw (GestureConfig.plan_codes): at every stroke an arm is in a phrase,
    the arm that moves most in it; both arms are at rest before the first phrase and after the last."""
    phones, audio = speech(8.0)
    out = teach_gesture(phones, audio, RATE, "angry", 1.0, "dev", seed=4)
    assert out.plan.shape == (out.axis_angle.shape[0], 2) and out.plan.max() < len(PLAN_CODES)
    speed = {side: np.abs(np.diff(out.axis_angle[:, J[f"{side}_elbow"]], axis=0)).sum(-1) for side in ("left", "right")}
    for stroke in out.strokes:
        k = round(float(stroke) * 30)
        active = [side for i, side in enumerate(("left", "right")) if out.plan[k, i] != 0]
        assert active, stroke
        moving = max(speed, key=lambda side: speed[side][k - 6 : k].sum())
        assert moving in active
    assert (out.plan[0] == 0).all() and (out.plan[-1] == 0).all()
    assert {PLAN_CODES[c] for c in np.unique(out.plan)} - {"rest"}  # some phrase kind beside rest
