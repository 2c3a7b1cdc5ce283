"""The viewer's built-in avatar as one rigged model: the SMPL-X skeleton of runtime/rigs.py in its T-pose,
a body mesh skinned to it, the head with its 52 ARKit morph targets and the two eyes, all in metres, Y up,
facing +Z.

The body is the viewer's skinned body mesh (viewer/body_mesh.py), up to four joints per vertex; the head
rides on the head joint, each eye on its eye joint, which is moved to the centre of the eyeball so that
eye rotations turn the eye in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, SMPLX_JOINTS, SMPLX_PARENTS, rest_offsets, rest_positions

from ..viewer.blendshapes import build_shapes
from ..viewer.body_mesh import build_body_mesh
from ..viewer.head_mesh import build_eye, build_head
from ..viewer.mannequin import HEAD_CENTRE_IN_HEAD_JOINT, STATURE_M

J = {name: i for i, name in enumerate(SMPLX_JOINTS)}
EYE_JOINTS = ("left_eye_smplhf", "right_eye_smplhf")


@dataclass(frozen=True)
class Part:
    """One mesh: vertices in the rest (T) pose, world metres, each following up to four joints."""

    name: str
    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    colors: np.ndarray  # (V, 3) float32, linear 0..1
    triangles: np.ndarray  # (F, 3) uint32
    joints: np.ndarray  # (V, 4) indices into SMPLX_JOINTS
    weights: np.ndarray  # (V, 4), rows sum to 1
    morph_names: tuple[str, ...] = ()
    morph_positions: np.ndarray | None = None  # (M, V, 3) deltas
    morph_normals: np.ndarray | None = None  # (M, V, 3) deltas


@dataclass(frozen=True)
class RiggedAvatar:
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3) rest translation of each joint from its parent
    rest_positions: np.ndarray  # (J, 3) world rest positions (rotations are all identity: the T-pose)
    parts: tuple[Part, ...]

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)


def _rigid(count: int, joint: int) -> tuple[np.ndarray, np.ndarray]:
    """Joints and weights binding `count` vertices wholly to one joint."""
    joints = np.zeros((count, 4), np.int64)
    joints[:, 0] = joint
    weights = np.zeros((count, 4), np.float32)
    weights[:, 0] = 1.0
    return joints, weights


def _body(stature_m: float) -> Part:
    mesh = build_body_mesh(stature_m)
    return Part("body", mesh.positions, mesh.normals, mesh.colors, mesh.triangles, mesh.joints, mesh.weights)


def build_rigged_avatar(stature_m: float = STATURE_M) -> RiggedAvatar:
    offsets = rest_offsets(stature_m)
    head = build_head()
    head_origin = rest_positions(offsets)[J["head"]] + HEAD_CENTRE_IN_HEAD_JOINT
    # The eye joints move to the eyeballs' centres (the rig's defaults are a head-size guess).
    for name, centre in zip(EYE_JOINTS, head.eye_centres, strict=True):
        offsets[J[name]] = HEAD_CENTRE_IN_HEAD_JOINT + centre
    rest = rest_positions(offsets)

    shapes = build_shapes(head)
    assert shapes.names == tuple(ARKIT_BLENDSHAPES)
    face = Part(
        "head",
        (head.positions + head_origin).astype(np.float32),
        head.normals,
        head.colors,
        head.triangles.astype(np.uint32),
        *_rigid(len(head.positions), J["head"]),
        shapes.names,
        shapes.position_deltas.astype(np.float32),
        shapes.normal_deltas.astype(np.float32),
    )
    eye = build_eye()
    eye_positions, eye_normals, eye_colors, eye_tris, eye_joints = [], [], [], [], []
    for k, name in enumerate(EYE_JOINTS):
        eye_positions.append(eye.positions + rest[J[name]])
        eye_normals.append(eye.normals)
        eye_colors.append(eye.colors)
        eye_tris.append(eye.triangles + k * len(eye.positions))
        eye_joints.append(_rigid(len(eye.positions), J[name]))
    eyes = Part(
        "eyes",
        np.concatenate(eye_positions).astype(np.float32),
        np.concatenate(eye_normals),
        np.concatenate(eye_colors),
        np.concatenate(eye_tris).astype(np.uint32),
        np.concatenate([j for j, _ in eye_joints]),
        np.concatenate([w for _, w in eye_joints]),
    )
    return RiggedAvatar(tuple(SMPLX_JOINTS), tuple(SMPLX_PARENTS), offsets, rest, (_body(stature_m), face, eyes))
