"""Procedural gesture teacher: speech (phones + audio) to SMPL-X body motion at 30 fps.

Motion is built from a few readable parts, all documented in docs/gestures.md:

- idle: breathing in the chest and collars, a slow sway, a weight shift of the pelvis with the hips
  compensating so the feet stay planted, small drifts of arms and fingers so nothing is ever frozen;
- rest: arms hanging at the sides, hands loosely together in front of the belly, or hands low in front
  of the thighs, as speakers rest between gestures;
- gesture phrases (McNeill; Kendon): preparation, stroke, hold, retraction. Strokes end on stressed
  syllables (loud vowels that stand out from the ones just before), so the hand is fastest just before
  the syllable and slows to a stop on it. Which syllables get strokes is decided from what has been
  heard by then, and the hand waits in its preparation pose until the stroke (a pre-stroke hold, Kita
  1993), so a model that hears 200 ms ahead can time every part the teacher times. Strokes happen in
  the gesture space in front of the torso, between waist and chest (McNeill's centre and periphery),
  never out to the side at shoulder height. Shapes: beat, open palm, pointing, two-handed framing;
- emotion changes the motion (energy, tempo, amplitude, how far from the body and how high the hands
  work: Wallbott 1998; Dael, Mortillaro and Scherer 2012) on top of posture (lean, slumped or raised
  shoulders) and tension (fists against open hands); surprise is a brief raise of both hands that settles;
  intensity blends from neutral;
- style is a set of per-speaker parameters (handedness, gesture space, height, tempo, rest posture,
  gesture rate, sway, preferred shapes): `STYLES` holds 16 of them.

Angles follow runtime/rigs.py: the T-pose has arms along +-X with palms down; a left shoulder rotation
about Z by -a lowers the arm, elbow flexion is about the local Y axis, finger curl about the local Z axis.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import BODY_FPS, SMPLX_JOINTS
from emostream.runtime.rotations import matrix_to_axis_angle
from emostream.training.align import Phone
from emostream.training.teacher_face import loudness_envelope

J = {name: i for i, name in enumerate(SMPLX_JOINTS)}
VOWELS = frozenset(["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"])
FINGERS = ("index", "middle", "pinky", "ring")
SHAPES = ("beat", "open", "point", "two_hands")
# The phrase plan of one arm at each frame, as the model learns to choose it (GestureConfig.plan_codes):
# at rest, or on its way through a phrase of one of these shapes ("raise": surprise's opening).
PLAN_CODES = ("rest", *SHAPES, "raise")
REST_NAMES = ("hang", "front", "low")


@dataclass(frozen=True)
class GestureStyle:
    """A speaker's gesture habits (AMUSE's 'personal style', made explicit)."""

    name: str
    right_handed: float = 0.7  # share of one-handed gestures made with the right hand
    space: float = 1.0  # size of gestures
    height: float = 0.0  # radians added to the arm's forward raise while gesturing
    tempo: float = 1.0  # speed of every movement
    rate: float = 0.7  # share of stressed syllables that get a stroke
    rest: str = "hang"  # rest posture: "hang" (arms at the sides), "front" (hands together in front), "low"
    sway: float = 1.0  # amount of idle body sway and weight shift
    shapes: tuple[float, float, float, float] = (0.4, 0.3, 0.1, 0.2)  # weights of SHAPES

    def vector(self) -> np.ndarray:
        """The numeric parameters, for the style-recovery benchmark."""
        rest = REST_NAMES.index(self.rest)
        return np.array([self.right_handed, self.space, self.height, self.tempo, self.rate, rest, self.sway])


STYLE_PARAMETERS = ("right_handed", "space", "height", "tempo", "rate", "rest", "sway")


def _make_styles() -> dict[str, GestureStyle]:
    """16 speakers spread over the parameter space, from a fixed seed (the same on every machine)."""
    names = ("ada", "ben", "cleo", "dev", "eli", "fay", "gus", "hana",
             "ivo", "jun", "kai", "lena", "milo", "nora", "omar", "pia")  # fmt: skip
    rng = np.random.default_rng(2026)
    styles = {}
    for i, name in enumerate(names):
        shapes = rng.dirichlet(np.ones(4) * 1.5)
        styles[name] = GestureStyle(
            name=name,
            right_handed=float((0.15, 0.5, 0.9)[i % 3] + rng.uniform(-0.05, 0.05)),
            space=float(rng.uniform(0.65, 1.35)),
            height=float(rng.uniform(-0.15, 0.25)),
            tempo=float(rng.uniform(0.75, 1.3)),
            rate=float(rng.uniform(0.35, 0.95)),
            rest=REST_NAMES[(i // 3 + i) % 3],
            sway=float(rng.uniform(0.4, 1.6)),
            shapes=tuple(float(s) for s in shapes),  # type: ignore[arg-type]
        )
    return styles


STYLES: dict[str, GestureStyle] = _make_styles()


@dataclass(frozen=True)
class EmotionMotion:
    """How an emotion moves the body; intensity blends each field from the neutral value."""

    size: float = 1.0  # gesture amplitude
    speed: float = 1.0  # movement speed
    rate: float = 1.0  # gesture frequency
    tension: float = 0.3  # finger curl: 0 open hands, 1 fists
    lean: float = 0.0  # trunk flexion in radians (positive: forward, slumped)
    shoulders: float = 0.0  # collar raise in radians (negative: dropped)
    spread: float = 0.0  # how far from the body the hands work: -1 close in, 0 the centre, 1 wide
    height: float = 0.0  # radians added to the forward raise of gestures (negative: low, near the waist)
    palm_up: float = 0.0  # extra supination: open, offering hands
    startle: float = 0.0  # chance that a take opens with both hands raised briefly (surprise)
    sway: float = 1.0  # idle motion amount
    asymmetry: float = 0.0  # one-sided posture (contempt, disgust)
    shape_bias: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # multiplies the style's SHAPES weights


EMOTION_MOTION: dict[str, EmotionMotion] = {
    "neutral": EmotionMotion(),
    "happy": EmotionMotion(size=1.3, speed=1.2, rate=1.25, tension=0.1, lean=-0.04, spread=0.35, height=0.05,
                           palm_up=0.5, sway=1.4, shape_bias=(1.0, 1.8, 0.6, 1.6)),
    "sad": EmotionMotion(size=0.5, speed=0.6, rate=0.5, tension=0.35, lean=0.3, shoulders=-0.12, spread=-0.3,
                         height=-0.2, sway=0.5, shape_bias=(1.5, 0.8, 0.3, 0.4)),
    "surprised": EmotionMotion(size=1.2, speed=1.35, rate=0.9, tension=0.0, lean=-0.1, shoulders=0.1, spread=0.15,
                               height=0.15, palm_up=0.8, sway=1.1, startle=1.0, shape_bias=(0.5, 1.5, 0.5, 2.0)),
    "fear": EmotionMotion(size=0.6, speed=1.25, rate=0.7, tension=0.7, lean=0.14, shoulders=0.2, spread=-0.7,
                          height=0.15, sway=0.7, shape_bias=(1.0, 0.6, 0.2, 1.5)),
    "angry": EmotionMotion(size=2.1, speed=1.6, rate=1.5, tension=0.95, lean=0.12, shoulders=0.05, spread=0.35,
                           sway=1.2, shape_bias=(1.6, 0.3, 2.5, 0.6)),
    "disgusted": EmotionMotion(size=0.8, speed=0.9, rate=0.7, tension=0.45, lean=-0.16, shoulders=0.06,
                               spread=-0.2, palm_up=-0.6, asymmetry=0.6, shape_bias=(0.6, 1.6, 0.4, 0.8)),
    "contempt": EmotionMotion(size=0.6, speed=0.75, rate=0.45, tension=0.2, lean=-0.08, asymmetry=1.0,
                              height=-0.1, sway=0.7, shape_bias=(1.0, 1.0, 1.2, 0.2)),
}  # fmt: skip
assert set(EMOTION_MOTION) == set(EMOTIONS)


def blend_emotion(emotion: str, intensity: float) -> EmotionMotion:
    """The emotion's motion at `intensity` in [0, 1], blended from neutral field by field."""
    base, target = EMOTION_MOTION["neutral"], EMOTION_MOTION[emotion]
    w = float(np.clip(intensity, 0.0, 1.0))
    mix = {
        f: (1 - w) * getattr(base, f) + w * getattr(target, f)
        for f in ("size", "speed", "rate", "tension", "lean", "shoulders", "spread", "height", "palm_up", "startle",
                  "sway", "asymmetry")
    }
    bias = tuple((1 - w) * b + w * t for b, t in zip(base.shape_bias, target.shape_bias, strict=True))
    return EmotionMotion(**mix, shape_bias=bias)  # type: ignore[arg-type]


@dataclass
class ArmPose:
    """One arm's parameters; the teacher keyframes these and turns them into joint rotations."""

    down: float = 1.25  # shoulder: lowers the arm from the T-pose
    forward: float = 0.05  # shoulder: raises the arm forward
    inward: float = 0.0  # shoulder: swings the arm toward the midline
    elbow: float = 0.35  # elbow flexion
    supination: float = 0.0  # forearm turn: positive turns the palm up
    wrist: float = 0.1  # wrist flexion
    curl: float = 0.35  # curl of the four fingers (0 open, 1.4 fist)
    point: float = 0.0  # 1: index straight while the others curl
    spread: float = 0.05  # finger spread

    def array(self) -> np.ndarray:
        return np.array([self.down, self.forward, self.inward, self.elbow, self.supination, self.wrist,
                         self.curl, self.point, self.spread])  # fmt: skip


N_ARM = len(ArmPose().array())
# Where each rest puts the wrist (forward kinematics of the rigs.py skeleton, left arm, metres from the spine
# sideways / below the shoulder / in front): hang 0.23 / 0.52 / 0.10, front 0.10 / 0.43 / 0.21,
# low 0.14 / 0.46 / 0.23.
REST_POSES = {
    "hang": ArmPose(down=1.45, forward=0.08, inward=0.05, elbow=0.3),
    "front": ArmPose(down=1.45, forward=0.1, inward=0.55, elbow=0.9, supination=0.4, wrist=0.0, curl=0.5),
    "low": ArmPose(down=1.5, forward=0.25, inward=0.3, elbow=0.55, supination=0.3, curl=0.45),
}
LOWEST_DOWN, MOST_OUTWARD = 1.0, -0.3  # limits of any gesture: no arm raised sideways towards a T-pose


@dataclass
class Phrase:
    """One gesture phrase on one arm: the hand reaches `prep`, strikes to `stroke`, holds, then leaves."""

    stroke_end: float  # seconds: the stressed syllable
    prep: np.ndarray
    stroke: np.ndarray
    stroke_s: float
    prep_s: float
    hold_s: float
    shape: str = "beat"
    both: bool = False


def stressed_syllables(phones: list[Phone], loud: np.ndarray) -> list[tuple[float, float]]:
    """(time in seconds, prominence) of each loud vowel, in time order.

    The time is where the vowel's loudness rises: 40% into a short vowel, 30 ms in for a long one. Both
    the level and the prominence are what a listener has heard by then or just after (the model that
    learns from this sees 200 ms ahead): the level early in the vowel, against the loudest vowel of the
    0.35 s before it, not the ones that follow.
    """
    vowels = [p for p in phones if p.label in VOWELS and p.end_s - p.start_s >= 0.05]
    levels = [float(loud[min(int((p.start_s + min((p.end_s - p.start_s) / 2, 0.06)) * BODY_FPS), loud.size - 1)])
              for p in vowels]  # fmt: skip
    out = []
    for p, level in zip(vowels, levels, strict=True):
        before = max((lq for q, lq in zip(vowels, levels, strict=True) if 0 < p.start_s - q.start_s < 0.35),
                     default=0.0)  # fmt: skip
        if level > 0.55:
            out.append((p.start_s + min(0.4 * (p.end_s - p.start_s), 0.03), level - 0.8 * before))
    return out


def speech_onsets(phones: list[Phone], pause_s: float = 0.25) -> np.ndarray:
    """Start times (s) of the stretches of speech that pauses of at least `pause_s` separate."""
    onsets, last_end = [], -np.inf
    for p in phones:
        if p.label == "SIL":
            continue
        if p.start_s - last_end >= pause_s:
            onsets.append(p.start_s)
        last_end = p.end_s
    return np.array(onsets)


def gesture_centre(style: GestureStyle, mood: EmotionMotion, rng: np.random.Generator) -> ArmPose:
    """The arm in the gesture space in front of the torso: at spread 0 and height 0 the wrist is 0.15 m
    from the spine, 0.26 m below the shoulder and 0.34 m in front; spread moves it out (or in), height
    up (or down towards the waist)."""
    spread = float(np.clip(mood.spread + rng.uniform(-0.15, 0.15), -1, 1))
    lift = 0.5 * style.height + mood.height + rng.uniform(-0.08, 0.08)
    return ArmPose(down=1.3 - 0.12 * max(spread, 0), forward=0.35 + lift, inward=0.35 - 0.4 * spread,
                   elbow=1.25 + 0.3 * max(-spread, 0), supination=0.2 + mood.palm_up, wrist=0.0,
                   curl=0.25 + 0.9 * mood.tension, spread=0.1)  # fmt: skip


def _arm_shape(shape: str, style: GestureStyle, mood: EmotionMotion,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(prep, stroke) arm parameter arrays for one gesture shape."""
    size = style.space * mood.size * rng.uniform(0.8, 1.2)
    base = gesture_centre(style, mood, rng)
    prep, stroke = replace(base), replace(base)
    if shape == "beat":  # the hand rises, then flicks down onto the syllable
        prep.elbow += 0.35 * size
        prep.forward += 0.1 * size
        prep.wrist -= 0.25
        stroke.elbow -= 0.3 * size
        stroke.forward -= 0.05 * size
        stroke.wrist += 0.2
    elif shape in ("open", "two_hands"):  # palm turns up and sweeps outward (two hands: a frame)
        prep.inward += 0.2
        prep.supination = 0.6 + mood.palm_up
        prep.curl = 0.3 + 0.5 * mood.tension
        stroke.inward -= 0.3 * size
        stroke.down -= 0.08 * size
        stroke.elbow -= 0.3
        stroke.supination = 1.1 + mood.palm_up
        stroke.curl = 0.05 + 0.4 * mood.tension
        stroke.spread = 0.25
        if shape == "two_hands":
            stroke.forward += 0.15
    elif shape == "point":  # deictic: the forearm extends forward, index straight
        prep.elbow = 1.6
        prep.forward += 0.1
        prep.point = 1.0
        stroke.forward += 0.4 * size
        stroke.elbow = 0.6
        stroke.inward = 0.15
        stroke.supination = -0.3
        stroke.point = 1.0
        stroke.curl = 1.1
    elif shape == "raise":  # surprise: both hands up in front of the chest, open, palms out
        prep.elbow += 0.2
        stroke.forward += 0.25
        stroke.elbow = 1.55
        stroke.inward = 0.2
        stroke.supination = 0.9
        stroke.curl = 0.05
        stroke.spread = 0.3
    for pose in (prep, stroke):
        pose.down = max(pose.down, LOWEST_DOWN)
        pose.inward = max(pose.inward, MOST_OUTWARD)
    return prep.array(), stroke.array()


def plan_phrases(phones: list[Phone], loud: np.ndarray, duration_s: float, style: GestureStyle,
                 mood: EmotionMotion, rng: np.random.Generator) -> dict[str, list[Phrase]]:  # fmt: skip
    """Chooses which stressed syllables get strokes, with which shape and arm."""
    speed = style.tempo * mood.speed
    min_gap = 0.55 / speed
    rate = min(1.0, style.rate * mood.rate)
    # Strokes go, in time order, to syllables prominent enough for this speaker and mood, a least gap
    # apart, and to `rate` of those (every other one at 0.5: a running count, not a random draw): a
    # choice made from what has been heard, so a causal model can make the same one.
    threshold = 0.12
    chosen: list[float] = []
    count = 0.5
    for time_s, prominence in stressed_syllables(phones, loud):
        if time_s < 0.35 / speed or time_s > duration_s - 0.05:
            continue
        if prominence >= threshold and (not chosen or time_s - chosen[-1] >= min_gap):
            count += rate
            if count >= 1.0:
                count -= 1.0
                chosen.append(time_s)
    weights = np.array(style.shapes) * np.array(mood.shape_bias)
    weights /= weights.sum()
    phrases: dict[str, list[Phrase]] = {"left": [], "right": []}
    startled = rng.random() < mood.startle
    for k, time_s in enumerate(chosen):
        shape = "raise" if startled and k == 0 else str(rng.choice(SHAPES, p=weights))
        stroke_s = rng.uniform(0.14, 0.22) / speed
        prep_s = rng.uniform(0.25, 0.4) / speed
        hold_s = rng.uniform(0.08, 0.25) / speed + (0.3 if shape == "raise" else 0.0)
        one_hand = "right" if rng.random() < style.right_handed else "left"
        arms = ["left", "right"] if shape in ("two_hands", "raise") else [one_hand]
        for arm in arms:
            prep, stroke = _arm_shape(shape, style, mood, rng)
            phrases[arm].append(Phrase(time_s, prep, stroke, stroke_s, prep_s, hold_s, shape, len(arms) == 2))
    return phrases


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk easing from 0 to 1 (Flash & Hogan 1985): zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def keyframe_track(keys: list[tuple[float, np.ndarray]], t: np.ndarray) -> np.ndarray:
    """Parameters (T, P) through time-sorted keyframes, eased with minimum jerk between each pair."""
    out = np.repeat(keys[0][1][None], t.size, axis=0)
    for (t0, v0), (t1, v1) in itertools.pairwise(keys):
        inside = (t >= t0) & (t < t1)
        s = min_jerk((t[inside] - t0) / max(t1 - t0, 1e-6))
        out[inside] = v0 + s[:, None] * (v1 - v0)
        out[t >= t1] = v1
    return out


def arm_track(phrases: list[Phrase], rest: np.ndarray, t: np.ndarray, speed: float,
              onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The arm's parameters over time (T, N_ARM): rest, then each phrase; and its plan (T,) int8, the
    index in PLAN_CODES of the phrase it is in (from its preparation until the next phrase's, or
    "rest" from the retraction on).

    The hand reaches a phrase's preparation pose as soon as it may (as the phrase's stretch of speech
    starts, or after the previous phrase's hold) and waits there until the stroke (Kita's pre-stroke
    hold), so the stroke is the only part timed by its syllable, and a model that hears 200 ms ahead can
    time it too. The arm retracts to rest after a stretch's last phrase.
    """
    keys: list[tuple[float, np.ndarray]] = [(0.0, rest)]
    plan = np.zeros(t.size, np.int8)
    retract_s = 0.45 / speed

    def stretch(ph: Phrase) -> float:  # onset of the stretch of speech the phrase's stroke is in
        return float(onsets[onsets <= ph.stroke_end].max(initial=0.0))

    for i, ph in enumerate(phrases):
        stroke_start = ph.stroke_end - ph.stroke_s
        prep_start = max(min(stroke_start - ph.prep_s, stretch(ph) - 0.1), keys[-1][0] + 0.05)
        if prep_start >= stroke_start - 0.05:
            continue  # no time to prepare after the previous phrase
        prep_end = min(prep_start + ph.prep_s, stroke_start)
        plan[t >= prep_start] = PLAN_CODES.index(ph.shape)
        keys += [(prep_start, keys[-1][1]), (prep_end, ph.prep)]
        if stroke_start - prep_end > 0.05:  # the pre-stroke hold drifts a little towards the stroke
            keys.append((stroke_start, ph.prep + 0.03 * (ph.stroke - ph.prep)))
        keys.append((ph.stroke_end, ph.stroke))
        hold_end = ph.stroke_end + ph.hold_s
        keys.append((hold_end, ph.stroke + 0.03 * (ph.prep - ph.stroke)))  # a hold drifts a little
        if i + 1 == len(phrases) or stretch(phrases[i + 1]) > ph.stroke_end:
            keys.append((hold_end + retract_s, rest))
            plan[t >= hold_end] = 0
    return keyframe_track(keys, t), plan


def smooth_noise(rng: np.random.Generator, n: int, tau_s: float, sigma: float, dims: int = 1) -> np.ndarray:
    """(n, dims) slow random drift at BODY_FPS: an Ornstein-Uhlenbeck process, then a 0.3 s low-pass."""
    a = np.exp(-1.0 / (BODY_FPS * tau_s))
    pad = 12
    x = np.empty((n + 2 * pad, dims))
    value = rng.normal(0, sigma, dims)
    innovations = rng.normal(0, sigma * np.sqrt(1 - a * a), (n + 2 * pad, dims))
    for i in range(n + 2 * pad):
        value = a * value + innovations[i]
        x[i] = value
    kernel = np.hanning(11)[1:-1]
    kernel /= kernel.sum()
    return np.stack([np.convolve(x[:, d], kernel, mode="same") for d in range(dims)], axis=1)[pad : pad + n]


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """(T,) angles -> (T, 3, 3) rotations about the x (0), y (1) or z (2) axis."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1
    m[..., i, i], m[..., i, j], m[..., j, i], m[..., j, j] = c, -s, s, c
    return m


def arm_rotations(params: np.ndarray, sign: float) -> dict[str, np.ndarray]:
    """Arm parameters (T, N_ARM) to local rotations of one side's joints (sign +1 left, -1 right)."""
    down, forward, inward, elbow, supination, wrist, curl, point, spread = params.T
    out = {
        "shoulder": _rot(1, -sign * inward) @ _rot(0, -forward) @ _rot(2, -sign * down),
        "elbow": _rot(1, -sign * elbow),
        "wrist": _rot(0, sign * supination) @ _rot(2, -sign * wrist),
    }
    for k, finger in enumerate(FINGERS):
        c = curl * (1 - point) + point * (0.05 if finger == "index" else 1.3)
        c = c * (1.0 + 0.12 * k)  # the little fingers curl a bit more
        splay = spread * (1.5 - k) * 0.6
        out[f"{finger}1"] = _rot(1, sign * splay) @ _rot(2, -sign * c)
        out[f"{finger}2"] = _rot(2, -sign * c * 1.1)
        out[f"{finger}3"] = _rot(2, -sign * c * 0.8)
    thumb = 0.3 + 0.5 * np.clip(curl, 0, 1.4)
    out["thumb1"] = _rot(1, -sign * 0.35) @ _rot(0, -sign * 0.2 * thumb)
    out["thumb2"] = _rot(2, -sign * 0.4 * thumb)
    out["thumb3"] = _rot(2, -sign * 0.5 * thumb)
    return out


@dataclass
class GestureOutput:
    axis_angle: np.ndarray  # float32 (T, 55, 3) local joint rotations
    trans: np.ndarray  # float32 (T, 3) root translation in metres
    strokes: np.ndarray  # float32 stroke times in seconds (the planned beats)
    plan: np.ndarray  # int8 (T, 2): each arm's phrase plan (left, right), indices into PLAN_CODES


def teach_gesture(
    phones: list[Phone],
    audio: np.ndarray,
    rate_hz: int,
    emotion: str = "neutral",
    intensity: float = 1.0,
    style: GestureStyle | str = "ada",
    seed: int = 0,
) -> GestureOutput:
    """Body motion for one utterance; the phones' times are in seconds from the audio's start."""
    style = STYLES[style] if isinstance(style, str) else style
    mood = blend_emotion(emotion, intensity)
    rng = np.random.default_rng(seed)
    duration = audio.size / rate_hz
    n = int(np.ceil(duration * BODY_FPS))
    t = np.arange(n) / BODY_FPS
    loud = loudness_envelope(audio, rate_hz, 2 * n)[::2]
    speed = style.tempo * mood.speed
    phrases = plan_phrases(phones, loud, duration, style, mood, rng)
    onsets = speech_onsets(phones)
    rest = REST_POSES[style.rest].array()
    # At rest the emotion shows in closeness (fear hugs in), tension and the palms, not in raised arms.
    rest = rest + np.array([0, 0, -0.15 * mood.spread, 0.3 * max(-mood.spread, 0), 0.5 * mood.palm_up, 0,
                            0.9 * (mood.tension - 0.3), 0, 0])  # fmt: skip
    rotations = np.broadcast_to(np.eye(3), (n, len(SMPLX_JOINTS), 3, 3)).copy()
    sway = style.sway * mood.sway
    breathing = np.sin(2 * np.pi * 0.25 * t * (0.8 + 0.4 * mood.speed) + rng.uniform(0, 2 * np.pi))
    plan = np.zeros((n, 2), np.int8)
    for k, (side, sign) in enumerate((("left", 1.0), ("right", -1.0))):
        params, plan[:, k] = arm_track(phrases[side], rest, t, speed, onsets)
        drift = smooth_noise(rng, n, 1.2, 1.0, N_ARM) * np.array([0.03, 0.03, 0.02, 0.05, 0.05, 0.04, 0.06, 0, 0.02])
        # A raised collar swings the whole arm out; the shoulder takes it back so the hands stay in place.
        collar = mood.shoulders + 0.01 * breathing + 0.05 * mood.asymmetry * sign
        rotations[:, J[f"{side}_collar"]] = _rot(2, sign * collar)
        params = params + drift
        params[:, 0] += collar
        for joint, rotation in arm_rotations(params, sign).items():
            rotations[:, J[f"{side}_{joint}"]] = rotation

    # Trunk: emotional lean shared by the spine joints, breathing, sway; one-sided posture for asymmetry.
    trunk = smooth_noise(rng, n, 2.0, 0.02 * sway, 3)
    lean = mood.lean / 3 + 0.006 * breathing
    for k, joint in enumerate(("spine1", "spine2", "spine3")):
        roll = trunk[:, 2] + (0.04 * mood.asymmetry if k == 2 else 0.0)
        rotations[:, J[joint]] = _rot(1, trunk[:, 1]) @ _rot(0, lean + (0.004 * breathing if k == 2 else 0)) @ _rot(
            2, roll)  # fmt: skip
    rotations[:, J["neck"]] = _rot(0, -0.5 * mood.lean * np.ones(n))  # keeps the gaze level when leaning

    # Weight shift: the pelvis slides and rolls a little; the hips counter-roll so the legs stay vertical.
    shift = smooth_noise(rng, n, 3.0, 0.012 * sway)[:, 0]
    roll = -1.2 * shift
    rotations[:, J["pelvis"]] = _rot(1, trunk[:, 0] * 0.5) @ _rot(2, roll)
    for side in ("left", "right"):
        rotations[:, J[f"{side}_hip"]] = _rot(2, -roll) @ _rot(0, -0.03 * np.ones(n))
        rotations[:, J[f"{side}_knee"]] = _rot(0, 0.06 + 0.02 * np.abs(shift) / 0.012 * np.ones(n))
    trans = np.stack([shift, 0.002 * breathing - 0.004 * np.abs(shift) / 0.012, np.zeros(n)], axis=1)

    strokes = np.array(sorted({p.stroke_end for ps in phrases.values() for p in ps}), np.float32)
    return GestureOutput(matrix_to_axis_angle(rotations).astype(np.float32), trans.astype(np.float32), strokes,
                         plan)
