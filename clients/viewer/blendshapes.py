"""The 52 ARKit blendshapes of the built-in head, authored as displacement fields over its rest vertices.

Every field has compact support, so a shape moves its own region and nothing else (tests check this).
"Left" is the character's left (+X), as in ARKit. Sizes are in metres at weight 1; a few shapes are
rigid motions (the jaw turns about its hinge, lids slide over the eyeball) written as the displacement
from rest to the posed vertex, so weights blend them linearly like any other blendshape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES

from . import head_mesh as H
from .head_mesh import HeadMesh, vertex_normals

JAW_OPEN_RAD = 0.36
JAW_HINGE = np.array([0.0, -0.005, -0.012])  # in front of the ears, at cheekbone height
BLINK_UPPER_EDGE_DEG, BLINK_LOWER_EDGE_DEG = -16.0, -19.0


@dataclass(frozen=True)
class ShapeSet:
    names: tuple[str, ...]
    position_deltas: np.ndarray  # (52, V, 3) float32
    normal_deltas: np.ndarray  # (52, V, 3)

    def pose(self, head: HeadMesh, weights: np.ndarray) -> np.ndarray:
        """Posed vertex positions for 52 weights, as the vertex shader computes them."""
        return head.positions + np.tensordot(weights.astype(np.float32), self.position_deltas, axes=1)


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Fields:
    """Masks and falloffs over the head's vertices, shared by the shape definitions."""

    def __init__(self, head: HeadMesh) -> None:
        self.head = head
        self.p = head.positions.astype(np.float64)
        self.x, self.y, self.z = self.p[:, 0], self.p[:, 1], self.p[:, 2]
        self.skin = head.where("skin") & (self.z > 0.0)
        upper_row = head.landmarks["upper_lip_row"]
        lower_row = head.landmarks["lower_lip_row"]
        self.mouth_y = float(self.p[upper_row[0], 1])
        self.corner_x = float(self.p[head.landmarks["mouth_corner_left"][0], 0])
        on_line = np.abs(self.y - self.mouth_y) < 1e-6
        self.lower_side = self.skin & ((self.y < self.mouth_y - 1e-6) | np.isin(np.arange(len(self.p)), lower_row))
        self.upper_side = self.skin & ((self.y > self.mouth_y + 1e-6) | (on_line & ~self.lower_side))
        self.jaw_parts = head.where("lower_teeth") | head.where("tongue")

    def bump(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """A compact bump on the front skin, 1 at (cx, cy), 0 beyond the ellipse of radii (rx, ry)."""
        return _smooth(1.0 - np.hypot((self.x - cx) / rx, (self.y - cy) / ry)) * self.skin

    def lip_profile(self) -> np.ndarray:
        """1 at the middle of the mouth, 0 at and beyond the corners: the lens an opening mouth makes."""
        return np.clip(1.0 - (self.x / self.corner_x) ** 2, 0.0, 1.0) ** 0.7

    def near_slit(self, reach: float) -> np.ndarray:
        return _smooth(1.0 - np.abs(self.y - self.mouth_y) / reach) * (np.abs(self.x) < self.corner_x * 1.35)

    def mouth_area(self) -> np.ndarray:
        return self.bump(0.0, self.mouth_y, self.corner_x * 1.45, 0.019)

    def corner(self, sign: float) -> np.ndarray:
        return self.bump(sign * self.corner_x, self.mouth_y, 0.022, 0.020) * (sign * self.x > -0.004)

    def jaw_weight(self) -> np.ndarray:
        """How much of the jaw's motion each vertex takes: all of the chin and lower lip, fading up the
        cheeks to the hinge and to nothing at the corners of the mouth and behind the ears."""
        below = self.mouth_y - self.y
        weight = _smooth(below / 0.028)
        # The cavity's floor rides on the jaw like the chin around it; its roof stays with the skull.
        cavity = np.where(self.head.where("cavity"), weight, 0.0)
        within = np.abs(self.x) < self.corner_x
        weight = np.where(self.lower_side & within, np.maximum(weight, self.lip_profile()), weight)
        weight = weight * self.lower_side
        azimuth = np.degrees(np.arctan2(np.abs(self.x), self.z))
        weight = weight * _smooth((100.0 - azimuth) / 35.0)
        return np.where(self.jaw_parts, 1.0, weight + cavity)

    def jaw_rotation(self, angle: float) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        q = self.p - JAW_HINGE
        return self.jaw_weight()[:, None] * (q @ rot.T - q)

    def lids(self, part: str, sign: float) -> np.ndarray:
        return self.head.where(part) & (self.head.side == sign)


def _lid_motion(f: _Fields, part: str, sign: float, edge_deg: float, azimuth_shift_deg: float = 0.0) -> np.ndarray:
    """Moves a lid's edge to `edge_deg` of elevation on its eyeball (and turns it by an azimuth shift)."""
    head = f.head
    centre = head.eye_centres[0 if sign > 0 else 1].astype(np.float64)
    mask = f.lids(part, sign)
    q = f.p[mask] - centre
    radius = np.linalg.norm(q, axis=1)
    elevation = np.degrees(np.arcsin(np.clip(q[:, 1] / radius, -1, 1)))
    azimuth = np.degrees(np.arctan2(q[:, 0], q[:, 2]))
    if part == "upper_lid":
        far, edge = 80.0, H.UPPER_LID_OPEN_DEG
    else:
        far, edge = -55.0, H.LOWER_LID_OPEN_DEG
    s = (elevation - edge) / (far - edge)  # 0 at the edge, 1 where the lid tucks under the skin
    new_elevation = np.radians(edge_deg + s * (far - edge_deg))
    new_azimuth = np.radians(azimuth + azimuth_shift_deg * (1 - s))
    moved = (
        np.stack(
            [np.sin(new_azimuth) * np.cos(new_elevation), np.sin(new_elevation),
             np.cos(new_azimuth) * np.cos(new_elevation)], axis=1,
        ) * radius[:, None] + centre
    )  # fmt: skip
    delta = np.zeros_like(f.p)
    delta[mask] = moved - f.p[mask]
    return delta


def _eye_shapes(f: _Fields, sign: float) -> dict[str, Callable[[], np.ndarray]]:
    side = "Left" if sign > 0 else "Right"
    inward = -sign  # towards the nose
    eye_x = sign * H.EYE_CENTRE_X

    def lids(upper: float | None, lower: float | None, shift: float = 0.0) -> np.ndarray:
        delta = np.zeros_like(f.p)
        if upper is not None:
            delta += _lid_motion(f, "upper_lid", sign, upper, shift)
        if lower is not None:
            delta += _lid_motion(f, "lower_lid", sign, lower, shift)
        return delta

    def squint() -> np.ndarray:
        under_eye = f.bump(eye_x, H.EYE_CENTRE_Y - 0.017, 0.020, 0.010)
        return lids(13.0, -16.0) + under_eye[:, None] * np.array([0.0, 0.0025, 0.001])

    return {
        f"eyeBlink{side}": lambda: lids(BLINK_UPPER_EDGE_DEG, BLINK_LOWER_EDGE_DEG),
        f"eyeLookDown{side}": lambda: lids(4.0, -32.0),
        f"eyeLookIn{side}": lambda: lids(H.UPPER_LID_OPEN_DEG, H.LOWER_LID_OPEN_DEG, 10.0 * inward),
        f"eyeLookOut{side}": lambda: lids(H.UPPER_LID_OPEN_DEG, H.LOWER_LID_OPEN_DEG, -10.0 * inward),
        f"eyeLookUp{side}": lambda: lids(34.0, -19.0),
        f"eyeSquint{side}": squint,
        f"eyeWide{side}": lambda: lids(42.0, -28.0),
    }


def _sided(f: _Fields, sign: float) -> dict[str, Callable[[], np.ndarray]]:
    side = "Left" if sign > 0 else "Right"
    out = np.array([sign, 1.0, 1.0])  # mirrors x
    corner = f.corner(sign)
    this_half = _smooth((sign * f.x + 0.004) / 0.012)
    lip_band = f.near_slit(0.011) * this_half * f.mouth_area()
    eye_x = sign * H.EYE_CENTRE_X
    brow_y = H.EYE_CENTRE_Y + 0.021

    def move(mask: np.ndarray, vector: tuple[float, float, float]) -> Callable[[], np.ndarray]:
        return lambda: mask[:, None] * (np.array(vector) * out)

    def press() -> np.ndarray:
        toward_slit = np.where(f.upper_side, -1.0, 1.0) * 0.0015
        return lip_band[:, None] * np.stack(
            [sign * 0.0015 * np.ones_like(f.x), toward_slit, -0.0015 * np.ones_like(f.x)], axis=1
        )

    def cheek_squint() -> np.ndarray:
        cheek = f.bump(sign * 0.044, -0.010, 0.024, 0.020)
        return cheek[:, None] * np.array([0.0, 0.004, 0.0015]) + _lid_motion(f, "lower_lid", sign, -23.0)

    def sneer() -> np.ndarray:
        wing = f.bump(sign * 0.013, -0.018, 0.014, 0.018)
        return wing[:, None] * np.array([0.0, 0.0045, 0.0015])

    return {
        f"mouthSmile{side}": move(corner, (0.0045, 0.0065, -0.003)),
        f"mouthFrown{side}": move(corner, (0.001, -0.0065, 0.0)),
        f"mouthDimple{side}": move(corner, (0.0035, 0.0005, -0.0055)),
        f"mouthStretch{side}": move(corner, (0.0065, -0.003, -0.002)),
        f"mouthPress{side}": press,
        f"mouthLowerDown{side}": move(lip_band * f.lower_side, (0.0, -0.0055, 0.0005)),
        f"mouthUpperUp{side}": move(lip_band * f.upper_side, (0.0, 0.0055, 0.0005)),
        f"browDown{side}": move(f.bump(eye_x, brow_y, 0.030, 0.016), (-0.0015, -0.005, 0.001)),
        f"browOuterUp{side}": move(f.bump(sign * 0.047, brow_y, 0.022, 0.016), (0.0, 0.0065, 0.0)),
        f"cheekSquint{side}": cheek_squint,
        f"noseSneer{side}": sneer,
        **_eye_shapes(f, sign),
    }


def _central(f: _Fields) -> dict[str, Callable[[], np.ndarray]]:
    jaw = f.jaw_weight()[:, None]
    lips = f.mouth_area()
    upper_lip = f.near_slit(0.012) * lips * f.upper_side
    lower_lip = f.near_slit(0.012) * lips * f.lower_side
    profile = f.lip_profile()
    narrowing = f.bump(0.0, f.mouth_y, f.corner_x * 2.0, 0.02)  # rounding pulls the corners in

    def mouth_close() -> np.ndarray:
        # Presses the lips together with the jaw open: undoes the jaw's motion of the lower lip.
        return -f.jaw_rotation(JAW_OPEN_RAD) * (f.near_slit(0.012) * f.lower_side)[:, None]

    def funnel() -> np.ndarray:
        d = np.zeros_like(f.p)
        d[:, 0] = -0.40 * f.x * narrowing
        d[:, 1] = 0.0035 * profile * (upper_lip - lower_lip)
        d[:, 2] = 0.006 * lips
        return d

    def pucker() -> np.ndarray:
        d = np.zeros_like(f.p)
        d[:, 0] = -0.45 * f.x * narrowing
        d[:, 1] = 0.001 * (lower_lip - upper_lip)
        d[:, 2] = 0.0095 * lips
        return d

    def roll(lip: np.ndarray, towards_slit: float) -> Callable[[], np.ndarray]:
        return lambda: lip[:, None] * np.array([0.0, towards_slit, -0.0045])

    def tongue_out() -> np.ndarray:
        tongue = f.head.where("tongue").astype(np.float64)
        tip = _smooth((f.z - f.z[tongue > 0].min()) / np.ptp(f.z[tongue > 0]))
        return (tongue * (0.4 + 0.6 * tip))[:, None] * np.array([0.0, -0.003, 0.03])

    def puff() -> np.ndarray:
        cheeks = f.bump(0.046, f.mouth_y + 0.012, 0.026, 0.024) + f.bump(-0.046, f.mouth_y + 0.012, 0.026, 0.024)
        outward = np.stack([np.sign(f.x), np.zeros_like(f.x), np.full_like(f.x, 0.6)], axis=1)
        return cheeks[:, None] * 0.008 * outward / np.linalg.norm(outward, axis=1, keepdims=True)

    def brow_inner_up() -> np.ndarray:
        inner = sum(f.bump(sx * 0.018, H.EYE_CENTRE_Y + 0.020, 0.022, 0.016) for sx in (-1.0, 1.0))
        return np.asarray(inner)[:, None] * np.array([0.0, 0.0065, 0.0005])

    return {
        "jawOpen": lambda: f.jaw_rotation(JAW_OPEN_RAD),
        "jawForward": lambda: jaw * np.array([0.0, 0.0, 0.008]),
        "jawLeft": lambda: jaw * np.array([0.008, 0.0, 0.0]),
        "jawRight": lambda: jaw * np.array([-0.008, 0.0, 0.0]),
        "mouthClose": mouth_close,
        "mouthFunnel": funnel,
        "mouthPucker": pucker,
        "mouthLeft": lambda: lips[:, None] * np.array([0.008, 0.0, -0.001]),
        "mouthRight": lambda: lips[:, None] * np.array([-0.008, 0.0, -0.001]),
        "mouthRollLower": roll(lower_lip, 0.0025),
        "mouthRollUpper": roll(upper_lip, -0.0025),
        "mouthShrugLower": lambda: f.bump(0.0, f.mouth_y - 0.018, 0.028, 0.022)[:, None] * np.array([0, 0.004, 0.002]),
        "mouthShrugUpper": lambda: upper_lip[:, None] * np.array([0.0, 0.0035, 0.002]),
        "browInnerUp": brow_inner_up,
        "cheekPuff": puff,
        "tongueOut": tongue_out,
    }


def build_shapes(head: HeadMesh) -> ShapeSet:
    fields = _Fields(head)
    makers = {**_central(fields), **_sided(fields, 1.0), **_sided(fields, -1.0)}
    missing = set(ARKIT_BLENDSHAPES) - set(makers)
    assert not missing, f"blendshapes without a definition: {sorted(missing)}"
    rest = head.positions.astype(np.float64)
    positions = np.zeros((len(ARKIT_BLENDSHAPES), len(rest), 3), np.float32)
    normals = np.zeros_like(positions)
    for k, name in enumerate(ARKIT_BLENDSHAPES):
        delta = makers[name]()
        positions[k] = delta
        normals[k] = vertex_normals(rest + delta, head.triangles) - head.normals
    return ShapeSet(ARKIT_BLENDSHAPES, positions, normals)
