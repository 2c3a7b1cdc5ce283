"""Animation files: the layouts `emostream animate`, `stream` and `demo` write (.npz, .json, and the
Live Link Face .csv). Torch-free: clients write them too."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emostream.runtime.body_pose import body_arrays
from emostream.runtime.errors import ConfigError
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, BODY_FPS, FACE_CHANNELS, SMPLX_JOINTS, SMPLX_PARENTS


@dataclass(frozen=True)
class Animation:
    face: np.ndarray  # float32 (T, 59) in FACE_CHANNELS order
    fps: int
    meta: dict[str, Any]
    body: np.ndarray | None = None  # float32 (T_b, 223) body frames in the wire layout (BODY_CHANNELS)
    body_fps: int = BODY_FPS

    @property
    def time(self) -> np.ndarray:
        """Media time in seconds of each face frame."""
        return np.arange(self.face.shape[0]) / self.fps

    @property
    def body_time(self) -> np.ndarray:
        return np.arange(0 if self.body is None else self.body.shape[0]) / self.body_fps


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def live_link_columns() -> list[str]:
    """Live Link Face CSV header: timecode, count, 52 PascalCase shapes, head and both eyes' yaw/pitch/roll."""
    rotations = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip
    return ["Timecode", "BlendShapeCount", *[_pascal(n) for n in ARKIT_BLENDSHAPES], *rotations]


OUTPUT_FORMATS = (".npz", ".json", ".csv")


def check_output_format(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown output format {path.suffix!r}: use .npz, .json or .csv")


def write_animation(animation: Animation, path: Path) -> None:
    """Writes .npz (arrays), .json (lists) or .csv (Live Link Face layout, angles in radians)."""
    check_output_format(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        arrays: dict[str, Any] = {
            "face": animation.face,
            "face_channels": np.array(FACE_CHANNELS),
            "fps": animation.fps,
            "time": animation.time,
            "meta": json.dumps(animation.meta),
        }
        if animation.body is not None:
            arrays |= body_arrays(animation.body, animation.body_fps)
        np.savez(path, **arrays)
    elif suffix == ".json":
        document = {"face_channels": list(FACE_CHANNELS), "fps": animation.fps, "time": animation.time.tolist(),
                    "face": animation.face.round(5).tolist(), "meta": animation.meta}  # fmt: skip
        if animation.body is not None:
            arrays = body_arrays(animation.body, animation.body_fps)
            document |= {"body_joints": list(SMPLX_JOINTS), "body_parents": list(SMPLX_PARENTS),
                         "body_fps": animation.body_fps, "body_quat": arrays["body_quat"].round(6).tolist(),
                         "body_trans": arrays["body_trans"].round(6).tolist()}  # fmt: skip
        path.write_text(json.dumps(document))
    else:  # .csv
        idx = {n: i for i, n in enumerate(FACE_CHANNELS)}
        order = ["headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch", None,
                 "rightEyeYaw", "rightEyePitch", None]  # fmt: skip
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(live_link_columns())
            for k, frame in enumerate(animation.face):
                seconds, sub = divmod(k, animation.fps)
                timecode = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{sub:02d}.000"
                rotations = [frame[idx[n]] if n else 0.0 for n in order]
                writer.writerow([timecode, 61, *[f"{v:.5f}" for v in frame[:52]], *[f"{v:.5f}" for v in rotations]])
