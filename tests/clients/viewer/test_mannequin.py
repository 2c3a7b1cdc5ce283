import numpy as np

from emostream.clients.viewer.body_mesh import build_body_mesh
from emostream.clients.viewer.mannequin import Mannequin, relaxed_pose
from emostream.runtime.rigs import SMPLX_JOINTS, rest_pose_frame

J = {name: i for i, name in enumerate(SMPLX_JOINTS)}


def _edges(triangles: np.ndarray) -> np.ndarray:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.sort(edges, axis=1)


def test_body_is_closed_outward_and_skinned_with_weights_that_sum_to_one() -> None:
    mesh = build_body_mesh()
    _, uses = np.unique(_edges(mesh.triangles.astype(np.int64)), axis=0, return_counts=True)
    assert np.all(uses % 2 == 0)  # closed: no edge borders a hole
    assert np.mean(uses == 2) > 0.9999  # surface nets may pinch two sheets along a rare edge, no more
    a, b, c = (mesh.positions[mesh.triangles[:, k]].astype(np.float64) for k in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    assert 0.04 < volume < 0.09  # cubic metres: an adult, wound outward
    face_normals = np.cross(b - a, c - a)
    assert np.mean(np.einsum("ij,ij->i", face_normals, mesh.normals[mesh.triangles].sum(axis=1)) > 0) > 0.999
    np.testing.assert_allclose(mesh.weights.sum(axis=1), 1.0, atol=1e-5)
    # Every finger bone and every limb joint moves some vertices (mostly) on its own.
    leading = mesh.joints[np.arange(len(mesh.joints)), np.argmax(mesh.weights, axis=1)]
    for name in ("left_index3", "right_thumb2", "left_pinky1", "right_elbow", "left_knee", "right_foot", "neck"):
        assert np.any((leading == J[name]) & (mesh.weights.max(axis=1) > 0.8)), name


def test_relaxed_pose_brings_the_arms_down_and_the_elbows_bend_without_tearing() -> None:
    mannequin = Mannequin()
    rest_frame = rest_pose_frame()
    rest = mannequin.posed_vertices(rest_frame)
    np.testing.assert_allclose(rest, mannequin.mesh.positions, atol=1e-6)  # the rest pose leaves the mesh
    relaxed = mannequin.posed_vertices(relaxed_pose())
    hand = mannequin.mesh.joints[:, 0] == J["left_wrist"]
    assert relaxed[hand, 1].mean() < rest[hand, 1].mean() - 0.4
    # Blended skinning: edges at the bent shoulders and elbows stretch as skin does, never tear away.
    edges = _edges(mannequin.mesh.triangles.astype(np.int64))
    before = np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1)
    after = np.linalg.norm(relaxed[edges[:, 0]] - relaxed[edges[:, 1]], axis=1)
    assert np.percentile(after / before, 99.9) < 1.6 and np.max(after / before) < 2.5


def test_pose_carries_the_head_and_rest_skinning_is_identity() -> None:
    mannequin = Mannequin()
    skin, head = mannequin.pose(rest_pose_frame())
    np.testing.assert_allclose(skin, np.broadcast_to(np.eye(4), skin.shape), atol=1e-9)
    assert 1.5 < head[1, 3] < 1.65  # the head joint of a 1.75 m adult
    _, relaxed_head = mannequin.pose(relaxed_pose())
    np.testing.assert_allclose(relaxed_head, head, atol=1e-9)  # arms move, the head stays
