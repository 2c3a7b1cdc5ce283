"""The built-in body on the SMPL-X skeleton of runtime/rigs.py: one skinned mesh (body_mesh.py) posed each
frame by forward kinematics; the built-in head sits on the head joint. Also the relaxed standing pose
shown when no body stream is running.
"""

from __future__ import annotations

import numpy as np

from emostream.runtime.rigs import BODY_CHANNELS, SMPLX_JOINTS, forward_kinematics, rest_offsets, rest_positions
from emostream.runtime.rotations import matrix_to_quat, quat_to_matrix

from .body_mesh import SkinnedMesh, build_body_mesh
from .camera import affine, rotation_y, rotation_z

# Head-local origin (the head mesh's centre) in the head joint's frame.
HEAD_CENTRE_IN_HEAD_JOINT = np.array([0.0, 0.075, 0.012])
STATURE_M = 1.75


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
    """The body mesh (body_mesh.py) and its skeleton: `pose` gives the joints' skinning matrices."""

    def __init__(self, stature_m: float = STATURE_M) -> None:
        self.offsets = rest_offsets(stature_m)
        self.mesh: SkinnedMesh = build_body_mesh(stature_m)
        self.rest_positions = rest_positions(self.offsets)

    def pose(self, body_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Skinning matrices (J, 4, 4), rest place -> posed place, and the head joint's world 4x4."""
        n = len(SMPLX_JOINTS)
        assert body_frame.shape == (len(BODY_CHANNELS),)
        local = quat_to_matrix(body_frame[: n * 4].reshape(n, 4).astype(np.float64))
        positions, world = forward_kinematics(local, body_frame[n * 4 :].astype(np.float64), self.offsets)
        frames = np.stack([affine(world[j], positions[j]) for j in range(n)])
        # The rest pose has no rotations, so undoing it is a translation.
        skin = np.stack([frames[j] @ affine(np.eye(3), -self.rest_positions[j]) for j in range(n)])
        return skin, frames[SMPLX_JOINTS.index("head")]

    def posed_vertices(self, body_frame: np.ndarray) -> np.ndarray:
        """The mesh's vertices (V, 3) in a body frame, skinned on the CPU as the shader does on the GPU."""
        skin, _ = self.pose(body_frame)
        blended = np.einsum("vk,vkij->vij", self.mesh.weights, skin[self.mesh.joints])
        return (blended[:, :3, :3] @ self.mesh.positions[:, :, None].astype(np.float64))[..., 0] + blended[:, :3, 3]
