"""The gesture generator's pose representation, and conversions to the wire and file formats. Torch-free.

A pose feature vector holds the 6D rotation (Zhou et al. 2019) of every generated joint, then the root
translation in metres. Generated joints are the trunk, arms, hands and the legs that carry the weight
shift; ankles and feet stay at rest (grounded), and the head, jaw and eyes belong to the face stream,
whose head rotation a client composes on top of the body (docs/gestures.md).
"""

from __future__ import annotations

import numpy as np

from emostream.runtime.rigs import SMPLX_JOINTS, SMPLX_PARENTS
from emostream.runtime.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_sixd,
    quat_to_axis_angle,
    sixd_to_matrix,
)

_BY_NAME = {name: i for i, name in enumerate(SMPLX_JOINTS)}
GESTURE_JOINTS: tuple[int, ...] = tuple(
    _BY_NAME[n]
    for n in (
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "spine3", "neck",
        "left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist",
    )
) + tuple(range(25, 55))  # fmt: skip
N_POSE_FEATURES = 6 * len(GESTURE_JOINTS) + 3
N_JOINTS = len(SMPLX_JOINTS)


def pose_features(axis_angle: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T, 55, 3) local axis-angle rotations and (T, 3) root translation -> (T, N_POSE_FEATURES) float32."""
    sixd = matrix_to_sixd(axis_angle_to_matrix(axis_angle[:, GESTURE_JOINTS]))
    return np.concatenate([sixd.reshape(len(axis_angle), -1), trans], axis=1).astype(np.float32)


def features_to_matrices(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, N_POSE_FEATURES) -> local rotation matrices (T, 55, 3, 3) (identity where not generated) and
    root translation (T, 3)."""
    T = features.shape[0]
    rotations = np.broadcast_to(np.eye(3), (T, N_JOINTS, 3, 3)).copy()
    sixd = features[:, : 6 * len(GESTURE_JOINTS)].reshape(T, len(GESTURE_JOINTS), 6)
    rotations[:, GESTURE_JOINTS] = sixd_to_matrix(sixd)
    return rotations, features[:, -3:].astype(np.float64)


def features_to_axis_angle(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, N_POSE_FEATURES) -> (T, 55, 3) axis-angle and (T, 3) translation, float32."""
    rotations, trans = features_to_matrices(features)
    return matrix_to_axis_angle(rotations).astype(np.float32), trans.astype(np.float32)


def body_frames(features: np.ndarray) -> np.ndarray:
    """(T, N_POSE_FEATURES) -> (T, 223) frames in the wire layout (runtime.rigs.BODY_CHANNELS): each
    joint's unit quaternion (x, y, z, w), then the root translation."""
    rotations, trans = features_to_matrices(features)
    quats = matrix_to_quat(rotations).reshape(len(features), -1)
    return np.concatenate([quats, trans], axis=1).astype(np.float32)


def frames_to_quat(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 223) wire-layout body frames -> quaternions (T, 55, 4) and translation (T, 3)."""
    return frames[:, : 4 * N_JOINTS].reshape(len(frames), N_JOINTS, 4), frames[:, 4 * N_JOINTS :]


def body_arrays(frames: np.ndarray, fps: int, time_s: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The body keys of an animation .npz from wire-layout frames (T, 223): local joint rotations as
    quaternions (x, y, z, w) and axis-angle, root translation, the skeleton, frame rate and media times."""
    quat, trans = frames_to_quat(frames)
    return {
        "body_quat": quat.astype(np.float32),
        "body_axis_angle": quat_to_axis_angle(quat).astype(np.float32),
        "body_trans": trans.astype(np.float32),
        "body_joints": np.array(SMPLX_JOINTS),
        "body_parents": np.array(SMPLX_PARENTS),
        "body_fps": np.array(fps),
        "body_time": np.arange(len(frames)) / fps if time_s is None else time_s,
    }


def frames_from_arrays(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """Wire-layout body frames (T, 223) from an animation .npz's body keys (`body_arrays`), or None."""
    if "body_quat" not in arrays or "body_trans" not in arrays:
        return None
    quat = np.asarray(arrays["body_quat"], np.float32)
    return np.concatenate([quat.reshape(len(quat), -1), np.asarray(arrays["body_trans"], np.float32)], axis=1)
