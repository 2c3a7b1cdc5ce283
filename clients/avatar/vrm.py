"""VRM 1.0 (`VRMC_vrm`) for the built-in avatar: SMPL-X joints as VRM humanoid bones, and the preset
expressions built from ARKit morph targets.

The expressions are what a VRM app shows for a preset when it has only the presets (VSeeFace's lip sync,
three-vrm's expression manager): each is a few ARKit shapes at fixed weights, chosen to read as the
preset's name. Apps that speak ARKit names ("Perfect Sync") drive the 52 morph targets directly instead.
"""

from __future__ import annotations

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES


def _finger_bones() -> dict[str, str]:
    """SMPL-X finger joints (thumb1..3, index1..3, ...) to VRM finger bones."""
    names = {"thumb": ("Thumb", ("Metacarpal", "Proximal", "Distal"))}
    names |= {
        f: (v, ("Proximal", "Intermediate", "Distal"))
        for f, v in (("index", "Index"), ("middle", "Middle"), ("ring", "Ring"), ("pinky", "Little"))
    }
    return {
        f"{side}_{finger}{k}": f"{side}{vrm}{segment}"
        for side in ("left", "right")
        for finger, (vrm, segments) in names.items()
        for k, segment in enumerate(segments, start=1)
    }


SMPLX_TO_VRM = {
    "pelvis": "hips",
    "spine1": "spine",
    "spine2": "chest",
    "spine3": "upperChest",
    "neck": "neck",
    "head": "head",
    "jaw": "jaw",
    "left_eye_smplhf": "leftEye",
    "right_eye_smplhf": "rightEye",
    "left_hip": "leftUpperLeg",
    "left_knee": "leftLowerLeg",
    "left_ankle": "leftFoot",
    "left_foot": "leftToes",
    "right_hip": "rightUpperLeg",
    "right_knee": "rightLowerLeg",
    "right_ankle": "rightFoot",
    "right_foot": "rightToes",
    "left_collar": "leftShoulder",
    "left_shoulder": "leftUpperArm",
    "left_elbow": "leftLowerArm",
    "left_wrist": "leftHand",
    "right_collar": "rightShoulder",
    "right_shoulder": "rightUpperArm",
    "right_elbow": "rightLowerArm",
    "right_wrist": "rightHand",
} | _finger_bones()
REQUIRED_BONES = frozenset(
    {
        "hips",
        "spine",
        "head",
        "leftUpperLeg",
        "leftLowerLeg",
        "leftFoot",
        "rightUpperLeg",
        "rightLowerLeg",
        "rightFoot",
        "leftUpperArm",
        "leftLowerArm",
        "leftHand",
        "rightUpperArm",
        "rightLowerArm",
        "rightHand",
    }
)

# VRM preset -> ARKit shapes and weights. Visemes after the mouth poses of training/visemes.py, emotions
# after the FACS prototypes of training/emotions.py; "relaxed" is a calm half-smile.
VRM_EXPRESSIONS: dict[str, dict[str, float]] = {
    "aa": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
    "ih": {"jawOpen": 0.25, "mouthStretchLeft": 0.45, "mouthStretchRight": 0.45},
    "ou": {"jawOpen": 0.15, "mouthPucker": 0.85, "mouthFunnel": 0.35},
    "ee": {
        "jawOpen": 0.2,
        "mouthSmileLeft": 0.45,
        "mouthSmileRight": 0.45,
        "mouthStretchLeft": 0.3,
        "mouthStretchRight": 0.3,
    },
    "oh": {"jawOpen": 0.45, "mouthFunnel": 0.75},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "blinkLeft": {"eyeBlinkLeft": 1.0},
    "blinkRight": {"eyeBlinkRight": 1.0},
    "happy": {
        "mouthSmileLeft": 0.8,
        "mouthSmileRight": 0.8,
        "cheekSquintLeft": 0.55,
        "cheekSquintRight": 0.55,
        "eyeSquintLeft": 0.25,
        "eyeSquintRight": 0.25,
    },
    "angry": {
        "browDownLeft": 0.8,
        "browDownRight": 0.8,
        "eyeSquintLeft": 0.4,
        "eyeSquintRight": 0.4,
        "mouthPressLeft": 0.35,
        "mouthPressRight": 0.35,
        "noseSneerLeft": 0.25,
        "noseSneerRight": 0.25,
    },
    "sad": {
        "browInnerUp": 0.75,
        "browDownLeft": 0.3,
        "browDownRight": 0.3,
        "mouthFrownLeft": 0.6,
        "mouthFrownRight": 0.6,
        "mouthShrugLower": 0.25,
    },
    "relaxed": {"mouthSmileLeft": 0.35, "mouthSmileRight": 0.35, "eyeSquintLeft": 0.15, "eyeSquintRight": 0.15},
    "surprised": {
        "browInnerUp": 0.8,
        "browOuterUpLeft": 0.8,
        "browOuterUpRight": 0.8,
        "eyeWideLeft": 0.7,
        "eyeWideRight": 0.7,
        "jawOpen": 0.25,
    },
    "neutral": {},
    "lookUp": {"eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0},
    "lookDown": {"eyeLookDownLeft": 1.0, "eyeLookDownRight": 1.0},
    "lookLeft": {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0},
    "lookRight": {"eyeLookInLeft": 1.0, "eyeLookOutRight": 1.0},
}
FITTED_PRESETS = ("aa", "ih", "ou", "ee", "oh", "happy", "angry", "sad", "surprised", "relaxed")
# The lips' opening as a linear function of the shapes (training/metrics.py lip_gap, with the jaw already
# net of mouthClose), and how much more than one shape's error the fit weighs it: a closure must stay shut.
GAP = {"jawOpen": 1.0, "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25, "mouthUpperUpLeft": 0.25,
       "mouthUpperUpRight": 0.25, "mouthFunnel": 0.3}  # fmt: skip
GAP_WEIGHT = 4.0
PROCEDURAL = {"mouth": ("aa", "ih", "ou", "ee", "oh"), "blink": ("blink", "blinkLeft", "blinkRight")}
EMOTIONS = ("happy", "angry", "sad", "relaxed", "surprised")


def vrm_extension(joint_nodes: dict[str, int], face_node: int, morph_names: tuple[str, ...], name: str) -> dict:
    """The `VRMC_vrm` object: `joint_nodes` maps SMPL-X joint names to glTF node indices, `face_node` is the
    node whose mesh carries the ARKit morph targets named `morph_names`."""
    expressions = {}
    for preset, shapes in VRM_EXPRESSIONS.items():
        expression: dict = {
            "morphTargetBinds": [
                {"node": face_node, "index": morph_names.index(shape), "weight": weight}
                for shape, weight in shapes.items()
            ],
            "isBinary": False,
        }
        if preset in EMOTIONS:  # an emotion's own mouth and lids win over lip sync and blinks at full weight
            expression |= {"overrideMouth": "blend", "overrideBlink": "blend", "overrideLookAt": "none"}
        expressions[preset] = expression
    return {
        "specVersion": "1.0",
        "meta": {
            "name": name,
            "version": "1",
            "authors": ["emostream"],
            "licenseUrl": "https://vrm.dev/licenses/1.0/",
            "avatarPermission": "everyone",
            "commercialUsage": "corporation",
            "creditNotation": "unnecessary",
            "allowRedistribution": True,
            "modification": "allowModificationRedistribution",
        },
        "humanoid": {"humanBones": {vrm: {"node": joint_nodes[smplx]} for smplx, vrm in SMPLX_TO_VRM.items()}},
        "lookAt": {
            "type": "bone",
            "offsetFromHeadBone": [0.0, 0.07, 0.08],
            "rangeMapHorizontalInner": {"inputMaxValue": 90.0, "outputScale": 30.0},
            "rangeMapHorizontalOuter": {"inputMaxValue": 90.0, "outputScale": 30.0},
            "rangeMapVerticalDown": {"inputMaxValue": 90.0, "outputScale": 25.0},
            "rangeMapVerticalUp": {"inputMaxValue": 90.0, "outputScale": 25.0},
        },
        "expressions": {"preset": expressions},
    }


def _fit_basis() -> np.ndarray:
    """Each fitted preset as its ARKit pose plus its weighted lip gap: the rows the fit combines."""
    basis = np.zeros((len(FITTED_PRESETS), len(ARKIT_BLENDSHAPES) + 1))
    for k, preset in enumerate(FITTED_PRESETS):
        for shape, weight in VRM_EXPRESSIONS[preset].items():
            basis[k, ARKIT_BLENDSHAPES.index(shape)] = weight
    basis[:, -1] = GAP_WEIGHT * basis[:, :-1] @ _GAP
    return basis


# The fit's constant parts, built once: it runs for every frame (the VMC bridge, presets-only avatars).
_GAP = np.array([GAP.get(shape, 0.0) for shape in ARKIT_BLENDSHAPES])
_JAW, _SEAL = ARKIT_BLENDSHAPES.index("jawOpen"), ARKIT_BLENDSHAPES.index("mouthClose")
_BASIS = _fit_basis()
_GRAM = _BASIS @ _BASIS.T
_STEP = 1.0 / np.abs(_GRAM).sum(axis=1).max()  # below 2 / the largest eigenvalue (Gershgorin): it converges


def arkit_to_vrm(face: np.ndarray, iterations: int = 200) -> dict[str, float]:
    """VRM preset weights that best rebuild an ARKit frame: blinks one to one, and the mouth and emotion
    presets by non-negative least squares on the ARKit poses each preset stands for (vrm.VRM_EXPRESSIONS,
    the same table the export writes), so an avatar with only presets still opens, rounds and closes its
    mouth with the speech; lips sealed over an open jaw count as a jaw that much less open, and the lips'
    opening weighs extra (GAP_WEIGHT), so a closure stays closed. Weights are clipped to [0, 1]."""
    arkit = np.clip(face[: len(ARKIT_BLENDSHAPES)], 0.0, 1.0).astype(np.float64)
    # No preset seals the lips over an open jaw (mouthClose): the seal is shown by opening the jaw less.
    arkit[_JAW] = max(arkit[_JAW] - arkit[_SEAL], 0.0)
    target = _BASIS @ np.append(arkit, GAP_WEIGHT * arkit @ _GAP)
    x = np.zeros(len(FITTED_PRESETS))
    for _ in range(iterations):  # projected gradient: small, fixed cost, no solver dependency
        x = np.clip(x - _STEP * (_GRAM @ x - target), 0.0, 1.0)
    weights = dict(zip(FITTED_PRESETS, x.tolist(), strict=True))
    weights["blinkLeft"] = float(arkit[ARKIT_BLENDSHAPES.index("eyeBlinkLeft")])
    weights["blinkRight"] = float(arkit[ARKIT_BLENDSHAPES.index("eyeBlinkRight")])
    return weights


def presets_as_arkit(weights: dict[str, float]) -> np.ndarray:
    """The ARKit pose an avatar that has only the VRM presets shows for these preset weights (each preset's
    ARKit pose of VRM_EXPRESSIONS, weighted and summed, clipped to [0, 1]): how lip sync through presets
    is judged beside the ARKit path (`emostream bench face-quality`)."""
    face = np.zeros(len(ARKIT_BLENDSHAPES))
    for preset, weight in weights.items():
        for shape, value in VRM_EXPRESSIONS.get(preset, {}).items():
            face[ARKIT_BLENDSHAPES.index(shape)] += weight * value
    if "blinkLeft" in weights:  # blinks are one to one, not a sum over presets
        face[ARKIT_BLENDSHAPES.index("eyeBlinkLeft")] = weights["blinkLeft"]
        face[ARKIT_BLENDSHAPES.index("eyeBlinkRight")] = weights.get("blinkRight", weights["blinkLeft"])
    return np.clip(face, 0.0, 1.0)
