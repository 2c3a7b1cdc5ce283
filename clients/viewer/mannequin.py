"""A segment mannequin for the SMPL-X skeleton of runtime/rigs.py: one ellipsoid per bone (torso pieces,
limbs, finger phalanges), placed each frame by forward kinematics; the built-in head sits on the head
joint. Also the relaxed standing pose shown when no body stream is running.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.runtime.rigs import BODY_CHANNELS, SMPLX_JOINTS, SMPLX_PARENTS, forward_kinematics, rest_offsets
from emostream.runtime.rotations import matrix_to_quat, quat_to_matrix

from .camera import affine, rotation_y, rotation_z

SHIRT = np.array([0.30, 0.44, 0.62])
TROUSERS = np.array([0.20, 0.22, 0.27])
SHOES = np.array([0.12, 0.11, 0.11])
SKIN = np.array([0.94, 0.77, 0.66])

# Head-local origin (the head mesh's centre) in the head joint's frame.
HEAD_CENTRE_IN_HEAD_JOINT = np.array([0.0, 0.075, 0.012])
STATURE_M = 1.75

# Half-thickness (x, z) of each bone's ellipsoid, keyed by the bone's child joint; absent joints get none.
_LIMB_RADII: dict[str, tuple[float, float]] = {
    "left_knee": (0.075, 0.080), "left_ankle": (0.052, 0.055), "left_foot": (0.040, 0.050),
    "left_shoulder": (0.060, 0.055), "left_elbow": (0.048, 0.048), "left_wrist": (0.038, 0.036),
    "spine2": (0.150, 0.100), "spine3": (0.160, 0.105), "neck": (0.150, 0.095), "head": (0.052, 0.055),
}  # fmt: skip
_FINGER_RADIUS = {"1": 0.0105, "2": 0.0095, "3": 0.0085}


def _radii(joint: str) -> tuple[float, float] | None:
    if joint.startswith("right_"):
        joint = "left_" + joint.removeprefix("right_")
    if joint in _LIMB_RADII:
        return _LIMB_RADII[joint]
    for finger in ("index", "middle", "ring", "pinky", "thumb"):
        if joint.startswith(f"left_{finger}"):
            r = _FINGER_RADIUS[joint[-1]] * (1.15 if finger == "thumb" else 1.0)
            return r, r
    return None


def _colour(joint: str) -> np.ndarray:
    if any(k in joint for k in ("index", "middle", "ring", "pinky", "thumb", "head")):
        return SKIN
    if any(k in joint for k in ("knee", "ankle")):
        return TROUSERS
    if "foot" in joint:
        return SHOES
    return SHIRT


def _align_y(direction: np.ndarray) -> np.ndarray:
    """A rotation taking +Y to `direction` (unit)."""
    y = np.array([0.0, 1.0, 0.0])
    v = np.cross(y, direction)
    c = float(np.dot(y, direction))
    if c < -0.999999:
        return np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


@dataclass(frozen=True)
class Segment:
    joint: int  # the ellipsoid moves with this joint's parent frame...
    local: np.ndarray  # ...through this 4x4 (unit sphere -> ellipsoid in the parent's frame)
    colour: np.ndarray


def build_segments(offsets: np.ndarray) -> list[Segment]:
    segments = []
    for j, name in enumerate(SMPLX_JOINTS):
        parent = SMPLX_PARENTS[j]
        radii = _radii(name)
        if parent < 0 or radii is None:
            continue
        offset = offsets[j]
        length = float(np.linalg.norm(offset))
        rotation = _align_y(offset / length)
        scale = np.diag([radii[0], length * 0.5 + min(radii) * 0.6, radii[1]])
        segments.append(Segment(parent, affine(rotation @ scale, offset * 0.5), _colour(name)))
    # Volumes that are not bones: hips, chest, hands' palms, heels.
    by = {n: i for i, n in enumerate(SMPLX_JOINTS)}
    segments.append(Segment(by["pelvis"], affine(np.diag([0.165, 0.115, 0.115]), np.array([0, -0.02, 0])), TROUSERS))
    segments.append(Segment(by["spine3"], affine(np.diag([0.185, 0.125, 0.115]), np.array([0, 0.06, 0.0])), SHIRT))
    for side in ("left", "right"):
        palm = offsets[by[f"{side}_middle1"]]
        segments.append(Segment(by[f"{side}_wrist"], affine(np.diag([0.052, 0.014, 0.042]), palm * 0.55), SKIN))
        segments.append(
            Segment(by[f"{side}_ankle"], affine(np.diag([0.045, 0.035, 0.07]), np.array([0, -0.03, 0.03])), SHOES)
        )
        segments.append(Segment(by[f"{side}_shoulder"], affine(np.eye(3) * 0.062, np.zeros(3)), SHIRT))
    return segments


def relaxed_pose() -> np.ndarray:
    """A standing body frame (BODY_CHANNELS layout): arms down and a little bent, fingers softly curled."""
    rotations = np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)).copy()
    by = {n: i for i, n in enumerate(SMPLX_JOINTS)}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        rotations[by[f"{side}_shoulder"]] = rotation_z(-sign * 1.25)
        rotations[by[f"{side}_elbow"]] = rotation_y(-sign * 0.35)
        rotations[by[f"{side}_wrist"]] = rotation_z(-sign * 0.1)
        for finger in ("index", "middle", "ring", "pinky"):
            for k in "123":
                rotations[by[f"{side}_{finger}{k}"]] = rotation_z(-sign * 0.25)
        rotations[by[f"{side}_thumb1"]] = rotation_y(-sign * 0.3)
    quats = matrix_to_quat(rotations)
    return np.concatenate([quats.reshape(-1), np.zeros(3)]).astype(np.float32)


class Mannequin:
    def __init__(self, stature_m: float = STATURE_M) -> None:
        self.offsets = rest_offsets(stature_m)
        self.segments = build_segments(self.offsets)
        self.colours = np.stack([s.colour for s in self.segments]).astype(np.float32)

    def pose(self, body_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Instance model matrices (S, 4, 4) and the head joint's world 4x4 for one body frame."""
        n = len(SMPLX_JOINTS)
        assert body_frame.shape == (len(BODY_CHANNELS),)
        local = quat_to_matrix(body_frame[: n * 4].reshape(n, 4).astype(np.float64))
        positions, world = forward_kinematics(local, body_frame[n * 4 :].astype(np.float64), self.offsets)
        frames = np.stack([affine(world[j], positions[j]) for j in range(n)])
        models = np.stack([frames[s.joint] @ s.local for s in self.segments])
        return models, frames[SMPLX_JOINTS.index("head")]
