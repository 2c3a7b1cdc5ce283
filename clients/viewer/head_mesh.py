"""The built-in stylised head, generated from code: skin with a mouth slit, lids, brows, teeth, tongue and
two separate eyeballs. Head-local frame (metres): origin at the head's centre, Y up, the face looks +Z, the
character's left is +X (runtime/rigs.py conventions).

The skin is a latitude-longitude grid whose row at the mouth line is split between the two lips, so the
jaw can open it; the inside of the shell is drawn dark, which is all the mouth cavity needs. Lids are
spherical shells just outside the eyeballs. The 52 ARKit shapes are authored in blendshapes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sdf import Ellipsoid, sample_grid, smooth_max, smooth_min
from .surface_nets import surface_nets

# Proportions of the skull before features are added.
HALF_WIDTH = 0.076
HALF_HEIGHT_TOP = 0.118
HALF_HEIGHT_CHIN = 0.108
DEPTH_FRONT = 0.097
DEPTH_BACK = 0.102

N_AZIMUTH = 240  # 1.5 degree columns: the mouth corners fall on columns
ROW_STEP_DEG = 1.5
MOUTH_ROW_DEG = -26.0
MOUTH_HALF_COLUMNS = 12  # the slit spans +-18 degrees of azimuth

EYE_RADIUS = 0.0125
LID_RADIUS = 1.13 * EYE_RADIUS
EYE_CENTRE_X = 0.032
EYE_CENTRE_Y = 0.016
UPPER_LID_OPEN_DEG = 15.0
LOWER_LID_OPEN_DEG = -30.0

SKIN = np.array([0.94, 0.77, 0.66])
LIPS = np.array([0.78, 0.42, 0.42])
HAIR = np.array([0.23, 0.15, 0.11])
BROW = np.array([0.28, 0.18, 0.13])
LASH = np.array([0.16, 0.10, 0.08])
TEETH = np.array([0.95, 0.94, 0.90])
TONGUE = np.array([0.80, 0.36, 0.38])
SCLERA = np.array([0.96, 0.96, 0.95])
IRIS = np.array([0.30, 0.48, 0.62])
PUPIL = np.array([0.03, 0.03, 0.04])
CAVITY = np.array([0.16, 0.05, 0.06])
NOSTRIL = np.array([0.45, 0.25, 0.22])

# Parts, stored per vertex so tests and shapes can select them.
PARTS = ("skin", "upper_lid", "lower_lid", "upper_teeth", "lower_teeth", "tongue", "cavity", "hair")


@dataclass
class HeadMesh:
    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3)
    colors: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (F, 3) int32
    part: np.ndarray  # (V,) index into PARTS
    side: np.ndarray  # (V,) +1 left, -1 right, 0 centre line (lids and eyes carry their eye's side)
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> vertex index (int array)
    eye_centres: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))  # left, right

    def where(self, part: str) -> np.ndarray:
        return self.part == PARTS.index(part)


def _smooth_bump(distance: np.ndarray, radius: float | np.ndarray) -> np.ndarray:
    """1 at the centre, 0 from `radius` on, with zero slope at both ends (compact support)."""
    t = np.clip(1.0 - distance / radius, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump2(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return _smooth_bump(np.hypot((x - cx) / rx, (y - cy) / ry), 1.0)


def _skull(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """Points on the plain skull, before facial features."""
    cos_e, sin_e = np.cos(elevation), np.sin(elevation)
    below = np.clip(-sin_e, 0.0, 1.0)
    half_width = HALF_WIDTH * (1.0 - 0.24 * below**2)  # the jaw narrows to the chin
    height = np.where(sin_e > 0, HALF_HEIGHT_TOP, HALF_HEIGHT_CHIN)
    front = np.cos(azimuth) > 0
    depth = np.where(front, DEPTH_FRONT, DEPTH_BACK * (1.0 - 0.25 * below))
    x = half_width * np.sin(azimuth) * cos_e
    y = height * sin_e
    z = depth * np.cos(azimuth) * cos_e
    # A flatter face and a forward jaw: the front of the lower half is pulled forward.
    facing = np.clip(np.cos(azimuth), 0.0, 1.0) ** 2
    z = z + 0.030 * facing * below * (1.0 - below) * 2.0
    return np.stack([x, y, z], axis=-1)


def _features(p: np.ndarray, mouth_y: float) -> np.ndarray:
    """Nose, brow ridge, sockets, cheekbones, lips, chin and ears, as displacements of skull points."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    front = np.clip(z / DEPTH_FRONT, 0.0, 1.0) ** 2
    dz = np.zeros_like(x)
    dz += _nose(x, y)
    # Brow ridge and eye sockets.
    for sx in (-1.0, 1.0):
        dz += 0.005 * _bump2(x, y, sx * EYE_CENTRE_X, EYE_CENTRE_Y + 0.020, 0.026, 0.010)
        dz -= 0.010 * _bump2(x, y, sx * EYE_CENTRE_X, EYE_CENTRE_Y + 0.003, 0.024, 0.017)
        dz += 0.005 * _bump2(x, y, sx * 0.046, -0.018, 0.020, 0.016)  # cheekbones
    # Lips: a rounded upper and lower lip, rolled in at the slit, and a philtrum.
    dz += 0.0045 * _bump2(x, y, 0.0, mouth_y + 0.005, 0.024, 0.0075)
    dz += 0.0075 * _bump2(x, y, 0.0, mouth_y - 0.006, 0.021, 0.0075)
    dz -= 0.0025 * _bump2(x, y, 0.0, mouth_y, 0.020, 0.0022)
    dz += 0.006 * _bump2(x, y, 0.0, -0.093, 0.020, 0.014)  # chin
    out = np.zeros_like(p)
    out[..., 2] = dz * front
    # Ears: outward bumps on the sides.
    side = np.clip(np.abs(x) / HALF_WIDTH, 0.0, 1.0) ** 4
    ear = _bump2(z, y, -0.004, 0.000, 0.018, 0.030) * side
    out[..., 0] += np.sign(x) * 0.014 * ear
    return out


NOSE_TOP_Y, NOSE_TIP_Y, NOSE_BASE_Y = 0.014, -0.020, -0.036


def _nose(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How far the nose stands out of the face: a bridge that rises and widens from between the eyes to
    a rounded tip, turning back under the tip to the upper lip, with a wing (ala) on each side."""
    along = np.clip((NOSE_TOP_Y - y) / (NOSE_TOP_Y - NOSE_TIP_Y), 0.0, 1.0)
    height = 0.003 + 0.014 * along**1.4
    under = np.clip((NOSE_TIP_Y - y) / (NOSE_TIP_Y - NOSE_BASE_Y), 0.0, 1.0)
    height = height * (1.0 - _smooth_bump(1.0 - under, 1.0)) * (y < NOSE_TOP_Y + 0.012)
    height *= _smooth_bump(np.maximum(y - NOSE_TOP_Y, 0.0), 0.012)  # fades into the brow
    width = 0.0075 + 0.0065 * along
    bridge = height * _smooth_bump(np.abs(x), width)
    tip = 0.0035 * _bump2(x, y, 0.0, NOSE_TIP_Y + 0.002, 0.010, 0.008)  # the rounded tip
    wings = 0.0045 * _bump2(np.abs(x), y, 0.0105, NOSE_TIP_Y - 0.003, 0.0070, 0.0065)
    return bridge + tip + wings


def _hairline(p: np.ndarray) -> np.ndarray:
    """Height of the hairline above the point: high on the forehead, lower at the temples and the nape."""
    facing = p[..., 2] / np.maximum(np.hypot(p[..., 0], p[..., 2]), 1e-9)
    return 0.040 + np.where(facing > 0, 0.036 * facing**2, 0.085 * facing)


def hair_cover(p: np.ndarray) -> np.ndarray:
    """1 on the scalp under the hair (coloured like it, so no skin shows through at the hairline)."""
    return _smooth_bump(np.maximum(_hairline(p) - p[..., 1], 0.0), 0.009)


HAIR_SPACING = 0.003


def _hair_distance(p: np.ndarray) -> np.ndarray:
    """Signed distance to the hair: a layer over the skull, thin at the hairline and about 13 mm deep on
    the crown, a fringe swept to the character's left, and locks as waves in the outer surface."""
    skull = Ellipsoid(np.array([0.0, 0.0, -0.0025]), np.array([HALF_WIDTH, HALF_HEIGHT_TOP, 0.0995]), 0, HAIR)
    above = p[:, 1] - _hairline(p) + 0.004  # metres above the hairline (just below the scalp's cap)
    azimuth = np.arctan2(p[:, 0], p[:, 2])
    depth = 0.0025 + 0.0105 * np.clip(above / 0.035, 0.0, 1.0) ** 0.7
    depth += 0.0018 * np.sin(11.0 * azimuth + 30.0 * p[:, 1]) * np.clip(above / 0.02, 0.0, 1.0)
    layer = skull.distance(p) - depth
    fringe = Ellipsoid(np.array([0.016, 0.090, 0.056]), np.array([0.052, 0.017, 0.032]), 0, HAIR).distance(p)
    volume = smooth_min(layer, fringe, 0.012)
    return smooth_max(volume, -above, 0.004)


def _hair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hair as its own closed surface: points, triangles and colours (strands as light streaks)."""
    lo = np.array([-HALF_WIDTH - 0.03, -0.07, -DEPTH_BACK - 0.03])
    hi = np.array([HALF_WIDTH + 0.03, HALF_HEIGHT_TOP + 0.03, DEPTH_FRONT + 0.02])
    values, origin = sample_grid(_hair_distance, lo, hi, HAIR_SPACING)
    points, triangles = surface_nets(values, origin, HAIR_SPACING)
    azimuth = np.arctan2(points[:, 0], points[:, 2])
    streak = 0.88 + 0.12 * np.sin(90.0 * azimuth + 20.0 * points[:, 1]) * np.sin(37.0 * azimuth)
    return points, triangles, HAIR * streak[:, None]


def _skin_colour(p: np.ndarray, mouth_y: float) -> np.ndarray:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    colour = np.tile(SKIN, (len(p), 1))
    lips = _bump2(x, y, 0.0, mouth_y, 0.024, 0.0085) ** 0.5 * (z > 0)
    colour = colour * (1 - lips[:, None]) + LIPS * lips[:, None]
    # Nostrils: shade under the tip, either side of the middle.
    nostrils = 0.15 * _bump2(np.abs(x), y, 0.0055, NOSE_BASE_Y + 0.002, 0.0035, 0.0022) * (z > 0)
    colour = colour * (1 - nostrils[:, None]) + NOSTRIL * nostrils[:, None]
    hair = hair_cover(p)
    colour = colour * (1 - hair[:, None]) + HAIR * hair[:, None]
    # Eyebrows: an arch over each eye.
    for sx in (-1.0, 1.0):
        u = (x - sx * (EYE_CENTRE_X + 0.002)) / 0.021
        arch = EYE_CENTRE_Y + 0.020 + 0.004 * (1 - u**2) - 0.002 * sx * u
        brow = (np.abs(u) < 1) * np.clip(1 - np.abs(y - arch) / 0.0032, 0, 1) * (z > 0.04)
        brow *= np.clip((1 - np.abs(u)) * 4, 0, 1)
        colour = colour * (1 - brow[:, None]) + BROW * brow[:, None]
    return colour


def _grid_skin() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], float]:
    rows_deg = np.arange(-88.0, 88.0 + 1e-9, ROW_STEP_DEG)
    mouth_row = int(np.argmin(np.abs(rows_deg - MOUTH_ROW_DEG)))
    azimuth = np.linspace(-np.pi, np.pi, N_AZIMUTH, endpoint=False)
    az, el = np.meshgrid(azimuth, np.radians(rows_deg))  # (rows, cols)
    base = _skull(az, el)
    front_column = N_AZIMUTH // 2  # azimuth 0
    mouth_y = float(base[mouth_row, front_column, 1])
    points = base + _features(base, mouth_y)
    n_rows, n_cols = az.shape
    index = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    positions = points.reshape(-1, 3)
    # The slit: the mouth row's interior columns get a second copy that belongs to the lower lip.
    slit_cols = np.arange(front_column - MOUTH_HALF_COLUMNS + 1, front_column + MOUTH_HALF_COLUMNS)
    lower_copy = np.arange(len(slit_cols)) + len(positions)
    positions = np.concatenate([positions, positions[index[mouth_row, slit_cols]]])
    below_index = index.copy()
    below_index[mouth_row, slit_cols] = lower_copy
    triangles = []
    for r in range(n_rows - 1):
        # Faces between rows r and r+1: the band below the mouth row meets the lower lip's copies.
        bottom, top = index[r], below_index[r + 1]
        for c in range(n_cols):
            c1 = (c + 1) % n_cols
            triangles.append((bottom[c], bottom[c1], top[c1]))
            triangles.append((bottom[c], top[c1], top[c]))
    # Poles: fans to one vertex above the top row and one below the bottom row.
    for row, end_y in ((0, -1.0), (n_rows - 1, 1.0)):
        ring = index[row]
        pole = len(positions)
        positions = np.concatenate([positions, [[0.0, float(np.mean(positions[ring, 1])) + end_y * 0.002, 0.0]]])
        positions[pole, 2] = float(np.mean(positions[ring, 2]))
        for c in range(n_cols):
            c1 = (c + 1) % n_cols
            triangles.append((ring[c], pole, ring[c1]) if end_y < 0 else (ring[c], ring[c1], pole))
    landmarks = {
        "upper_lip": np.array([index[mouth_row, front_column]]),
        "lower_lip": np.array([lower_copy[len(slit_cols) // 2]]),
        "upper_lip_row": index[mouth_row, slit_cols],
        "lower_lip_row": lower_copy,
        "mouth_corner_left": np.array([index[mouth_row, front_column + MOUTH_HALF_COLUMNS]]),
        "mouth_corner_right": np.array([index[mouth_row, front_column - MOUTH_HALF_COLUMNS]]),
    }
    return positions, np.asarray(triangles, dtype=np.int64), landmarks, mouth_y


def _shell(
    centre: np.ndarray, radius: float, azimuth_deg: np.ndarray, elevation_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A patch of a sphere around `centre` as a grid (rows = elevations, cols = azimuths about +Z)."""
    az, el = np.meshgrid(np.radians(azimuth_deg), np.radians(elevation_deg))
    p = np.stack([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=-1) * radius + centre
    n_rows, n_cols = az.shape
    idx = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    tris = []
    for r in range(n_rows - 1):
        for c in range(n_cols - 1):
            tris.append((idx[r, c], idx[r, c + 1], idx[r + 1, c + 1]))
            tris.append((idx[r, c], idx[r + 1, c + 1], idx[r + 1, c]))
    return p.reshape(-1, 3), np.asarray(tris, dtype=np.int64)


LID_AZIMUTHS = np.linspace(-80.0, 80.0, 25)
LID_ROWS = 10


def upper_lid_elevations(edge_deg: float) -> np.ndarray:
    """Rows of an upper lid whose edge is at `edge_deg`; blendshapes move the edge and keep the top."""
    return np.linspace(edge_deg, 80.0, LID_ROWS)


def lower_lid_elevations(edge_deg: float) -> np.ndarray:
    return np.linspace(-55.0, edge_deg, LID_ROWS)


def _band(
    path: np.ndarray, outward: np.ndarray, top: float, bottom: float, thickness: float
) -> tuple[np.ndarray, np.ndarray]:
    """A closed ribbon (teeth rows): `path` (N, 3) along the arch, extruded down and inward."""
    up = np.array([0.0, 1.0, 0.0])
    corners = [
        path + up * top,
        path + up * bottom,
        path + up * bottom - outward * thickness,
        path + up * top - outward * thickness,
    ]
    p = np.concatenate(corners)
    n = len(path)
    tris = []
    for k in range(4):
        a, b = k * n, ((k + 1) % 4) * n
        for i in range(n - 1):
            tris.append((a + i, b + i, b + i + 1))
            tris.append((a + i, b + i + 1, a + i + 1))
    return p, np.asarray(tris, dtype=np.int64)


def vertex_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (positions[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)  # area-weighted
    # Each vertex sums the normals of the triangles around it; bincount does the scattered sum at a
    # fraction of np.add.at's cost (the blend shapes take one of these each).
    corners, per_corner = triangles.ravel(), np.repeat(face, 3, axis=0)
    normals = np.stack([np.bincount(corners, per_corner[:, j], len(positions)) for j in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def build_head() -> HeadMesh:
    skin, skin_tris, landmarks, mouth_y = _grid_skin()
    parts = [np.full(len(skin), PARTS.index("skin"))]
    colours = [_skin_colour(skin, mouth_y)]
    positions, triangles = [skin], [skin_tris]
    count = len(skin)

    def add(points: np.ndarray, tris: np.ndarray, part: str, colour: np.ndarray) -> np.ndarray:
        nonlocal count
        positions.append(points)
        triangles.append(tris + count)
        parts.append(np.full(len(points), PARTS.index(part)))
        colours.append(np.broadcast_to(colour, points.shape).copy())
        ids = np.arange(count, count + len(points))
        count += len(points)
        return ids

    # Eyes sit in the sockets, their fronts just proud of the skin.
    eye_z = float(_surface_z(skin, EYE_CENTRE_X, EYE_CENTRE_Y)) - 0.0035
    eye_centres = np.array([[EYE_CENTRE_X, EYE_CENTRE_Y, eye_z], [-EYE_CENTRE_X, EYE_CENTRE_Y, eye_z]])
    for centre, name in zip(eye_centres, ("left", "right"), strict=True):
        upper, tris = _shell(centre, LID_RADIUS, LID_AZIMUTHS, upper_lid_elevations(UPPER_LID_OPEN_DEG))
        colour = np.tile(SKIN, (len(upper), 1))
        colour[: len(LID_AZIMUTHS)] = LASH  # the lid's edge row reads as lashes
        landmarks[f"upper_lid_edge_{name}"] = add(upper, tris, "upper_lid", colour)[: len(LID_AZIMUTHS)]
        lower, tris = _shell(centre, LID_RADIUS * 0.99, LID_AZIMUTHS, lower_lid_elevations(LOWER_LID_OPEN_DEG))
        landmarks[f"lower_lid_edge_{name}"] = add(lower, tris, "lower_lid", np.minimum(SKIN * 1.08, 1.0))[
            -len(LID_AZIMUTHS) :
        ]

    # Teeth follow the lips' arch, set back from the skin; the lower row and the tongue ride on the jaw.
    arch_cols = np.linspace(-0.026, 0.026, 21)
    arch = np.stack([arch_cols, np.full_like(arch_cols, mouth_y), np.zeros_like(arch_cols)], axis=1)
    arch[:, 2] = [_surface_z(skin, xx, mouth_y) - 0.009 for xx in arch_cols]
    arch[:, 2] -= 0.012 * (arch_cols / 0.026) ** 2
    outward = np.stack([arch_cols / 0.05, np.zeros_like(arch_cols), np.ones_like(arch_cols)], axis=1)
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    add(*_band(arch, outward, 0.0085, -0.0032, 0.005), "upper_teeth", TEETH)
    add(*_band(arch, outward, -0.0042, -0.012, 0.005), "lower_teeth", TEETH)
    tongue_centre = np.array([0.0, mouth_y - 0.017, float(arch[10, 2]) - 0.024])
    tongue, tris = _shell(np.zeros(3), 1.0, np.linspace(-180, 180, 17), np.linspace(-85, 85, 9))
    tongue = tongue * np.array([0.015, 0.0055, 0.020]) + tongue_centre
    landmarks["tongue_tip"] = add(tongue, tris, "tongue", TONGUE)[[int(np.argmax(tongue[:, 2]))]]

    # The mouth cavity: a dark bowl open to the front, so an open mouth shows teeth, tongue and shadow and
    # never the neck behind.
    cavity, tris = _shell(np.zeros(3), 1.0, np.linspace(65, 295, 24), np.linspace(-89, 89, 13))
    centre = np.array([0.0, mouth_y - 0.005, float(arch[10, 2]) - 0.015])
    add(cavity * np.array([0.021, 0.018, 0.026]) + centre, tris, "cavity", CAVITY)

    hair, tris, hair_colours = _hair()
    add(hair, tris, "hair", hair_colours)

    all_positions = np.concatenate(positions)
    all_tris = np.concatenate(triangles)
    part = np.concatenate(parts)
    side = np.sign(np.round(all_positions[:, 0], 6))  # lids lie wholly on their eye's side
    return HeadMesh(
        positions=all_positions.astype(np.float32),
        normals=vertex_normals(all_positions, all_tris).astype(np.float32),
        colors=np.concatenate(colours).astype(np.float32),
        triangles=all_tris.astype(np.int32),
        part=part,
        side=side,
        landmarks=landmarks,
        eye_centres=eye_centres.astype(np.float32),
    )


def _surface_z(skin: np.ndarray, x: float, y: float) -> float:
    """Depth of the front skin at (x, y): the z of the nearest front vertex."""
    front = skin[:, 2] > 0
    d = np.hypot(skin[front, 0] - x, skin[front, 1] - y)
    return float(skin[front][np.argmin(d), 2])


@dataclass
class EyeMesh:
    positions: np.ndarray  # (V, 3), unit-free: centred at 0, radius EYE_RADIUS, looking +Z
    normals: np.ndarray
    colors: np.ndarray
    triangles: np.ndarray


def build_eye(rings: int = 24, segments: int = 32) -> EyeMesh:
    points, tris = _shell(np.zeros(3), 1.0, np.linspace(-180, 180, segments + 1), np.linspace(-90, 90, rings + 1))
    # Colour by the angle from the gaze axis: pupil, iris with a darker limbus, sclera.
    angle = np.degrees(np.arccos(np.clip(points[:, 2], -1, 1)))
    colour = np.tile(SCLERA, (len(points), 1))
    iris = np.clip((28 - angle) / 2, 0, 1)[:, None]
    colour = colour * (1 - iris) + (IRIS * (0.6 + 0.4 * np.clip(angle / 28, 0, 1)[:, None])) * iris
    pupil = np.clip((11 - angle) / 1.5, 0, 1)[:, None]
    colour = colour * (1 - pupil) + PUPIL * pupil
    return EyeMesh(
        positions=(points * EYE_RADIUS).astype(np.float32),
        normals=points.astype(np.float32),
        colors=colour.astype(np.float32),
        triangles=tris.astype(np.int32),
    )
