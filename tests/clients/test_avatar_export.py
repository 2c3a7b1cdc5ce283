"""`emostream export-avatar`: the built-in avatar as glTF 2.0 and VRM 1.0, checked by Khronos' glTF validator
(npm gltf-validator, installed by scripts/setup --tests) and read back through pygltflib: the 52 ARKit
morph targets move what their names say, the skin moves the arm it should, the VRM humanoid and
expressions are complete."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emostream.clients.avatar.gltf_export import export_avatar
from emostream.clients.avatar.gltf_read import accessor_array, load, target_names, vrm_extension
from emostream.clients.avatar.vrm import REQUIRED_BONES, SMPLX_TO_VRM, VRM_EXPRESSIONS
from emostream.runtime.rigs import ARKIT_BLENDSHAPES

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / ".tools" / "node_modules" / "gltf-validator"
VALIDATE = """
const validator = require(process.argv[1]);
const bytes = new Uint8Array(require("fs").readFileSync(process.argv[2]));
validator.validateBytes(bytes).then((report) => console.log(JSON.stringify(report.issues)));
"""
VRM_PRESETS = {"aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy", "angry", "sad", "relaxed",
               "surprised", "neutral"}  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("avatar")
    return {kind: export_avatar(folder / f"avatar.{kind}") for kind in ("glb", "vrm")}


def mesh_node(gltf, name: str):
    return next(n for n in gltf.nodes if n.name == name and n.mesh is not None)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or not VALIDATOR.exists(),
                    reason="node or npm's gltf-validator is missing (scripts/setup --tests installs both)")  # fmt: skip
@pytest.mark.parametrize("kind", ["glb", "vrm"])
def test_khronos_validator_finds_no_errors_or_warnings(exported: dict[str, Path], kind: str) -> None:
    done = subprocess.run(["node", "-e", VALIDATE, str(VALIDATOR), str(exported[kind])], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    issues = json.loads(done.stdout)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_the_head_carries_the_52_arkit_morph_targets_and_they_move_what_they_say(exported: dict[str, Path]) -> None:
    gltf = load(exported["glb"])
    head = gltf.meshes[mesh_node(gltf, "head").mesh]
    assert target_names(head) == list(ARKIT_BLENDSHAPES)
    primitive = head.primitives[0]
    rest = accessor_array(gltf, primitive.attributes.POSITION)

    def delta(shape: str) -> np.ndarray:
        return accessor_array(gltf, primitive.targets[ARKIT_BLENDSHAPES.index(shape)]["POSITION"])

    front = rest[:, 2] > np.percentile(rest[:, 2], 80)
    chin = front & (rest[:, 1] < np.percentile(rest[front, 1], 10))
    assert delta("jawOpen")[chin, 1].mean() < -0.01  # the chin drops by more than a centimetre
    blink = delta("eyeBlinkLeft")
    moved = np.abs(blink).max(axis=1) > 1e-4
    assert moved.any() and (rest[moved, 0] > 0).all()  # the left lid only (the character's left is +X)
    assert blink[moved, 1].min() < -0.005  # and it comes down
    for shape in ARKIT_BLENDSHAPES:  # every shape does something
        assert np.abs(delta(shape)).max() > 1e-4, shape


def world_matrices(gltf, rotations: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Each joint node's world 4x4 from its translation and an optional local rotation."""
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in n.children}
    world: dict[int, np.ndarray] = {}

    def resolve(i: int) -> np.ndarray:
        if i not in world:
            local = np.eye(4)
            local[:3, 3] = gltf.nodes[i].translation or [0, 0, 0]
            local[:3, :3] = rotations.get(gltf.nodes[i].name, np.eye(3))
            world[i] = (resolve(parent[i]) if i in parent else np.eye(4)) @ local
        return world[i]

    for i in gltf.skins[0].joints:
        resolve(i)
    return world


def test_the_skin_moves_the_forearm_its_elbow_bends_and_nothing_else(exported: dict[str, Path]) -> None:
    gltf = load(exported["glb"])
    skin = gltf.skins[0]
    body = gltf.meshes[mesh_node(gltf, "body").mesh].primitives[0]
    rest = accessor_array(gltf, body.attributes.POSITION).astype(np.float64)
    joints = accessor_array(gltf, body.attributes.JOINTS_0)[:, 0]
    inverse_bind = accessor_array(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    bend = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # 90 degrees about Y
    world = world_matrices(gltf, {"left_elbow": bend})
    skinning = np.stack([world[j] @ inverse_bind[k] for k, j in enumerate(skin.joints)])
    posed = np.einsum("vij,vj->vi", skinning[joints], np.c_[rest, np.ones(len(rest))])[:, :3]
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
    names = {k: gltf.nodes[j].name for k, j in enumerate(skin.joints)}
    moved_joints = {names[int(j)] for j in np.unique(joints[moved])}
    assert "left_wrist" in moved_joints and "left_elbow" in moved_joints  # the forearm's and the hand's
    assert not any(n.startswith(("right_", "spine", "pelvis")) or n == "left_shoulder" for n in moved_joints)
    hand = joints == next(k for k, n in names.items() if n == "left_wrist")
    assert np.linalg.norm(posed[hand].mean(0) - rest[hand].mean(0)) > 0.2  # the hand swung round


def test_the_vrm_names_every_humanoid_bone_and_preset_expression(exported: dict[str, Path]) -> None:
    gltf = load(exported["vrm"])
    vrm = vrm_extension(gltf)
    assert vrm is not None and vrm["specVersion"] == "1.0" and "VRMC_vrm" in gltf.extensionsUsed
    assert vrm["meta"]["name"] and vrm["meta"]["authors"] and vrm["meta"]["licenseUrl"]
    bones = vrm["humanoid"]["humanBones"]
    assert set(bones) >= REQUIRED_BONES and len(bones) == len(SMPLX_TO_VRM)
    for smplx, bone in SMPLX_TO_VRM.items():
        assert gltf.nodes[bones[bone]["node"]].name == smplx
    presets = vrm["expressions"]["preset"]
    assert set(presets) >= VRM_PRESETS
    face = mesh_node(gltf, "head")
    for name, expression in presets.items():
        binds = expression["morphTargetBinds"]
        assert len(binds) == len(VRM_EXPRESSIONS[name])
        for bind in binds:
            assert gltf.nodes[bind["node"]] is face and 0 <= bind["index"] < len(ARKIT_BLENDSHAPES)
            assert 0 < bind["weight"] <= 1
    assert {ARKIT_BLENDSHAPES[b["index"]] for b in presets["aa"]["morphTargetBinds"]} >= {"jawOpen"}


def test_an_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.glb .* or \.vrm"):
        export_avatar(tmp_path / "avatar.fbx")
