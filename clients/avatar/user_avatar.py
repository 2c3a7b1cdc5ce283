"""A user's avatar (VRM 1.0, VRM 0.x or glTF 2.0) driven by emostream's frames: ARKit weights onto
same-named morph targets (Perfect Sync) or, where the avatar has only VRM expressions, onto those
(`arkit_to_vrm`); SMPL-X joint rotations onto the humanoid bones, corrected for each bone's rest
orientation; the face stream's head and eye angles on the head and eye bones. Posing runs on the CPU
(morphs, then linear blend skinning) and returns world-space vertices for any renderer.

Retargeting: the SMPL-X rest pose is a T-pose with identity rotations, so a joint's posed world rotation
G is also its change from rest. A humanoid bone with rest world rotation R0 is given the world rotation
G @ R0 (the same change, applied to its own rest orientation); its local rotation follows from its
parent's posed world rotation. VRM requires a T-pose rest, so directions agree; bone lengths and frames
may differ freely. Nodes that are not humanoid bones keep their rest local transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pygltflib as gl

from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, SMPLX_JOINTS, SMPLX_PARENTS
from emostream.runtime.rotations import quat_to_matrix

from ..viewer.camera import head_rotation, rotation_x, rotation_y
from .gltf_read import accessor_array, load, target_names, vrm_extension
from .vrm import SMPLX_TO_VRM, arkit_to_vrm

_CHANNEL = {name: i for i, name in enumerate(FACE_CHANNELS)}
_ARKIT_LOWER = {name.lower(): i for i, name in enumerate(ARKIT_BLENDSHAPES)}
# VRM 0.x preset names (blendShapeMaster) -> VRM 1.0 names
VRM0_PRESETS = {"a": "aa", "i": "ih", "u": "ou", "e": "ee", "o": "oh", "joy": "happy", "sorrow": "sad",
                "fun": "relaxed", "blink_l": "blinkLeft", "blink_r": "blinkRight", "lookup": "lookUp",
                "lookdown": "lookDown", "lookleft": "lookLeft", "lookright": "lookRight"}  # fmt: skip


@dataclass
class Primitive:
    node: int
    positions: np.ndarray  # (V, 3) in the mesh node's space (skinned meshes: the bind space)
    normals: np.ndarray
    triangles: np.ndarray  # (F, 3)
    colour: np.ndarray  # (V, 4) vertex colour times the material's base colour factor
    texcoords: np.ndarray | None
    image: int | None  # glTF image index of the base colour texture
    joints: np.ndarray | None  # (V, 4) slots in skin_nodes
    weights: np.ndarray | None  # (V, 4), summing to 1
    skin_nodes: np.ndarray | None  # (J,) the skin's joint nodes
    inverse_bind: np.ndarray | None  # (J, 4, 4)
    morph_positions: np.ndarray | None  # (M, V, 3)
    morph_normals: np.ndarray | None
    morph_names: list[str] = field(default_factory=list)


@dataclass
class UserAvatar:
    gltf: gl.GLTF2
    names: list[str]
    parents: np.ndarray  # (N,) -1 for roots
    rest_local: np.ndarray  # (N, 4, 4)
    humanoid: dict[str, int]  # VRM bone name -> node
    expressions: dict[str, list[tuple[int, int, float]]]  # preset -> (node, morph index, weight)
    primitives: list[Primitive]
    order: list[int]  # nodes, parents before children

    @property
    def perfect_sync(self) -> bool:
        """True when the avatar has ARKit-named morph targets (most of the 52): those are driven directly."""
        names = {n.lower() for p in self.primitives for n in p.morph_names}
        return len(names & set(_ARKIT_LOWER)) >= 26

    @cached_property
    def rest_world(self) -> np.ndarray:
        """Every node's world 4x4 in the rest pose (computed once: the rest never changes)."""
        return self._world(self.rest_local)

    def _world(self, local: np.ndarray) -> np.ndarray:
        world = np.empty_like(local)
        for n in self.order:
            p = self.parents[n]
            world[n] = local[n] if p < 0 else world[p] @ local[n]
        return world

    def pose_nodes(self, face: np.ndarray | None, body: np.ndarray | None) -> np.ndarray:
        """World 4x4 of every node for one face frame (FACE_CHANNELS) and one body frame (quaternions
        (x, y, z, w) per SMPL-X joint, then the root translation), either of which may be None."""
        rest_world = self.rest_world
        n_joints = len(SMPLX_JOINTS)
        if body is not None:
            local = quat_to_matrix(np.asarray(body[: n_joints * 4], np.float64).reshape(n_joints, 4))
            trans = np.asarray(body[n_joints * 4 : n_joints * 4 + 3], np.float64)
        else:
            local, trans = np.broadcast_to(np.eye(3), (n_joints, 3, 3)).copy(), np.zeros(3)
        change = np.empty_like(local)  # each SMPL-X joint's posed world rotation = its change from rest
        for j, p in enumerate(SMPLX_PARENTS):
            change[j] = local[j] if p < 0 else change[p] @ local[j]
        wanted: dict[int, np.ndarray] = {}  # node -> wanted world rotation
        for j, joint in enumerate(SMPLX_JOINTS):
            node = self.humanoid.get(SMPLX_TO_VRM[joint])
            if node is not None:
                wanted[node] = change[j]
        if face is not None:
            head = self.humanoid.get("head")
            if head is not None:
                yaw, pitch, roll = (float(face[_CHANNEL[k]]) for k in ("headYaw", "headPitch", "headRoll"))
                wanted[head] = wanted.get(head, change[SMPLX_JOINTS.index("head")]) @ head_rotation(yaw, pitch, roll)
                for side in ("left", "right"):
                    eye = self.humanoid.get(f"{side}Eye")
                    if eye is not None:
                        turn = rotation_y(float(face[_CHANNEL[f"{side}EyeYaw"]])) @ rotation_x(
                            float(face[_CHANNEL[f"{side}EyePitch"]])
                        )
                        wanted[eye] = wanted[head] @ turn
        world = np.empty_like(self.rest_local)
        for n in self.order:
            p = self.parents[n]
            parent = np.eye(4) if p < 0 else world[p]
            local_n = self.rest_local[n].copy()
            if n in wanted:
                rotation = wanted[n] @ rest_world[n][:3, :3]
                local_n[:3, :3] = np.linalg.inv(parent[:3, :3]) @ rotation
            world[n] = parent @ local_n
        hips = self.humanoid.get("hips")
        if hips is not None and np.any(trans):
            # the root's movement, scaled from SMPL-X's pelvis height to the avatar's hips height
            scale = rest_world[hips][1, 3] / 0.98 if rest_world[hips][1, 3] > 0 else 1.0
            shift = np.eye(4)
            shift[:3, 3] = trans * scale
            below = self._descendants(hips)
            world[below] = shift @ world[below]
        return world

    def _descendants(self, node: int) -> np.ndarray:
        inside = np.zeros(len(self.names), bool)
        inside[node] = True
        for n in self.order:
            if self.parents[n] >= 0 and inside[self.parents[n]]:
                inside[n] = True
        return np.flatnonzero(inside)

    def morph_weights(self, face: np.ndarray | None) -> list[np.ndarray]:
        """Per primitive, the weight of each of its morph targets for one face frame."""
        out = []
        face = np.zeros(len(FACE_CHANNELS)) if face is None else np.asarray(face, np.float64)
        presets = {} if self.perfect_sync else arkit_to_vrm(face)
        for p in self.primitives:
            w = np.zeros(len(p.morph_names))
            if self.perfect_sync:
                for k, name in enumerate(p.morph_names):
                    i = _ARKIT_LOWER.get(name.lower())
                    if i is not None:
                        w[k] = face[i]
            else:
                for preset, value in presets.items():
                    for node, index, weight in self.expressions.get(preset, []):
                        if node == p.node and index < len(w):
                            w[index] += value * weight
            out.append(np.clip(w, 0.0, 1.0))
        return out

    def pose(self, face: np.ndarray | None, body: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """World-space (positions, normals) of every primitive."""
        world = self.pose_nodes(face, body)
        result = []
        for p, weights in zip(self.primitives, self.morph_weights(face), strict=True):
            positions, normals = p.positions.astype(np.float64), p.normals.astype(np.float64)
            if p.morph_positions is not None and weights.any():
                active = np.flatnonzero(weights > 1e-4)
                positions = positions + np.tensordot(weights[active], p.morph_positions[active], axes=1)
                if p.morph_normals is not None:
                    normals = normals + np.tensordot(weights[active], p.morph_normals[active], axes=1)
            if p.joints is not None and p.weights is not None and p.skin_nodes is not None:
                skin = world[p.skin_nodes] @ p.inverse_bind  # (J, 4, 4)
                blended = np.einsum("vk,vkij->vij", p.weights, skin[p.joints])
                positions = np.einsum("vij,vj->vi", blended[:, :3, :3], positions) + blended[:, :3, 3]
                normals = np.einsum("vij,vj->vi", blended[:, :3, :3], normals)
            else:
                m = world[p.node]
                positions = positions @ m[:3, :3].T + m[:3, 3]
                normals = normals @ m[:3, :3].T
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
            result.append((positions.astype(np.float32), normals.astype(np.float32)))
        return result


def _local_matrix(node: gl.Node) -> np.ndarray:
    if node.matrix:
        return np.array(node.matrix, np.float64).reshape(4, 4).T
    m = np.eye(4)
    if node.rotation:
        x, y, z, w = node.rotation
        m[:3, :3] = quat_to_matrix(np.array([x, y, z, w], np.float64))
    if node.scale:
        m[:3, :3] = m[:3, :3] * np.array(node.scale)
    if node.translation:
        m[:3, 3] = node.translation
    return m


def _humanoid(gltf: gl.GLTF2) -> dict[str, int]:
    vrm1 = vrm_extension(gltf)
    if vrm1 is not None:
        return {bone: int(v["node"]) for bone, v in vrm1.get("humanoid", {}).get("humanBones", {}).items()}
    vrm0 = (gltf.extensions or {}).get("VRM")
    if vrm0 is not None:  # VRM 0.x: a list; its rest faces -Z, which a T-pose's rotation changes do not mind
        return {b["bone"]: int(b["node"]) for b in vrm0.get("humanoid", {}).get("humanBones", [])}
    by_name = {node.name: i for i, node in enumerate(gltf.nodes)}  # a glTF with SMPL-X joint names
    return {vrm: by_name[j] for j, vrm in SMPLX_TO_VRM.items() if j in by_name}


def _expressions(gltf: gl.GLTF2) -> dict[str, list[tuple[int, int, float]]]:
    vrm1 = vrm_extension(gltf)
    out: dict[str, list[tuple[int, int, float]]] = {}
    if vrm1 is not None:
        for group in ("preset", "custom"):
            for name, e in vrm1.get("expressions", {}).get(group, {}).items():
                out[name] = [
                    (int(b["node"]), int(b["index"]), float(b["weight"])) for b in e.get("morphTargetBinds", [])
                ]
        return out
    vrm0 = (gltf.extensions or {}).get("VRM")
    if vrm0 is not None:  # VRM 0.x binds name a mesh and weigh 0-100
        mesh_nodes: dict[int, int] = {}
        for i, node in enumerate(gltf.nodes):
            if node.mesh is not None:
                mesh_nodes.setdefault(node.mesh, i)
        for group in vrm0.get("blendShapeMaster", {}).get("blendShapeGroups", []):
            name = str(group.get("presetName") or group.get("name", "")).lower()
            name = VRM0_PRESETS.get(name, name)
            out[name] = [(mesh_nodes[b["mesh"]], int(b["index"]), float(b["weight"]) / 100.0)
                         for b in group.get("binds", []) if b["mesh"] in mesh_nodes]  # fmt: skip
    return out


def load_avatar(path: Path) -> UserAvatar:
    """Reads a .vrm or .glb/.gltf avatar; raises ValueError with the reason when it cannot be driven."""
    gltf = load(path)
    n = len(gltf.nodes)
    if n == 0 or not gltf.meshes:
        raise ValueError(f"{path}: no meshes to show")
    parents = np.full(n, -1)
    for i, node in enumerate(gltf.nodes):
        for c in node.children:
            parents[c] = i
    rest_local = np.stack([_local_matrix(node) for node in gltf.nodes])
    order, seen = [], set()

    def visit(i: int) -> None:
        if i not in seen:
            seen.add(i)
            order.append(i)
            for c in gltf.nodes[i].children:
                visit(c)

    for i in range(n):
        if parents[i] < 0:
            visit(i)
    primitives = []
    for i, node in enumerate(gltf.nodes):
        if node.mesh is None:
            continue
        mesh = gltf.meshes[node.mesh]
        names = target_names(mesh)
        skin = gltf.skins[node.skin] if node.skin is not None else None
        for prim in mesh.primitives:
            if prim.mode not in (None, gl.TRIANGLES):
                continue
            primitives.append(_primitive(gltf, i, prim, skin, names))
    if not primitives:
        raise ValueError(f"{path}: no triangle meshes to show")
    humanoid = _humanoid(gltf)
    return UserAvatar(gltf, [node.name or f"node{i}" for i, node in enumerate(gltf.nodes)], parents, rest_local,
                      humanoid, _expressions(gltf), primitives, order)  # fmt: skip


def _primitive(gltf: gl.GLTF2, node: int, prim: gl.Primitive, skin: gl.Skin | None, names: list[str]) -> Primitive:
    a = prim.attributes
    positions = accessor_array(gltf, a.POSITION).astype(np.float32)
    v = len(positions)
    normals = accessor_array(gltf, a.NORMAL).astype(np.float32) if a.NORMAL is not None else np.tile([0, 1, 0], (v, 1))
    if prim.indices is not None:
        triangles = accessor_array(gltf, prim.indices).reshape(-1, 3).astype(np.int64)
    else:
        triangles = np.arange(v - v % 3).reshape(-1, 3)
    colour = np.ones((v, 4), np.float32)
    if a.COLOR_0 is not None:
        c = _normalised(gltf, a.COLOR_0)
        colour[:, : c.shape[1]] = c
    image, factor = None, np.ones(4)
    if prim.material is not None:
        pbr = gltf.materials[prim.material].pbrMetallicRoughness
        if pbr is not None:
            factor = np.array(pbr.baseColorFactor or [1, 1, 1, 1])
            if pbr.baseColorTexture is not None:
                image = gltf.textures[pbr.baseColorTexture.index].source
    colour *= factor
    texcoords = _normalised(gltf, a.TEXCOORD_0) if a.TEXCOORD_0 is not None else None
    joints = weights = skin_nodes = inverse_bind = None
    if skin is not None and a.JOINTS_0 is not None and a.WEIGHTS_0 is not None:
        joints = accessor_array(gltf, a.JOINTS_0).astype(np.int64)
        weights = _normalised(gltf, a.WEIGHTS_0).astype(np.float64)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        skin_nodes = np.asarray(skin.joints, np.int64)
        if skin.inverseBindMatrices is not None:
            inverse_bind = accessor_array(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        else:
            inverse_bind = np.tile(np.eye(4), (len(skin_nodes), 1, 1))
    morph_positions = morph_normals = None
    if prim.targets:
        morph_positions = np.stack([accessor_array(gltf, t["POSITION"]) for t in prim.targets]).astype(np.float32)
        if all("NORMAL" in t for t in prim.targets):
            morph_normals = np.stack([accessor_array(gltf, t["NORMAL"]) for t in prim.targets]).astype(np.float32)
    return Primitive(node, positions, normals.astype(np.float32), triangles, colour, texcoords, image, joints,
                     weights, skin_nodes, inverse_bind, morph_positions, morph_normals,
                     names[: len(prim.targets or [])])  # fmt: skip


def _normalised(gltf: gl.GLTF2, index: int) -> np.ndarray:
    """An attribute as float: normalised integer components scaled to [0, 1] as glTF says."""
    data = accessor_array(gltf, index)
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    if data.dtype == np.uint16:
        return data.astype(np.float32) / 65535.0
    return data.astype(np.float32)
