"""The viewer's built-in avatar as one rigged model: the SMPL-X skeleton of runtime/rigs.py in its T-pose,
a body mesh skinned to it, the head with its 52 ARKit morph targets and the two eyes, all in metres, Y up,
facing +Z.

The body is the mannequin's ellipsoids (viewer/mannequin.py) joined into one mesh, each vertex bound with
full weight to the joint its ellipsoid moves with; the head rides on the head joint, each eye on its eye
joint, which is moved to the centre of the eyeball so that eye rotations turn the eye in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, SMPLX_JOINTS, SMPLX_PARENTS, forward_kinematics, rest_offsets

from ..viewer.blendshapes import build_shapes
from ..viewer.head_mesh import build_eye, build_head
from ..viewer.mannequin import HEAD_CENTRE_IN_HEAD_JOINT, STATURE_M, build_segments

J = {name: i for i, name in enumerate(SMPLX_JOINTS)}
EYE_JOINTS = ("left_eye_smplhf", "right_eye_smplhf")


@dataclass(frozen=True)
class Part:
    """One mesh: vertices in the rest (T) pose, world metres, each bound to one joint."""

    name: str
    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    colors: np.ndarray  # (V, 3) float32, linear 0..1
    triangles: np.ndarray  # (F, 3) uint32
    joints: np.ndarray  # (V,) index into SMPLX_JOINTS
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


def _unit_sphere(rings: int = 8, segments: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 1 (poles shared): (V, 3) points, (F, 3) triangles with outward winding."""
    polar = np.linspace(0, np.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack(
        [
            np.sin(polar)[:, None] * np.sin(azimuth),
            np.cos(polar)[:, None] * np.ones_like(azimuth),
            np.sin(polar)[:, None] * np.cos(azimuth),
        ],
        axis=-1,
    ).reshape(-1, 3)
    points = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    bottom = len(points) - 1
    tris = []
    for s in range(segments):
        n = (s + 1) % segments
        tris.append((0, 1 + s, 1 + n))
        for r in range(rings - 2):
            a, b = 1 + r * segments + s, 1 + r * segments + n
            c, d = a + segments, b + segments
            tris += [(a, c, d), (a, d, b)]
        last = 1 + (rings - 2) * segments
        tris.append((bottom, last + n, last + s))
    return points, np.array(tris, np.int64)


def _body(offsets: np.ndarray, rest: np.ndarray) -> Part:
    sphere, sphere_tris = _unit_sphere()
    positions, normals, colors, tris, joints = [], [], [], [], []
    count = 0
    for segment in build_segments(offsets):
        linear, shift = segment.local[:3, :3], segment.local[:3, 3]
        points = sphere @ linear.T + shift + rest[segment.joint]
        normal = sphere @ np.linalg.inv(linear)  # inverse transpose, for row vectors
        positions.append(points)
        normals.append(normal / np.linalg.norm(normal, axis=1, keepdims=True))
        colors.append(np.broadcast_to(segment.colour, points.shape))
        tris.append(sphere_tris + count)
        joints.append(np.full(len(points), segment.joint))
        count += len(points)
    return Part(
        "body",
        np.concatenate(positions).astype(np.float32),
        np.concatenate(normals).astype(np.float32),
        np.concatenate(colors).astype(np.float32),
        np.concatenate(tris).astype(np.uint32),
        np.concatenate(joints),
    )


def build_rigged_avatar(stature_m: float = STATURE_M) -> RiggedAvatar:
    offsets = rest_offsets(stature_m)
    head = build_head()
    head_origin = (
        forward_kinematics(np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)), np.zeros(3), offsets)[0][J["head"]]
        + HEAD_CENTRE_IN_HEAD_JOINT
    )
    # The eye joints move to the eyeballs' centres (the rig's defaults are a head-size guess).
    for name, centre in zip(EYE_JOINTS, head.eye_centres, strict=True):
        offsets[J[name]] = HEAD_CENTRE_IN_HEAD_JOINT + centre
    identity = np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3))
    rest = forward_kinematics(identity, np.zeros(3), offsets)[0]

    shapes = build_shapes(head)
    assert shapes.names == tuple(ARKIT_BLENDSHAPES)
    face = Part(
        "head",
        (head.positions + head_origin).astype(np.float32),
        head.normals,
        head.colors,
        head.triangles.astype(np.uint32),
        np.full(len(head.positions), J["head"]),
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
        eye_joints.append(np.full(len(eye.positions), J[name]))
    eyes = Part(
        "eyes",
        np.concatenate(eye_positions).astype(np.float32),
        np.concatenate(eye_normals),
        np.concatenate(eye_colors),
        np.concatenate(eye_tris).astype(np.uint32),
        np.concatenate(eye_joints),
    )
    return RiggedAvatar(tuple(SMPLX_JOINTS), tuple(SMPLX_PARENTS), offsets, rest, (_body(offsets, rest), face, eyes))
