"""BEAT2-style SMPL-X motion capture: `<take>.npz` (poses (T, 165) axis-angle = 55 x 3, trans (T, 3),
mocap_frame_rate) next to `<take>.wav`, as in BEAT2's smplxflame_30 and wave16k folders flattened into one.

Takes are resampled to 30 fps (runtime/motion_files.py), and the
speaker named by BEAT's file names (`2_scott_0_1_1`: the second field) becomes the style. BEAT2 keeps its
emotion labels elsewhere, so these takes train as neutral.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostream.runtime.audio_files import read_audio
from emostream.runtime.body_pose import pose_features
from emostream.runtime.errors import ConfigError
from emostream.runtime.motion_files import load_motion
from emostream.runtime.rigs import BODY_FPS
from emostream.training.face_data import supported_rate
from emostream.training.gesture_data import GestureClip, emotion_one_hot, frame_features


def speaker_of(path: Path) -> str:
    parts = path.stem.split("_")
    return parts[1] if len(parts) > 1 else path.stem


def build_beat2_dataset(folder: Path) -> tuple[list[GestureClip], list[str]]:
    """One clip per take with audio; returns the clips and the speakers (the style names)."""
    takes = sorted(p for p in folder.glob("*.npz") if p.with_suffix(".wav").exists())
    if not takes:
        raise ConfigError(f"{folder}: no <take>.npz with a matching <take>.wav")
    speakers = sorted({speaker_of(p) for p in takes})
    clips = []
    for path in takes:
        axis_angle, trans = load_motion(path)
        audio, rate = supported_rate(*read_audio(path.with_suffix(".wav"), require_supported_rate=False))
        n = min(axis_angle.shape[0], int(np.ceil(audio.size / rate * BODY_FPS)))
        poses = pose_features(axis_angle[:n], trans[:n] - trans[:1])
        clips.append(GestureClip([frame_features(audio, rate, n)], [poses.astype(np.float16)], [0],
                                 [emotion_one_hot("neutral", 1.0)], [speakers.index(speaker_of(path))],
                                 speaker_of(path)))  # fmt: skip
    return clips, speakers
