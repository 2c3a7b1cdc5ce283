"""Real-data loaders on small fixtures written here: Live Link Face CSV and FLAME sequences."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS
from emostream.training.captures import CaptureError, load_captures, read_live_link_csv
from emostream.training.face_data import build_capture_dataset

CH = {n: i for i, n in enumerate(FACE_CHANNELS)}


def write_live_link_csv(path: Path, n_frames: int, fps: int = 60, swap_jaw_columns: bool = False) -> np.ndarray:
    """A Live Link Face style CSV; returns the blendshape values written, (n_frames, 52)."""
    names = [n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES]
    if swap_jaw_columns:  # some exports order JawRight before JawLeft: names, not positions, must decide
        i, j = names.index("JawLeft"), names.index("JawRight")
        names[i], names[j] = names[j], names[i]
    rotations = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (n_frames, 52))
    with path.open("w") as f:
        f.write(",".join(["Timecode", "BlendShapeCount", *names, *rotations]) + "\n")
        for k in range(n_frames):
            s, sub = divmod(k, fps)
            row = [f"10:00:{s:02d}:{sub:02d}.000", "61"]
            by_name = dict(zip([n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES], values[k], strict=True))
            row += [f"{by_name[n]:.6f}" for n in names] + ["0.1", "-0.05", "0", "0.2", "0", "0", "0.2", "0", "0"]
            f.write(",".join(row) + "\n")
    return values


def test_live_link_csv_maps_columns_by_name_and_keeps_60_fps(tmp_path: Path) -> None:
    written = write_live_link_csv(tmp_path / "take.csv", 30, swap_jaw_columns=True)
    face = read_live_link_csv(tmp_path / "take.csv")
    assert face.shape == (30, 59)
    np.testing.assert_allclose(face[:, :52], written, atol=1e-5)
    np.testing.assert_allclose(face[:, CH["headYaw"]], 0.1)
    np.testing.assert_allclose(face[:, CH["leftEyeYaw"]], 0.2)


def test_a_30_fps_capture_is_resampled_to_60(tmp_path: Path) -> None:
    write_live_link_csv(tmp_path / "take.csv", 90, fps=30)
    face = read_live_link_csv(tmp_path / "take.csv")
    assert face.shape[0] == 179  # 89 intervals of 1/30 s, at 60 fps


def test_flame_sequences_go_through_the_users_linear_map(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "take.wav", np.zeros(16_000, np.float32), 16_000)
    expression = np.zeros((25, 10))
    expression[:, 0] = np.linspace(0, 1, 25)
    jaw = np.zeros((25, 3))
    jaw[:, 0] = 0.2
    np.savez(tmp_path / "take.npz", expression=expression, jaw_pose=jaw, fps=25.0)
    with pytest.raises(CaptureError, match="flame_to_arkit"):
        load_captures(tmp_path)
    matrix = np.zeros((52, 13))
    matrix[ARKIT_BLENDSHAPES.index("mouthSmileLeft"), 0] = 1.0
    matrix[ARKIT_BLENDSHAPES.index("jawOpen"), 10] = 2.0
    np.savez(tmp_path / "flame_to_arkit.npz", matrix=matrix, bias=np.zeros(52))
    (tmp_path / "take.json").write_text(json.dumps({"emotion": "happy", "intensity": 0.5}))
    [capture] = load_captures(tmp_path)
    assert capture.emotion == "happy" and capture.face.shape == (58, 59)  # 0.96 s at 60 fps
    np.testing.assert_allclose(capture.face[:, CH["jawOpen"]], 0.4, atol=1e-6)
    assert capture.face[-1, CH["mouthSmileLeft"]] == pytest.approx(0.95 / 0.96)  # the last 60 fps frame


def test_malformed_captures_are_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(
        "Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.0,1,0.5\n00:00:00:01.0,1,0.5\n"
    )
    with pytest.raises(CaptureError, match="missing blendshape column"):
        read_live_link_csv(tmp_path / "bad.csv")
    with pytest.raises(CaptureError, match="no audio file"):
        load_captures(tmp_path)


def test_captures_become_training_examples_with_closures_from_the_lips(tmp_path: Path) -> None:
    soundfile.write(
        tmp_path / "take.wav", (0.1 * np.random.default_rng(0).normal(size=24_000)).astype(np.float32), 48_000
    )
    write_live_link_csv(tmp_path / "take.csv", 30)
    [example] = build_capture_dataset(tmp_path, n_audio=2)
    assert len(example.features) == 2 and example.faces[0].shape == (30, 59)
    assert example.closure.shape == (30,) and set(np.unique(example.closure)) <= {0.0, 1.0}
