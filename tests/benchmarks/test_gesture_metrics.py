"""The gesture benchmark's motion metrics on motion whose answer is known."""

import numpy as np

from emostream.runtime.rigs import SMPLX_JOINTS, forward_kinematics, rest_offsets
from emostream.training.gesture_evaluation import beat_alignment, motion_beats, motion_metrics


def rest_positions(frames: int) -> np.ndarray:
    rotations = np.broadcast_to(np.eye(3), (frames, 55, 3, 3))
    return forward_kinematics(rotations, np.zeros((frames, 3)), rest_offsets())[0].copy()


def test_beat_alignment_scores_distance_to_the_nearest_motion_beat() -> None:
    onsets = np.array([1.0, 2.0])
    assert beat_alignment(onsets, onsets) == 1.0
    assert np.isclose(beat_alignment(onsets, onsets + 0.1), np.exp(-0.5))  # one σ away
    assert beat_alignment(onsets, np.array([])) == 0.0
    assert np.isnan(beat_alignment(np.array([]), onsets))


def test_motion_beats_are_the_pauses_of_a_swinging_body() -> None:
    t = np.arange(90) / 30
    pos = rest_positions(t.size)
    pos[..., 0] += 0.2 * np.sin(2 * np.pi * t)[:, None]  # 1 Hz swing: it stops at t = 0.25, 0.75, ...
    beats = motion_beats(pos)
    expected = np.array([0.25, 0.75, 1.25, 1.75, 2.25, 2.75])
    found = expected[np.abs(expected[:, None] - beats[None]).min(axis=1) <= 1.5 / 30]
    assert len(found) >= 4 and len(beats) <= len(expected)
    assert motion_beats(rest_positions(60)).size == 0  # a still body has no beats


def test_a_hand_above_the_chin_and_pelvis_drift_are_measured() -> None:
    pos = rest_positions(60)
    still = motion_metrics(pos)
    assert still["hand_above_chin_share"] == 0 and still["pelvis_drift_cm"] == 0 and still["speed_m_s"] == 0
    wrist, head, pelvis = (SMPLX_JOINTS.index(n) for n in ("right_wrist", "head", "pelvis"))
    pos[:15, wrist, 1] = pos[:15, head, 1] + 0.1  # a raised hand for a quarter of the frames
    pos[:, pelvis, 2] += np.linspace(0, 0.03, 60)
    moved = motion_metrics(pos)
    assert moved["hand_above_chin_share"] == 0.25
    assert np.isclose(moved["pelvis_drift_cm"], 3.0)
