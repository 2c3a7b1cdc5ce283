"""Signed distance primitives and sampling, for the built-in avatar's generated surfaces (body_mesh.py,
the hair in head_mesh.py). Distances are in metres, negative inside."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

COARSE_STEP = 4  # grid samples per coarse sample when finding where the surface is


@dataclass(frozen=True)
class Cone:
    """A capsule whose radius goes from `ra` at `a` to `rb` at `b` (an approximate distance, exact for
    equal radii)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    joint: int
    colour: np.ndarray

    def distance(self, p: np.ndarray) -> np.ndarray:
        ab = self.b - self.a
        t = np.clip((p - self.a) @ ab / (ab @ ab), 0.0, 1.0)
        nearest = self.a + t[:, None] * ab
        return np.linalg.norm(p - nearest, axis=1) - (self.ra + (self.rb - self.ra) * t)


@dataclass(frozen=True)
class Ellipsoid:
    centre: np.ndarray
    radii: np.ndarray
    joint: int
    colour: np.ndarray

    def distance(self, p: np.ndarray) -> np.ndarray:
        q = p - self.centre
        k0 = np.linalg.norm(q / self.radii, axis=1)
        k1 = np.linalg.norm(q / self.radii**2, axis=1)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)  # Quilez's bound, good near the surface


Primitive = Cone | Ellipsoid


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a union whose crease is rounded over about `k` metres."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """An intersection with its edge rounded over about `k` metres."""
    return -smooth_min(-a, -b, k)


def sample_grid(
    distance: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """`distance` sampled on a grid from `lo` to `hi`: the (X, Y, Z) values and the grid's corner.

    Coarse first: only samples within reach of the surface need the exact distance (most of the box is
    far inside or far outside, where the coarse value's sign is all surface nets use)."""
    axes = [np.arange(lo[k], hi[k] + spacing, spacing) for k in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    shape = points.shape[:3]
    step = COARSE_STEP
    coarse_points = points[::step, ::step, ::step]
    coarse = distance(coarse_points.reshape(-1, 3)).reshape(coarse_points.shape[:3])

    def fine(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(np.repeat(a, step, 0), step, 1), step, 2)[: shape[0], : shape[1], : shape[2]]

    near = fine(np.abs(coarse) < 1.8 * step * spacing)
    values = fine(coarse).copy()
    values[near] = distance(points[near])
    return values, lo
