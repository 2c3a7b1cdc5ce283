"""BVH export and import of SMPL-X body motion. Torch-free.

The hierarchy is the SMPL-X tree of runtime/rigs.py with its rest offsets in metres (Y up, the character
faces +Z), which is what Blender's BVH importer expects with its defaults (scale 1, Y up, -Z forward
is the importer's "forward" setting for a character facing the viewer). Every joint has three rotation
channels in Z X Y order (the order most tools write), the root also three position channels. A joint's
Euler angles, in degrees, compose as R = Rz(z) @ Rx(x) @ Ry(y), each relative to its parent.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from emostream.runtime.rigs import SMPLX_JOINTS, SMPLX_PARENTS, rest_offsets

END_SITE_M = 0.03  # the length of the end site drawn after a leaf joint


def matrix_to_zxy(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) Euler angles (z, x, y) in radians with R = Rz Rx Ry."""
    m = np.asarray(matrix, dtype=np.float64)
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    return np.stack([z, x, y], axis=-1)


def zxy_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) Euler angles (z, x, y) in radians -> (..., 3, 3) rotations Rz Rx Ry."""
    z, x, y = np.moveaxis(np.asarray(angles, dtype=np.float64), -1, 0)
    cz, sz, cx, sx, cy, sy = np.cos(z), np.sin(z), np.cos(x), np.sin(x), np.cos(y), np.sin(y)
    rows = [
        [cz * cy - sz * sx * sy, -sz * cx, cz * sy + sz * sx * cy],
        [sz * cy + cz * sx * sy, cz * cx, sz * sy - cz * sx * cy],
        [-cx * sy, sx, cx * cy],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _children(joint: int) -> list[int]:
    return [j for j, p in enumerate(SMPLX_PARENTS) if p == joint]


def hierarchy_text(offsets: np.ndarray) -> str:
    lines: list[str] = ["HIERARCHY"]

    def write(joint: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if SMPLX_PARENTS[joint] < 0 else "JOINT"
        x, y, z = offsets[joint]
        lines.append(f"{pad}{kind} {SMPLX_JOINTS[joint]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {x:.6f} {y:.6f} {z:.6f}")
        if kind == "ROOT":
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        children = _children(joint)
        for child in children:
            write(child, depth + 1)
        if not children:
            direction = offsets[joint] / max(np.linalg.norm(offsets[joint]), 1e-9) * END_SITE_M
            end = f"{pad}    OFFSET {direction[0]:.6f} {direction[1]:.6f} {direction[2]:.6f}"
            lines.extend([f"{pad}  End Site", f"{pad}  {{", end, f"{pad}  }}"])
        lines.append(f"{pad}}}")

    write(0, 0)
    return "\n".join(lines)


def write_bvh(path: Path, rotations: np.ndarray, trans: np.ndarray, fps: float, stature_m: float = 1.75) -> None:
    """rotations: (T, 55, 3, 3) local rotation matrices; trans: (T, 3) root translation in metres."""
    offsets = rest_offsets(stature_m)
    T = rotations.shape[0]
    degrees = np.degrees(matrix_to_zxy(rotations))  # (T, 55, 3)
    order = _depth_first()
    root_position = offsets[0] + trans
    values = np.concatenate([root_position, degrees[:, order].reshape(T, -1)], axis=1)
    body = "\n".join(" ".join(f"{v:.5f}" for v in row) for row in values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{hierarchy_text(offsets)}\nMOTION\nFrames: {T}\nFrame Time: {1.0 / fps:.8f}\n{body}\n")


def _depth_first() -> list[int]:
    """Joint indices in the order their channels appear in the file."""
    order: list[int] = []

    def visit(joint: int) -> None:
        order.append(joint)
        for child in _children(joint):
            visit(child)

    visit(0)
    return order


def read_bvh(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, float]:
    """A BVH written by `write_bvh` (or any with Z X Y rotation channels): joint names in file order,
    offsets (J, 3), local rotations (T, J, 3, 3), root positions (T, 3) and the frame rate."""
    text = Path(path).read_text()
    head, motion = text.split("MOTION", 1)
    names = re.findall(r"(?:ROOT|JOINT)\s+(\S+)", head)
    offsets = []
    for block in re.split(r"(?:ROOT|JOINT)\s+\S+", head)[1:]:
        x, y, z = (float(v) for v in re.search(r"OFFSET\s+(\S+)\s+(\S+)\s+(\S+)", block).groups())  # type: ignore[union-attr]
        offsets.append((x, y, z))
    lines = motion.strip().splitlines()
    frame_time = float(lines[1].split(":")[1])
    values = np.array([[float(v) for v in line.split()] for line in lines[2:]])
    rotations = zxy_to_matrix(np.radians(values[:, 3:].reshape(len(values), len(names), 3)))
    return names, np.array(offsets), rotations, values[:, :3], 1.0 / frame_time
