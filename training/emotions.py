"""The 8 emotions as FACS-style ARKit presets plus how each changes articulation and the head (their blink
rates are runtime/blinks.py's BLINKS_PER_MINUTE, which the drawn blinks follow too).

Prototype action units (EMFACS): happy 6+12; sad 1+4+15; surprised 1+2+5+26; fear 1+2+4+5+7+20+26;
angry 4+5+7+23; disgusted 9+15+16; contempt unilateral 12+14. AU -> ARKit as in shared/reference/rigs.md.
The weights are starting points tuned by eye, not measurements. Articulation stays within 0.9-1.15 of
neutral: an emotion colours how the mouth moves, it must not hide the speech (a sad face at 0.75 lost its
lip-sync on real voices; docs/real-voices.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emostream.runtime.blinks import REST_LID
from emostream.runtime.protocol import EMOTIONS


@dataclass(frozen=True)
class EmotionStyle:
    pose: dict[str, float] = field(default_factory=dict)  # ARKit offsets at full intensity ("*": both sides)
    articulation: float = 1.0  # scale of speech mouth movement
    head_amplitude: float = 1.0  # scale of head motion
    head_pitch_rad: float = 0.0  # posture: positive looks down
    brow_raise: float = 1.0  # scale of brow raises on accents (negative: brows lower instead)


EMOTION_STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(),
    "happy": EmotionStyle(
        {"cheekSquint*": 0.55, "mouthSmile*": 0.7, "eyeSquint*": 0.25, "mouthDimple*": 0.2},
        articulation=1.05, head_amplitude=1.25, head_pitch_rad=-0.03, brow_raise=1.2,
    ),
    "sad": EmotionStyle(
        {"browInnerUp": 0.75, "browDown*": 0.3, "mouthFrown*": 0.6, "mouthShrugLower": 0.25,
         "eyeBlink*": REST_LID["sad"], "eyeLookDown*": 0.15},
        articulation=0.9, head_amplitude=0.55, head_pitch_rad=0.12, brow_raise=0.5,
    ),
    "surprised": EmotionStyle(
        {"browInnerUp": 0.8, "browOuterUp*": 0.8, "eyeWide*": 0.7, "jawOpen": 0.12, "mouthFunnel": 0.1},
        articulation=1.1, head_amplitude=1.1, head_pitch_rad=-0.06, brow_raise=0.6,
    ),
    "fear": EmotionStyle(
        {"browInnerUp": 0.8, "browOuterUp*": 0.45, "browDown*": 0.3, "eyeWide*": 0.6, "eyeSquint*": 0.15,
         "mouthStretch*": 0.5, "jawOpen": 0.08},
        articulation=0.9, head_amplitude=0.8, head_pitch_rad=0.04, brow_raise=0.7,
    ),
    "angry": EmotionStyle(
        {"browDown*": 0.8, "eyeWide*": 0.25, "eyeSquint*": 0.4, "mouthPress*": 0.35, "noseSneer*": 0.25,
         "mouthRollUpper": 0.1},
        articulation=1.15, head_amplitude=1.35, head_pitch_rad=0.06, brow_raise=-0.8,
    ),
    "disgusted": EmotionStyle(
        {"noseSneer*": 0.7, "mouthUpperUp*": 0.45, "mouthFrown*": 0.35, "mouthLowerDown*": 0.2, "browDown*": 0.35,
         "cheekSquint*": 0.3},
        articulation=0.9, head_amplitude=0.9, head_pitch_rad=0.0, brow_raise=-0.5,
    ),
    "contempt": EmotionStyle(
        {"mouthSmileLeft": 0.5, "mouthDimpleLeft": 0.5, "eyeSquint*": 0.15, "browDownRight": 0.2,
         "browOuterUpLeft": 0.2},
        articulation=0.9, head_amplitude=0.8, head_pitch_rad=-0.08, brow_raise=0.4,
    ),
}  # fmt: skip

assert set(EMOTION_STYLES) == set(EMOTIONS)
