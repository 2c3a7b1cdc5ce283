"""The built-in body as one skinned surface, generated from code: a signed distance field of rounded
primitives around the SMPL-X skeleton of runtime/rigs.py in its T-pose, turned into triangles by surface
nets. The shirt ends in cuffs at the wrists, and the hands are their own finer surfaces that come out of
them, so fingers stay apart; the head (head_mesh.py) sits on the neck.

Limbs join the torso with a smooth union (the shoulders, hips and neck blend in), but never each other,
so the thighs do not fuse. Each vertex is skinned to up to four joints by how near it is to the
primitives each joint carries: halfway between the upper arm and the forearm it follows both, so elbows
and knees bend without tearing. Its colour (shirt, trousers, shoes, skin) is the nearest primitive's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emostream.runtime.rigs import SMPLX_JOINTS, rest_offsets, rest_positions

from .sdf import Cone, Ellipsoid, Primitive, sample_grid, smooth_min
from .surface_nets import surface_nets

SHIRT = np.array([0.30, 0.44, 0.62])
CUFF = np.array([0.25, 0.37, 0.54])
TROUSERS = np.array([0.20, 0.22, 0.27])
SHOES = np.array([0.12, 0.11, 0.11])
SKIN = np.array([0.94, 0.77, 0.66])

BODY_SPACING = 0.008  # metres between grid samples
HAND_SPACING = 0.0025  # fingers are 16 mm thick and 4 mm apart
LIMB_BLEND = 0.035  # smooth-union radius where a limb meets the torso
JOINT_BLEND = 0.012  # ...between the pieces of one limb (elbow, knee)
HAND_BLEND = 0.008  # ...where a finger meets the palm
BODY_SKIN_SOFTNESS = 0.012  # metres: how far a bend shares a vertex between two joints
HAND_SKIN_SOFTNESS = 0.004  # ...on fingers, whose bones are 2-5 cm long
MAX_INFLUENCES = 4

J = {name: i for i, name in enumerate(SMPLX_JOINTS)}


@dataclass(frozen=True)
class Shape:
    """A core group (smooth-unioned with itself) and limbs, each smooth-unioned with the core only."""

    core: tuple[Primitive, ...]
    limbs: tuple[tuple[Primitive, ...], ...]
    core_blend: float
    limb_blend: float
    inner_blend: float

    @property
    def primitives(self) -> tuple[Primitive, ...]:
        return self.core + tuple(p for limb in self.limbs for p in limb)

    def distance(self, p: np.ndarray) -> np.ndarray:
        core = self._union(self.core, p, self.core_blend)
        if not self.limbs:
            return core
        limbs = [smooth_min(core, self._union(limb, p, self.inner_blend), self.limb_blend) for limb in self.limbs]
        return np.min(limbs, axis=0)

    @staticmethod
    def _union(parts: tuple[Primitive, ...], p: np.ndarray, k: float) -> np.ndarray:
        d = parts[0].distance(p)
        for part in parts[1:]:
            d = smooth_min(d, part.distance(p), k)
        return d


def _mirror(x: np.ndarray) -> np.ndarray:
    return x * np.array([-1.0, 1.0, 1.0])


def _body_shape(rest: np.ndarray) -> Shape:
    at = {name: rest[i] for name, i in J.items()}
    v = np.array
    core = (
        Ellipsoid(v([0.0, 0.955, -0.005]), v([0.150, 0.105, 0.105]), J["pelvis"], TROUSERS),
        Ellipsoid(v([0.0, 1.085, 0.000]), v([0.134, 0.130, 0.095]), J["spine1"], SHIRT),
        Ellipsoid(v([0.0, 1.205, 0.006]), v([0.145, 0.130, 0.102]), J["spine2"], SHIRT),
        Ellipsoid(v([0.0, 1.330, 0.000]), v([0.160, 0.115, 0.100]), J["spine3"], SHIRT),
        Cone(v([-0.13, 1.425, -0.022]), v([0.13, 1.425, -0.022]), 0.052, 0.052, J["spine3"], SHIRT),  # trapezius
        Cone(v([0.0, 1.40, -0.02]), v([0.0, 1.59, 0.0]), 0.058, 0.050, J["neck"], SKIN),
    )
    limbs: list[tuple[Primitive, ...]] = []
    for side in ("left", "right"):
        flip = (lambda x: x) if side == "left" else _mirror
        s = f"{side}_"
        limbs.append((  # shoulder and arm, ending in a cuff at the wrist
            Cone(flip(v([0.03, 1.405, -0.012])), at[s + "shoulder"], 0.062, 0.056, J[s + "collar"], SHIRT),
            Cone(at[s + "shoulder"], at[s + "elbow"], 0.052, 0.042, J[s + "shoulder"], SHIRT),
            Cone(at[s + "elbow"], at[s + "wrist"] - flip(v([0.012, 0.0, 0.0])), 0.041, 0.036, J[s + "elbow"], CUFF),
        ))  # fmt: skip
        toe = at[s + "foot"] + v([0.0, -0.01, 0.035])
        limbs.append((  # leg and shoe
            Cone(at[s + "hip"] + v([0.0, 0.03, 0.0]), at[s + "knee"], 0.078, 0.054, J[s + "hip"], TROUSERS),
            Cone(at[s + "knee"], at[s + "ankle"] + v([0.0, 0.01, 0.0]), 0.053, 0.040, J[s + "knee"], TROUSERS),
            Ellipsoid(at[s + "ankle"] + v([0.0, -0.028, 0.02]), v([0.046, 0.040, 0.095]), J[s + "ankle"], SHOES),
            Cone(at[s + "foot"] + v([0.0, 0.0, -0.03]), toe, 0.036, 0.028, J[s + "foot"], SHOES),
        ))  # fmt: skip
    return Shape(core, tuple(limbs), core_blend=0.08, limb_blend=LIMB_BLEND, inner_blend=JOINT_BLEND)


def _hand_shape(rest: np.ndarray, side: str) -> Shape:
    at = {name: rest[i] for name, i in J.items()}
    s = f"{side}_"
    out = 1.0 if side == "left" else -1.0
    along = np.array([out, 0.0, 0.0])  # the T-pose arm points along +-X
    wrist = at[s + "wrist"]
    knuckles = [at[s + f + "1"] for f in ("index", "middle", "ring", "pinky")]
    palm_centre = wrist + 0.55 * (at[s + "middle1"] - wrist) + np.array([0.0, 0.0, -0.008])
    core = (
        Cone(wrist - 0.035 * along, wrist, 0.027, 0.026, J[s + "elbow"], SKIN),  # inside the cuff
        Ellipsoid(palm_centre, np.array([0.048, 0.016, 0.044]), J[s + "wrist"], SKIN),
        Cone(knuckles[0] - 0.01 * along, knuckles[3] - 0.01 * along, 0.014, 0.012, J[s + "wrist"], SKIN),
        Cone(wrist + 0.012 * along + np.array([0.0, -0.004, 0.012]), at[s + "thumb1"], 0.017, 0.014,
             J[s + "wrist"], SKIN),  # the ball of the thumb
    )  # fmt: skip
    fingers = []
    thickness = {"thumb": 0.0105, "index": 0.0088, "middle": 0.0090, "ring": 0.0086, "pinky": 0.0076}
    for finger, radius in thickness.items():
        chain = [at[s + f"{finger}{k}"] for k in (1, 2, 3)]
        chain.append(chain[2] + 0.8 * (chain[2] - chain[1]))  # the fingertip, past the last joint
        radii = [radius, radius * 0.93, radius * 0.86, radius * 0.78]
        fingers.append(tuple(
            Cone(chain[k], chain[k + 1], radii[k], radii[k + 1], J[s + f"{finger}{k + 1}"], SKIN) for k in range(3)
        ))  # fmt: skip
    return Shape(core, tuple(fingers), core_blend=0.01, limb_blend=HAND_BLEND, inner_blend=0.002)


@dataclass(frozen=True)
class SkinnedMesh:
    """Rest-pose (T-pose) surface, world metres; each vertex follows up to four joints."""

    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    colors: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (F, 3) uint32
    joints: np.ndarray  # (V, 4) joint indices
    weights: np.ndarray  # (V, 4) float32, rows sum to 1


def _bounds(shape: Shape, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    corners = []
    for p in shape.primitives:
        if isinstance(p, Cone):
            r = max(p.ra, p.rb)
            corners += [np.minimum(p.a, p.b) - r, np.maximum(p.a, p.b) + r]
        else:
            corners += [p.centre - p.radii, p.centre + p.radii]
    return np.min(corners, axis=0) - 3 * spacing, np.max(corners, axis=0) + 3 * spacing


def _surface(shape: Shape, spacing: float, softness: float) -> SkinnedMesh:
    values, origin = sample_grid(shape.distance, *_bounds(shape, spacing), spacing)
    positions, triangles = surface_nets(values, origin, spacing)
    eps = spacing * 0.25
    gradient = np.stack(
        [shape.distance(positions + e) - shape.distance(positions - e) for e in np.eye(3) * eps], axis=1
    )
    normals = gradient / np.maximum(np.linalg.norm(gradient, axis=1, keepdims=True), 1e-12)

    parts = shape.primitives
    distances = np.stack([p.distance(positions) for p in parts], axis=1)  # (V, P)
    nearest = distances.min(axis=1, keepdims=True)
    colour_weight = np.exp(-(distances - nearest) / 0.003)
    colors = colour_weight @ np.stack([p.colour for p in parts]) / colour_weight.sum(axis=1, keepdims=True)

    closeness = np.exp(-(distances - nearest) / softness)
    per_joint = np.zeros((len(positions), len(SMPLX_JOINTS)))
    for k, p in enumerate(parts):
        per_joint[:, p.joint] += closeness[:, k]
    joints = np.argsort(-per_joint, axis=1)[:, :MAX_INFLUENCES]
    weights = np.take_along_axis(per_joint, joints, axis=1)
    weights[weights < 0.02 * weights[:, :1]] = 0.0  # a sliver of influence only costs smoothness
    weights /= weights.sum(axis=1, keepdims=True)
    return SkinnedMesh(
        positions.astype(np.float32),
        normals.astype(np.float32),
        colors.astype(np.float32),
        triangles.astype(np.uint32),
        joints.astype(np.int64),
        weights.astype(np.float32),
    )


def _join(meshes: list[SkinnedMesh]) -> SkinnedMesh:
    offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
    return SkinnedMesh(
        np.concatenate([m.positions for m in meshes]),
        np.concatenate([m.normals for m in meshes]),
        np.concatenate([m.colors for m in meshes]),
        np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]).astype(np.uint32),
        np.concatenate([m.joints for m in meshes]),
        np.concatenate([m.weights for m in meshes]),
    )


@lru_cache(maxsize=2)
def build_body_mesh(stature_m: float = 1.75) -> SkinnedMesh:
    """The clothed body with both hands, skinned to the SMPL-X joints in the rig's T-pose."""
    rest = rest_positions(rest_offsets(stature_m))
    meshes = [_surface(_body_shape(rest), BODY_SPACING, BODY_SKIN_SOFTNESS)]
    meshes += [_surface(_hand_shape(rest, side), HAND_SPACING, HAND_SKIN_SOFTNESS) for side in ("left", "right")]
    return _join(meshes)
