"""BVH export: the file's hierarchy is the SMPL-X tree and its motion reproduces the joint positions."""

from pathlib import Path

import numpy as np

from emostream.runtime.bvh import matrix_to_zxy, read_bvh, write_bvh, zxy_to_matrix
from emostream.runtime.rigs import SMPLX_JOINTS, SMPLX_PARENTS, forward_kinematics, rest_offsets
from emostream.runtime.rotations import axis_angle_to_matrix


def test_euler_round_trip() -> None:
    rng = np.random.default_rng(0)
    rotations = axis_angle_to_matrix(rng.normal(0, 0.8, (200, 3)))
    np.testing.assert_allclose(zxy_to_matrix(matrix_to_zxy(rotations)), rotations, atol=1e-9)


def test_written_bvh_reproduces_joint_positions(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    T = 12
    rotations = axis_angle_to_matrix(rng.normal(0, 0.4, (T, 55, 3)))
    trans = rng.normal(0, 0.05, (T, 3))
    path = tmp_path / "motion.bvh"
    write_bvh(path, rotations, trans, fps=30)
    names, offsets, read_rotations, root, fps = read_bvh(path)
    assert sorted(names) == sorted(SMPLX_JOINTS) and len(names) == 55 and abs(fps - 30) < 1e-4
    order = [SMPLX_JOINTS.index(n) for n in names]
    np.testing.assert_allclose(offsets, rest_offsets()[order], atol=1e-6)
    # Rebuild the skeleton from the file's own order and compare world positions.
    local = np.empty_like(rotations)
    local[:, order] = read_rotations
    expected, _ = forward_kinematics(rotations, trans, rest_offsets())
    got, _ = forward_kinematics(local, root - rest_offsets()[0], rest_offsets())
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Parents come before children in the file, as BVH requires.
    position = {n: i for i, n in enumerate(names)}
    for j, parent in enumerate(SMPLX_PARENTS):
        if parent >= 0:
            assert position[SMPLX_JOINTS[parent]] < position[SMPLX_JOINTS[j]]
