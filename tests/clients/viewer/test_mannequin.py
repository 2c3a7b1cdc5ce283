import numpy as np

from emostream.clients.viewer.mannequin import Mannequin, relaxed_pose
from emostream.runtime.rigs import SMPLX_JOINTS, rest_pose_frame


def test_mannequin_has_limbs_and_articulated_fingers_and_carries_the_head() -> None:
    mannequin = Mannequin()
    fingers = [s for s in mannequin.segments if "index" in SMPLX_JOINTS[s.joint] or "thumb" in SMPLX_JOINTS[s.joint]]
    assert len(mannequin.segments) > 50 and fingers
    models, head = mannequin.pose(rest_pose_frame())
    assert models.shape == (len(mannequin.segments), 4, 4)
    assert 1.5 < head[1, 3] < 1.65  # the head joint of a 1.75 m adult
    _, relaxed_head = mannequin.pose(relaxed_pose())
    np.testing.assert_allclose(relaxed_head, head, atol=1e-9)  # arms move, the head stays


def test_relaxed_pose_brings_the_arms_down() -> None:
    mannequin = Mannequin()
    rest, _ = mannequin.pose(rest_pose_frame())
    relaxed, _ = mannequin.pose(relaxed_pose())
    centres_rest, centres_relaxed = rest[:, 1, 3], relaxed[:, 1, 3]
    assert centres_relaxed.min() < centres_rest.min() + 1e-9
    forearm = [k for k, s in enumerate(mannequin.segments) if SMPLX_JOINTS[s.joint] == "left_elbow"]
    assert relaxed[forearm[0], 1, 3] < rest[forearm[0], 1, 3] - 0.3
