import numpy as np

from emostream.clients.viewer.head_mesh import EYE_CENTRE_Y, build_head
from emostream.clients.viewer.sdf import Cone, sample_grid
from emostream.clients.viewer.surface_nets import surface_nets


def _volume(points: np.ndarray, triangles: np.ndarray) -> float:
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def test_surface_nets_closes_a_sphere_wound_outward_with_its_volume() -> None:
    axis = np.arange(-1.2, 1.21, 0.05)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    points, triangles = surface_nets(np.linalg.norm(grid, axis=-1) - 1.0, np.full(3, -1.2), 0.05)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=0.01)
    assert abs(_volume(points, triangles) - 4 / 3 * np.pi) < 0.03  # positive: wound outward


def test_coarse_to_fine_sampling_keeps_the_exact_distance_near_the_surface() -> None:
    cone = Cone(np.zeros(3), np.array([0.3, 0.0, 0.0]), 0.05, 0.03, 0, np.ones(3))
    lo, hi = np.full(3, -0.1), np.array([0.4, 0.1, 0.1])
    values, _ = sample_grid(cone.distance, lo, hi, 0.005)
    axes = [np.arange(lo[k], hi[k] + 0.005, 0.005) for k in range(3)]
    exact = cone.distance(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)).reshape(values.shape)
    near = np.abs(exact) < 0.01
    np.testing.assert_allclose(values[near], exact[near], atol=1e-9)
    assert np.array_equal(values < 0, exact < 0)  # far away only the sign matters, and it is kept


def test_the_hair_covers_the_crown_and_leaves_the_face_free() -> None:
    head = build_head()
    hair = head.positions[head.where("hair")]
    assert len(hair) > 1000
    assert hair[:, 1].max() > head.positions[head.where("skin"), 1].max() + 0.008  # volume on the crown
    in_front_of_eyes = (hair[:, 2] > 0.05) & (hair[:, 1] < EYE_CENTRE_Y + 0.03)
    assert not in_front_of_eyes.any()
