"""Body motion files the runtime reads: our own animation npz (body_axis_angle, body_trans, body_fps) and
BEAT2-style SMPL-X npz (poses (T, 165) axis-angle = 55 x 3, trans (T, 3), mocap_frame_rate). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostream.runtime.errors import ConfigError
from emostream.runtime.rigs import BODY_FPS, SMPLX_JOINTS
from emostream.runtime.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_sixd, sixd_to_matrix

N_JOINTS = len(SMPLX_JOINTS)


def resample_motion(axis_angle: np.ndarray, trans: np.ndarray, fps: float, target_fps: float = BODY_FPS
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(T, 55, 3), (T, 3) at `fps` -> the same at `target_fps`, linear in 6D (re-orthonormalised) and
    in translation."""
    if abs(fps - target_fps) < 1e-6:
        return axis_angle.astype(np.float32), trans.astype(np.float32)
    T = axis_angle.shape[0]
    n = max(1, int(np.floor((T - 1) * target_fps / fps)) + 1)
    source = np.arange(n) * fps / target_fps
    lo = np.minimum(np.floor(source).astype(int), T - 1)
    hi = np.minimum(lo + 1, T - 1)
    w = (source - lo)[:, None, None]
    sixd = matrix_to_sixd(axis_angle_to_matrix(axis_angle))
    blended = sixd[lo] * (1 - w) + sixd[hi] * w
    moved = trans[lo] * (1 - w[:, 0]) + trans[hi] * w[:, 0]
    return matrix_to_axis_angle(sixd_to_matrix(blended)).astype(np.float32), moved.astype(np.float32)


def load_motion(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T, 55, 3) local axis-angle rotations and (T, 3) root translation at 30 fps from either layout.
    Raises ConfigError naming the file and what is wrong."""
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable npz ({exc})") from None
    try:
        if "body_axis_angle" in arrays:
            poses, trans, fps = arrays["body_axis_angle"], arrays["body_trans"], float(arrays["body_fps"])
        elif "poses" in arrays:
            poses, trans, fps = arrays["poses"], arrays["trans"], float(arrays["mocap_frame_rate"])
        elif "face" in arrays:
            raise ConfigError(f"{path} holds a face animation and no body: make one with a body with `emostream "
                              "animate speech.wav -o anim.npz` (the body is on by default)")  # fmt: skip
        else:
            raise ConfigError(f"{path}: no body motion (need body_axis_angle, or BEAT2's poses)")
    except KeyError as exc:
        raise ConfigError(f"{path}: missing array {exc}") from None
    poses = np.asarray(poses, dtype=np.float64).reshape(len(poses), -1)
    if poses.shape[1] != 3 * N_JOINTS:
        raise ConfigError(f"{path}: poses must hold {N_JOINTS} x 3 axis-angle values per frame, got {poses.shape}")
    trans = np.asarray(trans, dtype=np.float64)
    if trans.shape != (poses.shape[0], 3):
        raise ConfigError(f"{path}: trans must be ({poses.shape[0]}, 3), got {trans.shape}")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()) or fps <= 0:
        raise ConfigError(f"{path}: non-finite values or a bad frame rate ({fps})")
    return resample_motion(poses.reshape(-1, N_JOINTS, 3), trans, fps)


def write_beat2(path: Path, axis_angle: np.ndarray, trans: np.ndarray, fps: float = BODY_FPS) -> None:
    """A BEAT2-style SMPL-X npz: poses (T, 165) axis-angle, trans (T, 3), mocap_frame_rate, and neutral
    shape (betas) and expression arrays, which this runtime does not generate."""
    T = axis_angle.shape[0]
    np.savez(
        path,
        poses=axis_angle.reshape(T, 3 * N_JOINTS).astype(np.float32),
        trans=trans.astype(np.float32),
        mocap_frame_rate=np.array(fps),
        betas=np.zeros(300, np.float32),
        expressions=np.zeros((T, 100), np.float32),
        gender=np.array("neutral"),
        model=np.array("smplx2020"),
    )
