"""Named channel layouts: the ARKit face rig and the SMPL-X body rig. Torch-free, so clients import it.

Conventions (docs/architecture.md): right-handed, Y up, the character faces +Z and its left is +X,
lengths in metres, angles in radians. Clients map channels by name, never by index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from emostream.runtime.rotations import matrix_to_quat

# Apple's 52 ARKit blendshape names, in Unreal / Live Link Face order. Weights are in [0, 1].
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)  # fmt: skip

# Head and eye rotations in radians. Yaw turns toward the character's left (+X), pitch tilts the face
# down, roll tilts the head toward the character's right shoulder. Eyes have no roll.
FACE_ROTATIONS: tuple[str, ...] = (
    "headYaw", "headPitch", "headRoll",
    "leftEyeYaw", "leftEyePitch", "rightEyeYaw", "rightEyePitch",
)  # fmt: skip

FACE_CHANNELS: tuple[str, ...] = ARKIT_BLENDSHAPES + FACE_ROTATIONS
FACE_FPS = 60

# Face regions (the protocol's face_strength keys): which channels each one holds.
FACE_REGION_CHANNELS: dict[str, tuple[str, ...]] = {
    "lower": tuple(n for n in ARKIT_BLENDSHAPES if n.startswith(("jaw", "mouth", "tongue", "cheekPuff"))),
    "upper": tuple(
        n
        for n in ARKIT_BLENDSHAPES
        if n.startswith(("brow", "eyeBlink", "eyeSquint", "eyeWide", "cheekSquint", "nose"))
    ),
    "eyes": tuple(n for n in FACE_CHANNELS if n.startswith("eyeLook") or "Eye" in n),
    "head": ("headYaw", "headPitch", "headRoll"),
}

# SMPL-X joints with rotations, in the model's order, and each one's parent (-1 for the root).
SMPLX_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)  # fmt: skip
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip
UPPER_BODY_JOINTS: tuple[int, ...] = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
LOWER_BODY_JOINTS: tuple[int, ...] = (0, 1, 2, 4, 5, 7, 8, 10, 11)
HAND_JOINTS: tuple[int, ...] = tuple(range(25, 55))
BODY_FPS = 30

# Wire layout of one body frame: a unit quaternion (x, y, z, w) of each joint's local rotation, then the
# root translation in metres.
BODY_CHANNELS: tuple[str, ...] = tuple(f"{joint}.q{axis}" for joint in SMPLX_JOINTS for axis in "xyzw") + (
    "root.tx", "root.ty", "root.tz",
)  # fmt: skip


_FACE_INDEX = {name: i for i, name in enumerate(FACE_CHANNELS)}
_REGION_INDICES = {region: [_FACE_INDEX[n] for n in names] for region, names in FACE_REGION_CHANNELS.items()}


def face_strength_gains(strengths: Mapping[str, float]) -> np.ndarray:
    """(len(FACE_CHANNELS),) float32: each channel's gain under the per-region strengths (1 elsewhere)."""
    gains = np.ones(len(FACE_CHANNELS), np.float32)
    for region, gain in strengths.items():
        gains[_REGION_INDICES[region]] *= gain
    return gains


def apply_face_strength(frame: np.ndarray, strengths: dict[str, float] | None) -> np.ndarray:
    """A face frame (FACE_CHANNELS order) with each region scaled by its strength (the Audio2Face-style
    knobs of the protocol's face_strength control); blendshapes stay within [0, 1]. Scaling jawOpen and
    mouthClose together keeps a closed mouth closed."""
    if not strengths or all(v == 1.0 for v in strengths.values()):
        return frame
    out = frame.copy()
    for region, gain in strengths.items():
        out[_REGION_INDICES[region]] *= gain
    out[: len(ARKIT_BLENDSHAPES)] = np.clip(out[: len(ARKIT_BLENDSHAPES)], 0.0, 1.0)
    return out


@dataclass(frozen=True)
class Rig:
    """A named channel layout as sent to clients in the session header."""

    name: str  # "face" or "body"
    fps: int  # frames per second of media time
    channels: tuple[str, ...]  # one name per float32 in a frame, in wire order

    def index(self, channel: str) -> int:
        """Position of `channel` in a frame; raises KeyError naming the rig if absent."""
        try:
            return self.channels.index(channel)
        except ValueError:
            raise KeyError(f"rig {self.name!r} has no channel {channel!r}") from None


FACE_RIG = Rig("face", FACE_FPS, FACE_CHANNELS)
BODY_RIG = Rig("body", BODY_FPS, BODY_CHANNELS)
RIGS: dict[str, Rig] = {rig.name: rig for rig in (FACE_RIG, BODY_RIG)}


def _hand_offsets(side: float, hand_length_m: float) -> list[np.ndarray]:
    """Finger joint offsets (index, middle, pinky, ring, thumb; 3 joints each) for a T-pose hand.

    `side` is +1 for the left hand (fingers point along +X) and -1 for the right. Knuckle positions and
    phalanx lengths are fractions of hand length (wrist crease to middle fingertip), after published
    adult hand proportions (Buryanov & Kotiuk 2010): proximal, middle phalanx, then the joint chain ends.
    """
    # (knuckle along the arm, knuckle forward (+Z), proximal, middle) as fractions of hand length.
    fingers = {
        "index": (0.46, 0.13, 0.24, 0.14),
        "middle": (0.47, 0.02, 0.27, 0.16),
        "pinky": (0.41, -0.19, 0.19, 0.11),
        "ring": (0.45, -0.09, 0.25, 0.15),
    }
    offsets: list[np.ndarray] = []
    for along, forward, proximal, middle in fingers.values():
        offsets.append(np.array([side * along, -0.01, forward]) * hand_length_m)
        offsets.append(np.array([side * proximal, 0.0, 0.0]) * hand_length_m)
        offsets.append(np.array([side * middle, 0.0, 0.0]) * hand_length_m)
    # Thumb: carpometacarpal joint near the wrist, then the metacarpal and proximal phalanx angle forward.
    offsets.append(np.array([side * 0.12, -0.06, 0.14]) * hand_length_m)
    offsets.append(np.array([side * 0.18, -0.03, 0.14]) * hand_length_m)
    offsets.append(np.array([side * 0.15, -0.02, 0.10]) * hand_length_m)
    return offsets


def rest_offsets(stature_m: float = 1.75) -> np.ndarray:
    """Offsets (55, 3) in metres of each SMPL-X joint from its parent in the T-pose rest skeleton.

    Derived from segment lengths as fractions of stature H (Drillis & Contini 1966, as tabulated by
    Winter, "Biomechanics and Motor Control of Human Movement"): hip joints at 0.530 H, thigh 0.245 H,
    shank 0.246 H, ankle height 0.039 H, hand 0.108 H. The arm is measured between joint centres, not
    bony landmarks: shoulder joints 0.200 H apart, upper arm 0.172 H, forearm 0.140 H, so that the arm
    span (fingertip to fingertip) comes to 1.04 H as in adults. The root offset is its height.
    """
    H = stature_m
    hand = 0.108 * H
    # Heights of the trunk joints as fractions of H; each offset is the difference to its parent.
    pelvis_y, spine1_y, spine2_y, spine3_y, neck_y, head_y = 0.560, 0.620, 0.690, 0.745, 0.840, 0.900
    by_name: dict[str, np.ndarray] = {
        "pelvis": np.array([0.0, pelvis_y, 0.0]),
        "spine1": np.array([0.0, spine1_y - pelvis_y, -0.008]),
        "spine2": np.array([0.0, spine2_y - spine1_y, 0.006]),
        "spine3": np.array([0.0, spine3_y - spine2_y, 0.002]),
        "neck": np.array([0.0, neck_y - spine3_y, -0.010]),
        "head": np.array([0.0, head_y - neck_y, 0.012]),
        "jaw": np.array([0.0, -0.012, 0.010]),
        "left_eye_smplhf": np.array([0.018, 0.036, 0.045]),
        "right_eye_smplhf": np.array([-0.018, 0.036, 0.045]),
    }
    for side, sign in (("left", 1.0), ("right", -1.0)):
        by_name.update({
            f"{side}_hip": np.array([sign * 0.050, 0.530 - pelvis_y, 0.0]),
            f"{side}_knee": np.array([sign * 0.004, -0.245, 0.002]),
            f"{side}_ankle": np.array([sign * -0.004, -0.246, -0.012]),
            f"{side}_foot": np.array([sign * 0.008, -0.030, 0.075]),
            f"{side}_collar": np.array([sign * 0.030, 0.800 - spine3_y, -0.002]),
            f"{side}_shoulder": np.array([sign * (0.100 - 0.030), 0.810 - 0.800, -0.006]),
            f"{side}_elbow": np.array([sign * 0.172, 0.0, -0.004]),
            f"{side}_wrist": np.array([sign * 0.140, 0.0, 0.002]),
        })  # fmt: skip
    offsets = np.zeros((len(SMPLX_JOINTS), 3))
    for name, offset in by_name.items():
        offsets[SMPLX_JOINTS.index(name)] = offset * H
    for side, sign in (("left", 1.0), ("right", -1.0)):
        first = SMPLX_JOINTS.index(f"{side}_index1")
        offsets[first : first + 15] = _hand_offsets(sign, hand)
    return offsets


def forward_kinematics(
    local_rotations: np.ndarray, root_translation: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions and rotations from local rotations.

    local_rotations: (..., 55, 3, 3) rotation matrices, each relative to its parent.
    root_translation: (..., 3) metres, added to the root's rest position.
    offsets: (55, 3) rest offsets from `rest_offsets`.
    Returns positions (..., 55, 3) and world rotations (..., 55, 3, 3).
    """
    positions = np.empty(local_rotations.shape[:-2] + (3,))
    world = np.empty_like(local_rotations)
    for j, parent in enumerate(SMPLX_PARENTS):
        if parent < 0:
            world[..., j, :, :] = local_rotations[..., j, :, :]
            positions[..., j, :] = offsets[j] + root_translation
            continue
        world[..., j, :, :] = world[..., parent, :, :] @ local_rotations[..., j, :, :]
        positions[..., j, :] = positions[..., parent, :] + np.einsum(
            "...ij,j->...i", world[..., parent, :, :], offsets[j]
        )
    return positions, world


def rest_positions(offsets: np.ndarray) -> np.ndarray:
    """World joint positions (55, 3) of the rest pose, which has no rotations: the T-pose."""
    return forward_kinematics(np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)), np.zeros(3), offsets)[0]


def rest_pose_frame() -> np.ndarray:
    """One body frame (BODY_CHANNELS layout) holding the rest pose: identity rotations, zero translation."""
    quats = matrix_to_quat(np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)))
    return np.concatenate([quats.reshape(-1), np.zeros(3)]).astype(np.float32)
