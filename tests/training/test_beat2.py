"""The BEAT2-style loader on a small synthetic take (npz at 60 fps + wav), and its error messages."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostream.runtime.errors import ConfigError
from emostream.runtime.motion_files import load_motion
from emostream.runtime.rotations import axis_angle_to_matrix
from emostream.training.beat2 import build_beat2_dataset, speaker_of


def write_take(folder: Path, name: str, seconds: float = 5.0, fps: int = 60) -> np.ndarray:
    n = int(seconds * fps)
    t = np.arange(n) / fps
    poses = np.zeros((n, 55, 3))
    poses[:, 16, 2] = -1.2 + 0.3 * np.sin(2 * np.pi * 0.5 * t)  # left shoulder swings
    poses[:, 18, 1] = -0.5 * (1 + np.sin(2 * np.pi * t))  # left elbow
    trans = np.stack([0.01 * np.sin(t), 0.9 + 0 * t, 0 * t], axis=1)
    np.savez(folder / f"{name}.npz", poses=poses.reshape(n, 165), trans=trans, mocap_frame_rate=fps,
             betas=np.zeros(300), expressions=np.zeros((n, 100)))  # fmt: skip
    audio = 0.1 * np.sin(2 * np.pi * 200 * np.arange(int(seconds * 16000)) / 16000)
    sf.write(folder / f"{name}.wav", audio.astype(np.float32), 16000)
    return poses


def test_takes_resample_to_30_fps_with_the_same_rotations(tmp_path: Path) -> None:
    poses = write_take(tmp_path, "2_scott_0_1_1")
    axis_angle, trans = load_motion(tmp_path / "2_scott_0_1_1.npz")
    assert axis_angle.shape == (150, 55, 3) and trans.shape == (150, 3)
    # Every other 60 fps frame is a 30 fps frame: the same rotation.
    np.testing.assert_allclose(axis_angle_to_matrix(axis_angle), axis_angle_to_matrix(poses[::2]), atol=1e-5)


def test_dataset_has_one_clip_per_take_and_a_style_per_speaker(tmp_path: Path) -> None:
    write_take(tmp_path, "2_scott_0_1_1")
    write_take(tmp_path, "4_lawrence_0_2_2", seconds=4.0)
    (tmp_path / "9_nobody_0_1_1.npz").write_bytes(b"")  # no wav: skipped
    clips, speakers = build_beat2_dataset(tmp_path)
    assert speakers == ["lawrence", "scott"] and speaker_of(Path("2_scott_0_1_1.npz")) == "scott"
    assert [(c.voice, c.styles[0]) for c in clips] == [("scott", 1), ("lawrence", 0)]
    for clip in clips:
        T = clip.poses[0].shape[0]
        assert clip.features[0].shape == (4 * T, 80)
        np.testing.assert_allclose(clip.poses[0][0, -3:], 0, atol=1e-3)  # translation starts at zero


def test_bad_takes_get_clear_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "short.npz", poses=np.zeros((10, 99)), trans=np.zeros((10, 3)), mocap_frame_rate=30)
    with pytest.raises(ConfigError, match="55 x 3"):
        load_motion(tmp_path / "short.npz")
    np.savez(tmp_path / "none.npz", something=np.zeros(3))
    with pytest.raises(ConfigError, match="no body motion"):
        load_motion(tmp_path / "none.npz")
    with pytest.raises(ConfigError, match=r"no <take>\.npz"):
        build_beat2_dataset(tmp_path)


def test_train_gesture_command_trains_on_beat2_takes(tmp_path: Path) -> None:
    """The same command users run on real motion capture: a checkpoint with the speakers as styles, its
    recipe in the metadata, and loss curves beside it."""
    from emostream.runtime.models.gesture import load_gesture_checkpoint
    from emostream.training.train_gesture import main

    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes, "2_scott_0_1_1")
    write_take(takes, "4_lawrence_0_2_2")
    out = tmp_path / "gesture.v2.pt"  # a dot in the stem: the curves keep the whole stem
    main(["--beat2", str(takes), "--vae-steps", "3", "--flow-steps", "3", "--free-running-steps", "2",
          "--batch-size", "4", "--out", str(out)])  # fmt: skip
    network, styles, metadata = load_gesture_checkpoint(out)
    assert styles == ["lawrence", "scott"] and metadata["data"]["takes"] == 2
    assert metadata["training"]["vae_steps"] > 0 and metadata["training"]["flow_steps"] > 0
    assert network.config.emotion_film == metadata["training"]["emotion_film"]
    assert network.guidable and network.config.guidance == 1.0  # the default guidance goes with a temperature fit
    assert (tmp_path / "gesture.v2_training.png").stat().st_size > 0
    assert (tmp_path / "gesture.v2_training.json").exists()


def test_train_gesture_command_takes_history_lags_and_the_checkpoint_keeps_them(tmp_path: Path) -> None:
    from emostream.runtime.models.gesture import load_gesture_checkpoint
    from emostream.training.train_gesture import main

    takes = tmp_path / "takes"
    takes.mkdir()
    write_take(takes, "2_scott_0_1_1")
    out = tmp_path / "gesture.pt"
    main(["--beat2", str(takes), "--vae-steps", "2", "--flow-steps", "2", "--free-running-steps", "1",
          "--batch-size", "2", "--history-lags", "12,4,1", "--phrase-plan", "--out", str(out)])  # fmt: skip
    network, _, metadata = load_gesture_checkpoint(out)
    assert network.config.history_lags == (12, 4, 1) and network.config.history_frames == 3
    assert network.config.plan_codes == metadata["training"]["plan_codes"] == 0  # motion capture has no plans
    assert metadata["training"]["history_lags"] == [12, 4, 1]
