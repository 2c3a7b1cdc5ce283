"""Driving a user's avatar (clients/avatar/user_avatar.py): the exported built-in one, one with other
proportions and rotated bone frames made here (so retargeting is not tuned to one skeleton), and one with
only VRM expressions (so lip sync goes through the presets)."""

from pathlib import Path

import numpy as np
import pygltflib as gl
import pytest

from emostream.clients.avatar.builtin import build_rigged_avatar
from emostream.clients.avatar.gltf_export import avatar_gltf
from emostream.clients.avatar.user_avatar import load_avatar
from emostream.clients.avatar.vrm import SMPLX_TO_VRM, arkit_to_vrm
from emostream.runtime.rigs import (
    ARKIT_BLENDSHAPES,
    FACE_CHANNELS,
    SMPLX_JOINTS,
    SMPLX_PARENTS,
    forward_kinematics,
    rest_offsets,
)
from emostream.runtime.rotations import matrix_to_quat, quat_to_matrix

J = {n: i for i, n in enumerate(SMPLX_JOINTS)}


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def body_frame(rotations: dict[str, np.ndarray]) -> np.ndarray:
    local = np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)).copy()
    for name, r in rotations.items():
        local[J[name]] = r
    return np.concatenate([matrix_to_quat(local).reshape(-1), np.zeros(3)]).astype(np.float32)


def face_frame(**weights: float) -> np.ndarray:
    face = np.zeros(len(FACE_CHANNELS), np.float32)
    for name, w in weights.items():
        face[FACE_CHANNELS.index(name)] = w
    return face


def save(gltf: gl.GLTF2, path: Path) -> Path:
    gltf.save_binary(str(path))
    return path


def other_proportions(path: Path) -> Path:
    """The built-in avatar's file with arms 1.3x and legs 0.8x as long, and every joint's rest frame turned
    by its own random rotation (the T-pose geometry kept), as exporters from other tools write them."""
    gltf = avatar_gltf(build_rigged_avatar(), vrm=True)
    rng = np.random.default_rng(5)
    offsets = rest_offsets().copy()
    for j, name in enumerate(SMPLX_JOINTS):
        if any(k in name for k in ("shoulder", "elbow", "wrist")):
            offsets[j] *= 1.3
        if any(k in name for k in ("knee", "ankle", "foot")):
            offsets[j] *= 0.8
    positions = forward_kinematics(np.broadcast_to(np.eye(3), (len(SMPLX_JOINTS), 3, 3)), np.zeros(3), offsets)[0]
    frames = [rotation(rng.normal(size=3), rng.uniform(0.3, 2.5)) for _ in SMPLX_JOINTS]
    for j, parent in enumerate(SMPLX_PARENTS):
        node = gltf.nodes[j]  # the export's first nodes are the joints, in SMPL-X order
        parent_frame = np.eye(3) if parent < 0 else frames[parent]
        parent_position = np.zeros(3) if parent < 0 else positions[parent]
        node.translation = (parent_frame.T @ (positions[j] - parent_position)).tolist()
        node.rotation = matrix_to_quat(parent_frame.T @ frames[j]).tolist()
    # inverse bind matrices for the new rest: the inverse of each joint's world matrix
    binds = np.stack([np.linalg.inv(np.block([[frames[j], positions[j][:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]))
                      for j in range(len(SMPLX_JOINTS))]).astype(np.float32)  # fmt: skip
    accessor = gltf.accessors[gltf.skins[0].inverseBindMatrices]
    view = gltf.bufferViews[accessor.bufferView]
    blob = bytearray(gltf.binary_blob())
    blob[view.byteOffset : view.byteOffset + view.byteLength] = binds.transpose(0, 2, 1).tobytes()
    gltf.set_binary_blob(bytes(blob))
    return save(gltf, path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("avatars")
    builtin = save(avatar_gltf(build_rigged_avatar(), vrm=True), folder / "builtin.vrm")
    presets_only = avatar_gltf(build_rigged_avatar(), vrm=True)
    head = next(m for m in presets_only.meshes if m.name == "head")
    head.extras = {"targetNames": [f"shape{k}" for k in range(len(ARKIT_BLENDSHAPES))]}
    return {"builtin": builtin, "other": other_proportions(folder / "other.vrm"),
            "presets": save(presets_only, folder / "presets.vrm")}  # fmt: skip


def bone_direction(world: np.ndarray, avatar, child: str, parent: str) -> np.ndarray:
    a = world[avatar.humanoid[SMPLX_TO_VRM[parent]]][:3, 3]
    b = world[avatar.humanoid[SMPLX_TO_VRM[child]]][:3, 3]
    return (b - a) / np.linalg.norm(b - a)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["builtin", "other"])
def test_retargeting_points_every_limb_where_the_smplx_pose_points_it(files: dict[str, Path], kind: str) -> None:
    avatar = load_avatar(files[kind])
    rng = np.random.default_rng(0)
    joints = ("spine1", "left_shoulder", "left_elbow", "right_shoulder", "right_elbow", "left_hip", "right_knee")
    pose = {name: rotation(rng.normal(size=3), rng.uniform(0.2, 1.2)) for name in joints}
    frame = body_frame(pose)
    world = avatar.pose_nodes(None, frame)
    local = quat_to_matrix(frame[: len(SMPLX_JOINTS) * 4].reshape(-1, 4).astype(np.float64))
    reference = forward_kinematics(local, np.zeros(3), rest_offsets())[0]
    for child, parent in (("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
                          ("left_knee", "left_hip"), ("right_ankle", "right_knee"), ("head", "neck")):  # fmt: skip
        want = reference[J[child]] - reference[J[parent]]
        got = bone_direction(world, avatar, child, parent)
        assert np.dot(got, want / np.linalg.norm(want)) > 0.999, (kind, child)


def test_the_rest_pose_leaves_the_mesh_where_the_file_put_it(files: dict[str, Path]) -> None:
    avatar = load_avatar(files["other"])
    built = build_rigged_avatar()
    for (positions, _), part in zip(avatar.pose(None, None), built.parts, strict=True):
        assert np.abs(positions - part.positions).max() < 1e-4


def lowest_front_y(positions: np.ndarray) -> float:
    front = positions[:, 2] > np.percentile(positions[:, 2], 80)
    return float(np.min(positions[front, 1]))  # the chin


@pytest.mark.parametrize("kind", ["builtin", "presets"])
def test_the_mouth_opens_with_jaw_open_through_arkit_morphs_or_vrm_presets(files: dict[str, Path], kind: str) -> None:
    avatar = load_avatar(files[kind])
    assert avatar.perfect_sync == (kind == "builtin")
    head = [p.node for p in avatar.primitives].index(next(p.node for p in avatar.primitives if p.morph_names))
    closed = avatar.pose(face_frame(), None)[head][0]
    opened = avatar.pose(face_frame(jawOpen=0.8), None)[head][0]
    assert lowest_front_y(opened) < lowest_front_y(closed) - 0.005  # the chin drops by more than 5 mm
    blink = avatar.pose(face_frame(eyeBlinkLeft=1.0), None)[head][0]
    moved = np.linalg.norm(blink - closed, axis=1) > 1e-4
    assert moved.any() and (blink[moved, 0] > 0).all()  # only the left lid


def test_arkit_frames_map_onto_the_presets_they_look_like() -> None:
    rounded = arkit_to_vrm(face_frame(mouthPucker=0.85, mouthFunnel=0.35, jawOpen=0.15))
    assert max(rounded, key=rounded.get) == "ou" and rounded["ou"] > 0.8
    smile = arkit_to_vrm(face_frame(mouthSmileLeft=0.8, mouthSmileRight=0.8, cheekSquintLeft=0.5,
                                    cheekSquintRight=0.5))  # fmt: skip
    assert max(smile, key=smile.get) == "happy"
    shut = arkit_to_vrm(face_frame(mouthClose=0.3))
    assert max(shut[p] for p in ("aa", "ih", "ou", "ee", "oh")) < 0.05  # closed lips open nothing
    assert arkit_to_vrm(face_frame(eyeBlinkRight=0.9))["blinkRight"] == pytest.approx(0.9)


def test_a_file_with_no_mesh_is_refused_with_its_reason(tmp_path: Path) -> None:
    empty = gl.GLTF2(asset=gl.Asset(version="2.0"), nodes=[gl.Node(name="root")], scenes=[gl.Scene(nodes=[0])])
    path = tmp_path / "empty.glb"
    empty.save_binary(str(path))
    with pytest.raises(ValueError, match="no meshes"):
        load_avatar(path)
    (tmp_path / "junk.vrm").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable"):
        load_avatar(tmp_path / "junk.vrm")


@pytest.fixture(scope="module")
def renders(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Headless renders (EGL) of the built-in VRM's face, mouth closed and open, and of the other-proportioned
    avatar's body, arms down and the left arm raised forward."""
    from emostream.clients.viewer.video import FrameRenderer

    arm_down = {f"{s}_shoulder": rotation(np.array([0.0, 0.0, 1.0]), -k * 1.3) for s, k in (("left", 1), ("right", -1))}
    arm_up = arm_down | {"left_shoulder": rotation(np.array([1.0, 0.0, 0.0]), -1.4) @ arm_down["left_shoulder"]}
    face = FrameRenderer(256, 256, "face", avatar=files["builtin"])
    body = FrameRenderer(256, 256, "body", avatar=files["other"])
    try:
        return {"closed": face.render(face_frame(), None), "open": face.render(face_frame(jawOpen=0.8), None),
                "down": body.render(None, body_frame(arm_down)), "up": body.render(None, body_frame(arm_up))}
    finally:
        face.release()
        body.release()


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 60


def test_the_rendered_mouth_opens_and_nothing_above_it_moves(renders: dict[str, np.ndarray]) -> None:
    diff = changed(renders["closed"], renders["open"])
    rows, cols = np.nonzero(diff)
    assert diff.sum() > 300  # a visible opening, not a few pixels
    assert rows.min() > 256 * 0.45 and abs(cols.mean() - 128) < 20  # below the eyes, centred


def test_the_rendered_arm_rises_on_the_characters_left(renders: dict[str, np.ndarray]) -> None:
    diff = changed(renders["down"], renders["up"])
    assert diff.sum() > 200
    _, cols = np.nonzero(diff)
    # the body view looks from the front, a little from the character's left: its left is the image's right
    assert cols.mean() > 128
