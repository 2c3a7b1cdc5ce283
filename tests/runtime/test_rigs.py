import numpy as np
import pytest

from emostream.runtime import rigs
from emostream.runtime.rotations import axis_angle_to_matrix


def test_face_rig_has_the_52_arkit_names_in_unreal_order_then_rotations() -> None:
    assert len(rigs.ARKIT_BLENDSHAPES) == 52 == len(set(rigs.ARKIT_BLENDSHAPES))
    assert rigs.ARKIT_BLENDSHAPES[0] == "eyeBlinkLeft"
    assert rigs.ARKIT_BLENDSHAPES[17] == "jawOpen"
    assert rigs.ARKIT_BLENDSHAPES[18] == "mouthClose"
    assert rigs.ARKIT_BLENDSHAPES[51] == "tongueOut"
    assert rigs.FACE_RIG.index("headYaw") == 52
    assert rigs.FACE_RIG.channels[-1] == "rightEyePitch"
    assert len(rigs.FACE_CHANNELS) == 59


def test_body_rig_is_the_smplx_tree() -> None:
    assert len(rigs.SMPLX_JOINTS) == len(rigs.SMPLX_PARENTS) == 55
    for joint, parent in enumerate(rigs.SMPLX_PARENTS):
        assert parent < joint  # topological order: parents first
    names = rigs.SMPLX_JOINTS
    assert names[rigs.SMPLX_PARENTS[names.index("left_wrist")]] == "left_elbow"
    assert names[rigs.SMPLX_PARENTS[names.index("right_thumb1")]] == "right_wrist"
    assert names[rigs.SMPLX_PARENTS[names.index("jaw")]] == "head"
    assert len(rigs.BODY_CHANNELS) == 55 * 4 + 3
    assert rigs.BODY_RIG.index("left_wrist.qw") == 20 * 4 + 3


def test_rest_skeleton_has_adult_proportions() -> None:
    offsets = rigs.rest_offsets(1.75)
    positions, _ = rigs.forward_kinematics(np.broadcast_to(np.eye(3), (55, 3, 3)), np.zeros(3), offsets)
    joint = {name: positions[i] for i, name in enumerate(rigs.SMPLX_JOINTS)}
    assert 0.9 < joint["pelvis"][1] < 1.05
    assert 1.5 < joint["head"][1] < 1.65
    assert 0.03 < joint["left_ankle"][1] < 0.1
    assert 0.9 < joint["left_hip"][1] < 1.0
    fingertip_span = joint["left_middle3"][0] - joint["right_middle3"][0] + 2 * 0.1 * 0.108 * 1.75
    assert 1.7 < fingertip_span < 1.9  # arm span is close to stature in adults
    for side, sign in (("left", 1), ("right", -1)):
        assert sign * joint[f"{side}_wrist"][0] > sign * joint[f"{side}_elbow"][0] > 0  # T-pose
        assert sign * joint[f"{side}_middle3"][0] > sign * joint[f"{side}_wrist"][0] + 0.1
    np.testing.assert_allclose(joint["left_shoulder"] * [-1, 1, 1], joint["right_shoulder"])
    # Scaling the stature scales every bone.
    np.testing.assert_allclose(rigs.rest_offsets(1.5), offsets * 1.5 / 1.75)


def test_forward_kinematics_bends_the_chain_below_a_rotated_joint() -> None:
    offsets = rigs.rest_offsets()
    rotations = np.broadcast_to(np.eye(3), (55, 3, 3)).copy()
    elbow = rigs.SMPLX_JOINTS.index("left_elbow")
    rotations[elbow] = axis_angle_to_matrix(np.array([0.0, -np.pi / 2, 0.0]))  # forearm swings forward
    rest, _ = rigs.forward_kinematics(np.broadcast_to(np.eye(3), (55, 3, 3)), np.zeros(3), offsets)
    bent, world = rigs.forward_kinematics(rotations, np.array([0.0, 0.0, 0.5]), offsets)
    wrist = rigs.SMPLX_JOINTS.index("left_wrist")
    np.testing.assert_allclose(bent[elbow], rest[elbow] + [0, 0, 0.5])
    forearm = bent[wrist] - bent[elbow]
    np.testing.assert_allclose(np.linalg.norm(forearm), np.linalg.norm(offsets[wrist]))
    np.testing.assert_allclose(forearm, rotations[elbow] @ offsets[wrist])
    assert forearm[2] > 0.2  # pointing forward now, not sideways
    np.testing.assert_allclose(world[wrist], rotations[elbow])


def test_rest_pose_frame_is_identity_quaternions() -> None:
    frame = rigs.rest_pose_frame()
    assert frame.shape == (len(rigs.BODY_CHANNELS),) and frame.dtype == np.float32
    quats = frame[:-3].reshape(55, 4)
    np.testing.assert_array_equal(quats, np.tile([0, 0, 0, 1], (55, 1)))


def test_face_regions_partition_the_face_rig_and_strengths_scale_them() -> None:
    names = [n for region in rigs.FACE_REGION_CHANNELS.values() for n in region]
    assert sorted(names) == sorted(rigs.FACE_CHANNELS)
    frame = np.full(len(rigs.FACE_CHANNELS), 0.6, np.float32)
    out = rigs.apply_face_strength(frame, {"lower": 0.0, "upper": 2.0, "head": 0.5})
    jaw, brow, yaw = (rigs.FACE_RIG.index(n) for n in ("jawOpen", "browInnerUp", "headYaw"))
    assert out[jaw] == 0.0 and out[brow] == 1.0 and out[yaw] == pytest.approx(0.3)  # clipped to [0, 1]
    assert rigs.apply_face_strength(frame, {"lower": 1.0}) is frame
