"""Loaders for real face captures, so a user can train the face model on their own recordings.

A captures folder holds pairs that share a stem: `take1.wav` (or .flac) with either
- `take1.csv`: a Live Link Face CSV export (Timecode, BlendShapeCount, 52 PascalCase ARKit curves, head
  and eye yaw/pitch/roll), mapped by column name, never by position; or
- `take1.npz`: a FLAME-parameter sequence (`expression` (T, n_exp), `jaw_pose` (T, 3) axis-angle,
  optional `neck_pose` (T, 3), `fps`), turned into the ARKit rig by a linear map the user provides in the
  folder as `flame_to_arkit.npz` (`matrix` (52, n_exp + 3), `bias` (52,)), e.g. fitted on paired data.
An optional `take1.json` gives {"emotion": "happy", "intensity": 0.8}; otherwise neutral.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, FACE_FPS

_CH = {name: i for i, name in enumerate(FACE_CHANNELS)}
_CSV_ROTATIONS = {
    "headyaw": "headYaw", "headpitch": "headPitch", "headroll": "headRoll",
    "lefteyeyaw": "leftEyeYaw", "lefteyepitch": "leftEyePitch",
    "righteyeyaw": "rightEyeYaw", "righteyepitch": "rightEyePitch",
}  # fmt: skip


class CaptureError(ValueError):
    """A capture file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Capture:
    name: str
    audio_path: Path
    face: np.ndarray  # float32 (T, 59) at FACE_FPS, FACE_CHANNELS order
    emotion: str
    intensity: float


def resample_frames(frames: np.ndarray, times_s: np.ndarray, fps: int = FACE_FPS) -> np.ndarray:
    """Linear interpolation of (T, C) frames stamped `times_s` onto a regular grid at `fps` from 0."""
    if frames.shape[0] < 2 or np.any(np.diff(times_s) <= 0):
        raise CaptureError("a capture needs at least two frames with increasing times")
    grid = np.arange(0.0, times_s[-1] - times_s[0] + 1e-9, 1.0 / fps)
    return np.stack([np.interp(grid, times_s - times_s[0], frames[:, c]) for c in range(frames.shape[1])], axis=1)


def _timecode_seconds(code: str, fps: float) -> float:
    """'HH:MM:SS:FF.fff' (Live Link Face) -> seconds."""
    hours, minutes, seconds, frames = code.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(frames) / fps


def read_live_link_csv(path: Path, capture_fps: float | None = None) -> np.ndarray:
    """A Live Link Face CSV as (T, 59) at 60 fps. The capture rate is inferred from the timecode frame
    field (its largest value + 1, once the take spans a whole second) unless given; 60 otherwise."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise CaptureError(f"{path}: no frames")
    header = [h.strip() for h in rows[0]]
    lookup = {h.lower(): i for i, h in enumerate(header)}
    if "timecode" not in lookup:
        raise CaptureError(f"{path}: no Timecode column; is this a Live Link Face export?")
    columns: list[tuple[int, int]] = []  # (csv column, our channel)
    for name in ARKIT_BLENDSHAPES:
        if name.lower() not in lookup:
            raise CaptureError(f"{path}: missing blendshape column {name[0].upper() + name[1:]}")
        columns.append((lookup[name.lower()], _CH[name]))
    columns += [(lookup[k], _CH[v]) for k, v in _CSV_ROTATIONS.items() if k in lookup]
    body = rows[1:]
    codes = [r[lookup["timecode"]] for r in body]
    whole_seconds = {c.rsplit(":", 1)[0] for c in codes}
    fps = capture_fps or (max(float(c.split(":")[3]) for c in codes) // 1 + 1 if len(whole_seconds) > 2 else 60.0)
    times = np.array([_timecode_seconds(c, fps) for c in codes])
    values = np.zeros((len(body), len(FACE_CHANNELS)))
    try:
        for t, r in enumerate(body):
            for source, target in columns:
                values[t, target] = float(r[source])
    except (ValueError, IndexError) as exc:
        raise CaptureError(f"{path}: row {t + 2} is malformed ({exc})") from None
    if not np.all(np.isfinite(values)):
        raise CaptureError(f"{path}: non-finite values")
    face = resample_frames(values, times)
    face[:, :52] = np.clip(face[:, :52], 0, 1)
    return face.astype(np.float32)


def read_flame_npz(path: Path, mapping: Path) -> np.ndarray:
    """A FLAME sequence as (T, 59) at 60 fps through the user's linear FLAME -> ARKit map."""
    with np.load(path) as data:
        try:
            expression, jaw = data["expression"].astype(np.float64), data["jaw_pose"].astype(np.float64)
            fps = float(data["fps"])
        except KeyError as exc:
            raise CaptureError(f"{path}: missing array {exc}") from None
        neck = data["neck_pose"].astype(np.float64) if "neck_pose" in data else np.zeros((len(expression), 3))
    if expression.ndim != 2 or jaw.shape != (len(expression), 3) or neck.shape != jaw.shape:
        raise CaptureError(f"{path}: expected expression (T, n), jaw_pose and neck_pose (T, 3)")
    with np.load(mapping) as m:
        matrix, bias = m["matrix"], m["bias"]
    if matrix.shape != (52, expression.shape[1] + 3):
        raise CaptureError(f"{mapping}: matrix must be (52, {expression.shape[1] + 3}), got {matrix.shape}")
    values = np.zeros((len(expression), len(FACE_CHANNELS)))
    values[:, :52] = np.clip(np.concatenate([expression, jaw], axis=1) @ matrix.T + bias, 0, 1)
    # FLAME's neck pose is axis-angle about x (pitch), y (yaw), z (roll) in FLAME's Y-up frame.
    values[:, _CH["headPitch"]], values[:, _CH["headYaw"]], values[:, _CH["headRoll"]] = neck.T
    return resample_frames(values, np.arange(len(values)) / fps).astype(np.float32)


def load_captures(folder: Path) -> list[Capture]:
    """Every audio + face pair in `folder`, sorted by name. Raises CaptureError naming a bad file."""
    captures = []
    mapping = folder / "flame_to_arkit.npz"
    for audio in sorted([*folder.glob("*.wav"), *folder.glob("*.flac")]):
        csv_path, npz_path, meta_path = (audio.with_suffix(s) for s in (".csv", ".npz", ".json"))
        if csv_path.exists():
            face = read_live_link_csv(csv_path)
        elif npz_path.exists():
            if not mapping.exists():
                raise CaptureError(f"{npz_path}: FLAME captures need {mapping.name} in the same folder")
            face = read_flame_npz(npz_path, mapping)
        else:
            continue
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        captures.append(Capture(audio.stem, audio, face, meta.get("emotion", "neutral"), meta.get("intensity", 1.0)))
    if not captures:
        raise CaptureError(f"{folder}: no audio file with a matching .csv or .npz")
    return captures
