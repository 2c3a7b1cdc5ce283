"""The judge diagnosis's swaps and perturbations (benchmarks/gesture_judge.py)."""

import numpy as np

from emostream.benchmarks.gesture_judge import PART_JOINTS, low_pass, part_columns, swapped, with_noise
from emostream.runtime.body_pose import GESTURE_JOINTS, N_POSE_FEATURES


def test_fingers_arms_and_trunk_split_the_generated_joints_and_a_swap_moves_only_its_part() -> None:
    whole = sorted(PART_JOINTS["fingers"] + PART_JOINTS["arms"] + PART_JOINTS["trunk"])
    assert whole == sorted(GESTURE_JOINTS)
    arm_joints = sorted(j for part in ("collars", "shoulders", "elbows", "wrists") for j in PART_JOINTS[part])
    assert arm_joints == sorted(PART_JOINTS["arms"])
    into, source = np.zeros((40, N_POSE_FEATURES)), np.ones((30, N_POSE_FEATURES))
    out = swapped(into, source, "elbows")
    assert out.shape == (30, N_POSE_FEATURES)
    assert np.flatnonzero(out[0]).tolist() == part_columns("elbows") and len(part_columns("elbows")) == 12
    assert len(part_columns("trunk")) == 6 * len(PART_JOINTS["trunk"]) + 3  # with the root translation


def test_the_perturbations_keep_a_still_pose_and_the_root() -> None:
    poses = np.random.default_rng(0).normal(size=(60, N_POSE_FEATURES))
    still = np.repeat(poses[:1], 60, axis=0)
    assert np.allclose(low_pass(still, 0.5), still)
    noisy = with_noise(poses, 0.02, seed=1)
    assert np.array_equal(noisy[:, -3:], poses[:, -3:])
    assert 0.005 < np.std(noisy[:, :-3] - poses[:, :-3]) < 0.04
