"""Rotation conversions in NumPy: axis-angle, matrix, quaternion (x, y, z, w) and the 6D representation.

The 6D representation is the first two columns of the rotation matrix (Zhou et al. 2019, "On the
Continuity of Rotation Representations in Neural Networks"), laid out as [col0, col1]. All functions take
arrays with any leading batch shape and work in float64 internally for round-trip accuracy.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (axis times angle in radians) to (..., 3, 3) matrices (Rodrigues)."""
    aa = np.asarray(axis_angle, dtype=np.float64)
    return quat_to_matrix(axis_angle_to_quat(aa))


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors to (..., 4) unit quaternions (x, y, z, w)."""
    aa = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(a/2)/a tends to 1/2 - a^2/48 as a -> 0; the series avoids dividing by a tiny angle.
    small = angle < 1e-6
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([aa * scale, np.cos(half)], axis=-1)


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) to (..., 3) rotation vectors with angle in [0, pi]."""
    q = _normalize(np.asarray(quat, dtype=np.float64))
    q = np.where(q[..., 3:4] < 0, -q, q)  # same rotation, angle at most pi
    xyz, w = q[..., :3], q[..., 3:4]
    sin_half = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, w)
    small = sin_half < 1e-6
    # angle / sin(angle/2) tends to 2 / w as the angle tends to 0.
    scale = np.where(small, 2.0 / np.maximum(w, _EPS), angle / np.where(small, 1.0, sin_half))
    return xyz * scale


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 3) rotation vectors."""
    return quat_to_axis_angle(matrix_to_quat(matrix))


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w), normalised first, to (..., 3, 3) rotation matrices."""
    x, y, z, w = np.moveaxis(_normalize(np.asarray(quat, dtype=np.float64)), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 4) unit quaternions (x, y, z, w) with w >= 0.

    Uses the largest of the four candidate denominators (Shepperd 1978), so it is stable at every angle.
    """
    m = np.asarray(matrix, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * squared magnitude of each component, up to rounding: w, x, y, z.
    candidates = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
    # Each row: the quaternion (x, y, z, w) times 4 * (its component that is largest).
    by_w = np.stack([m21 - m12, m02 - m20, m10 - m01, candidates[..., 0]], axis=-1)
    by_x = np.stack([candidates[..., 1], m01 + m10, m02 + m20, m21 - m12], axis=-1)
    by_y = np.stack([m01 + m10, candidates[..., 2], m12 + m21, m02 - m20], axis=-1)
    by_z = np.stack([m02 + m20, m12 + m21, candidates[..., 3], m10 - m01], axis=-1)
    options = np.stack([by_w, by_x, by_y, by_z], axis=-2)  # (..., 4, 4)
    best = np.argmax(candidates, axis=-1)[..., None, None]
    q = np.take_along_axis(options, np.broadcast_to(best, best.shape[:-2] + (1, 4)), axis=-2)[..., 0, :]
    q = _normalize(q)
    return np.where(q[..., 3:4] < 0, -q, q)


def sixd_to_matrix(sixd: np.ndarray) -> np.ndarray:
    """(..., 6) first two matrix columns, not necessarily orthonormal, to (..., 3, 3) rotations.

    Gram-Schmidt: the first column is normalised, the second made orthogonal to it, the third is their
    cross product, so any 6-vector with independent halves maps to a proper rotation.
    """
    d = np.asarray(sixd, dtype=np.float64)
    b1 = _normalize(d[..., 0:3])
    a2 = d[..., 3:6]
    b2 = _normalize(a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def matrix_to_sixd(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 6): the first column, then the second."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (..., 4) quaternions (x, y, z, w): rotate by b, then by a."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )
