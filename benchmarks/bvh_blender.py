"""Open an `emostream export-bvh` file in Blender's own BVH importer and check the skeleton it builds.

Blender is not a dependency: run this with a Python 3.11 that has Blender as a module (`pip install
bpy==4.2.0`, about 520 MB). It needs numpy and this repository on the path, not torch:

    emostream animate speech.wav -o anim.npz --emotion angry
    emostream export-bvh anim.npz -o anim.bvh
    PYTHONPATH=. /path/to/bpy-python -m benchmarks.bvh_blender anim.bvh anim.npz

It imports the BVH with the importer's defaults (scale 1, Y up, -Z forward) and checks that Blender's
armature has the 55 SMPL-X bones with their parents, the file's frame rate and length, and that every
bone's head, read from Blender's evaluated pose at every frame, lands where our forward kinematics
of the npz puts that joint. The figures go to benchmarks/results/bvh_blender.{md,json,png}; the plot needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emostream.runtime.rigs import SMPLX_JOINTS, SMPLX_PARENTS, forward_kinematics, rest_offsets
from emostream.runtime.rotations import axis_angle_to_matrix

RESULTS = Path(__file__).parent / "results"
TOLERANCE_M = 1e-3  # BVH stores angles with 5 decimals of a degree; 1 mm is far above that rounding


def smplx_parent(joint: str) -> str | None:
    parent = SMPLX_PARENTS[SMPLX_JOINTS.index(joint)]
    return SMPLX_JOINTS[parent] if parent >= 0 else None


def expected_positions(animation: Path) -> tuple[np.ndarray, float]:
    """World joint positions (T, 55, 3) in metres, Y up, from the npz's body rotations and translation."""
    with np.load(animation) as data:
        rotations = axis_angle_to_matrix(data["body_axis_angle"].astype(np.float64))
        trans = data["body_trans"].astype(np.float64)
        fps = float(data["body_fps"]) if "body_fps" in data else 30.0
    positions, _ = forward_kinematics(rotations, trans, rest_offsets())
    return positions, fps


def blender_positions(bvh: Path, frames: list[int]) -> dict:
    """Import the BVH into an empty Blender scene; the armature, the scene's timing and the bone heads."""
    import bpy
    from bpy_extras.io_utils import axis_conversion

    bpy.ops.wm.read_factory_settings(use_empty=True)
    forward, up = "-Z", "Y"  # the importer's defaults, written out so the inverse below matches them
    bpy.ops.import_anim.bvh(
        filepath=str(bvh), axis_forward=forward, axis_up=up, update_scene_fps=True, update_scene_duration=True
    )
    scene = bpy.context.scene
    armature = next(o for o in scene.objects if o.type == "ARMATURE")
    # Blender is Z up; map its world coordinates back to the file's Y-up frame to compare.
    action = armature.animation_data.action
    to_file = axis_conversion(from_forward=forward, from_up=up).to_4x4().inverted()
    heads = np.empty((len(frames), len(armature.pose.bones), 3))
    names = [bone.name for bone in armature.pose.bones]
    for row, frame in enumerate(frames):
        scene.frame_set(int(action.frame_range[0]) + frame)
        for column, bone in enumerate(armature.pose.bones):
            heads[row, column] = tuple(to_file @ armature.matrix_world @ bone.head)
    return {
        "blender": bpy.app.version_string,
        "names": names,
        "parents": {b.name: (b.parent.name if b.parent else None) for b in armature.data.bones},
        "fps": scene.render.fps / scene.render.fps_base,
        # The importer lengthens the scene but never shortens it, so the action's own range is the file's.
        "frames": round(action.frame_range[1] - action.frame_range[0]) + 1,
        "heads": heads,
    }


def plot_skeletons(heads: np.ndarray, names: list[str], expected: np.ndarray, path: Path) -> None:
    """Front views of Blender's bones (solid) over our joints (dots) at three frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [0, len(heads) // 2, len(heads) - 1]
    index = {name: i for i, name in enumerate(names)}
    figure, axes = plt.subplots(1, 3, figsize=(10, 5), sharey=True)
    for ax, frame in zip(axes, frames, strict=True):
        for name in names:
            parent = smplx_parent(name)
            if parent is not None:
                a, b = heads[frame, index[parent]], heads[frame, index[name]]
                ax.plot([a[0], b[0]], [a[1], b[1]], color="tab:blue", lw=2)
        ax.scatter(expected[frame, :, 0], expected[frame, :, 1], s=6, color="tab:orange", zorder=3)
        ax.set_title(f"frame {frame}")
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
    axes[0].set_ylabel("height (m)")
    figure.suptitle("Blender's imported armature (lines) and emostream's joints (dots)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def check(bvh: Path, animation: Path, plot: Path | None = None) -> dict:
    """Every frame of the BVH, as Blender poses it, against the forward kinematics of the npz; `plot`
    draws three of them (needs matplotlib)."""
    expected, fps = expected_positions(animation)
    frames = list(range(len(expected)))
    got = blender_positions(bvh, frames)
    order = [SMPLX_JOINTS.index(name) for name in got["names"]]
    error = np.linalg.norm(got["heads"] - expected[frames][:, order], axis=-1)
    if plot is not None:
        plot_skeletons(got["heads"], got["names"], expected, plot)
    wrong_parents = [name for name, parent in got["parents"].items() if parent != smplx_parent(name)]
    return {
        "blender": got["blender"],
        "bvh": bvh.name,
        "bones": len(got["names"]),
        "bones_expected": len(SMPLX_JOINTS),
        "bones_with_wrong_parent": wrong_parents,
        "scene_fps": got["fps"],
        "animation_fps": fps,
        "action_frames": got["frames"],
        "animation_frames": len(expected),
        "frames_checked": len(frames),
        "max_joint_error_m": float(error.max()),
        "mean_joint_error_m": float(error.mean()),
        "worst_joint": got["names"][int(error.max(axis=0).argmax())],
    }


def passed(result: dict) -> bool:
    return (
        result["bones"] == result["bones_expected"]
        and not result["bones_with_wrong_parent"]
        and abs(result["scene_fps"] - result["animation_fps"]) < 1e-3
        and result["action_frames"] == result["animation_frames"]
        and result["max_joint_error_m"] < TOLERANCE_M
    )


def write_results(result: dict, name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("Blender", result["blender"], ""),
        ("bones", result["bones"], result["bones_expected"]),
        ("bones with the wrong parent", len(result["bones_with_wrong_parent"]), 0),
        ("scene frame rate", f"{result['scene_fps']:g}", f"{result['animation_fps']:g}"),
        ("frames in the imported action", result["action_frames"], result["animation_frames"]),
        ("largest joint error over all frames", f"{result['max_joint_error_m'] * 1000:.3f} mm",
         f"< {TOLERANCE_M * 1000:g} mm"),
        ("mean joint error", f"{result['mean_joint_error_m'] * 1000:.4f} mm", ""),
    ]
    table = "\n".join(f"| {what} | {got} | {want} |" for what, got, want in rows)
    verdict = "passed" if passed(result) else "FAILED"
    text = (
        f"`{result['bvh']}` imported with Blender's BVH importer (defaults: scale 1, Y up, -Z forward), "
        f"{result['frames_checked']} frames checked: {verdict}\n\n"
        f"| check | Blender | expected |\n|---|---|---|\n{table}\n"
    )
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bvh", type=Path, help="a BVH written by `emostream export-bvh`")
    parser.add_argument("animation", type=Path, help="the .npz it was exported from")
    parser.add_argument("--name", default="bvh_blender", help="result file name under benchmarks/results/")
    args = parser.parse_args()
    result = check(args.bvh, args.animation, plot=RESULTS / f"{args.name}.png")
    print(write_results(result, args.name).read_text())
    return 0 if passed(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
