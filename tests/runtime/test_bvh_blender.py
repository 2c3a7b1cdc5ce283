"""BVH export read by Blender's own importer. Runs only where Blender is importable as a module (`pip install
bpy==4.2.0` on Python 3.11, about 520 MB, so the default setup leaves it out); `test_bvh.py` checks the
same file with our reader everywhere."""

from pathlib import Path

import numpy as np
import pytest

from emostream.benchmarks.bvh_blender import check, passed
from emostream.runtime.bvh import write_bvh
from emostream.runtime.rotations import axis_angle_to_matrix

pytest.importorskip("bpy", reason="Blender's Python module (bpy) is not installed: pip install bpy==4.2.0")


def motion(tmp_path: Path, frames: int = 40) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    axis_angle = rng.normal(0, 0.4, (frames, 55, 3))
    trans = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0)
    animation = tmp_path / "motion.npz"
    np.savez(animation, body_axis_angle=axis_angle, body_trans=trans, body_fps=30)
    bvh = tmp_path / "motion.bvh"
    write_bvh(bvh, axis_angle_to_matrix(axis_angle), trans, fps=30)
    return bvh, animation


def test_blender_builds_the_smplx_skeleton_and_its_motion(tmp_path: Path) -> None:
    bvh, animation = motion(tmp_path)
    result = check(bvh, animation)
    assert passed(result), result
    assert result["frames_checked"] == 40 and result["max_joint_error_m"] < 1e-4


def test_a_wrong_rotation_order_is_caught(tmp_path: Path) -> None:
    bvh, animation = motion(tmp_path)
    text = bvh.read_text().replace("Zrotation Xrotation Yrotation", "Xrotation Yrotation Zrotation")
    bvh.write_text(text)
    result = check(bvh, animation)
    assert not passed(result) and result["max_joint_error_m"] > 0.05
