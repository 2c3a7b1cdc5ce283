"""The built-in avatar as glTF 2.0 binary (.glb) or VRM 1.0 (.vrm, the same container with `VRMC_vrm`),
written through pygltflib.

Layout: one node per SMPL-X joint (named as in runtime/rigs.py, T-pose rest translations, no rotations),
one skin over them, and three skinned meshes at the scene root: the body, the head (52 morph targets
named by ARKit, their names in `meshes[].extras.targetNames` as Blender and three.js read them) and the
eyes. Colours are per vertex (COLOR_0) on one matte material.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pygltflib as gl

from .builtin import Part, RiggedAvatar, build_rigged_avatar
from .vrm import vrm_extension

AVATAR_NAME = "emostream built-in"
SPARSE_BELOW = 1e-5  # morph deltas smaller than this (metres, or unit normal change) are stored as zero


class _Buffer:
    """One binary buffer of accessors, each view 4-byte aligned."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf = gltf
        self.data = bytearray()

    def view(self, array: np.ndarray, target: int | None = None) -> int:
        raw = np.ascontiguousarray(array).tobytes()
        self.data.extend(b"\0" * (-len(self.data) % 4))
        self.gltf.bufferViews.append(
            gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target)
        )
        self.data.extend(raw)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, accessor: gl.Accessor, array: np.ndarray, bounds: bool) -> int:
        if bounds:  # required for POSITION, morph POSITION deltas included
            flat = array.reshape(len(array), -1)
            accessor.min = flat.min(axis=0).astype(float).tolist()
            accessor.max = flat.max(axis=0).astype(float).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        accessor = gl.Accessor(
            bufferView=self.view(array, target), componentType=component, count=len(array), type=kind
        )
        return self.accessor(accessor, array, bounds)

    def add_sparse(self, array: np.ndarray, bounds: bool = False) -> int:
        """Float VEC3 data stored as its non-zero rows only (a morph target moves a few vertices)."""
        rows = np.flatnonzero(np.abs(array).max(axis=1) > SPARSE_BELOW).astype(np.uint32)
        array = np.where(np.isin(np.arange(len(array)), rows)[:, None], array, 0.0)
        # no bufferView: the base is zeros (and then no byteOffset either)
        accessor = gl.Accessor(componentType=gl.FLOAT, count=len(array), type=gl.VEC3, byteOffset=None)
        if rows.size:
            accessor.sparse = gl.Sparse(
                count=int(rows.size),
                indices=gl.AccessorSparseIndices(bufferView=self.view(rows), componentType=gl.UNSIGNED_INT),
                values=gl.AccessorSparseValues(bufferView=self.view(array[rows].astype(np.float32))),
            )
        return self.accessor(accessor, array, bounds)


def _primitive(buffer: _Buffer, part: Part, material: int) -> gl.Primitive:
    vertex = gl.ARRAY_BUFFER
    joints = np.where(part.weights > 0, part.joints, 0).astype(np.uint8)  # unused slots point at joint 0
    weights = part.weights.astype(np.float32)
    attributes = gl.Attributes(
        POSITION=buffer.add(part.positions, gl.VEC3, gl.FLOAT, vertex, bounds=True),
        NORMAL=buffer.add(part.normals.astype(np.float32), gl.VEC3, gl.FLOAT, vertex),
        # glTF vertex colours are linear; the viewer's palette is in display (sRGB) values
        COLOR_0=buffer.add((np.clip(part.colors, 0, 1) ** 2.2).astype(np.float32), gl.VEC3, gl.FLOAT, vertex),
        JOINTS_0=buffer.add(joints, gl.VEC4, gl.UNSIGNED_BYTE, vertex),
        WEIGHTS_0=buffer.add(weights, gl.VEC4, gl.FLOAT, vertex),
    )
    targets = []
    if part.morph_positions is not None and part.morph_normals is not None:
        for deltas, normal_deltas in zip(part.morph_positions, part.morph_normals, strict=True):
            targets.append(
                {"POSITION": buffer.add_sparse(deltas, bounds=True), "NORMAL": buffer.add_sparse(normal_deltas)}
            )
    indices = buffer.add(
        part.triangles.reshape(-1).astype(np.uint32), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER
    )
    return gl.Primitive(attributes=attributes, indices=indices, material=material, targets=targets or None)


def avatar_gltf(avatar: RiggedAvatar, vrm: bool = False) -> gl.GLTF2:
    """The avatar as an in-memory glTF document (binary blob set), with `VRMC_vrm` if `vrm`."""
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator="emostream export-avatar"))
    buffer = _Buffer(gltf)
    gltf.materials.append(
        gl.Material(
            name="vertex colour",
            pbrMetallicRoughness=gl.PbrMetallicRoughness(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.75
            ),
        )
    )

    for name, parent, offset in zip(avatar.joint_names, avatar.parents, avatar.offsets, strict=True):
        gltf.nodes.append(gl.Node(name=name, translation=[float(v) for v in offset]))
        if parent >= 0:
            gltf.nodes[parent].children.append(len(gltf.nodes) - 1)
    root = avatar.parents.index(-1)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (len(avatar.joint_names), 1, 1))
    inverse_bind[:, :3, 3] = -avatar.rest_positions  # the rest pose has no rotations
    matrices = np.ascontiguousarray(inverse_bind.transpose(0, 2, 1))  # glTF stores matrices column-major
    gltf.skins.append(
        gl.Skin(
            name="SMPL-X",
            skeleton=root,
            joints=list(range(len(avatar.joint_names))),
            inverseBindMatrices=buffer.add(matrices, gl.MAT4, gl.FLOAT),
        )
    )

    mesh_nodes = {}
    for part in avatar.parts:
        mesh = gl.Mesh(name=part.name, primitives=[_primitive(buffer, part, 0)])
        if part.morph_names:
            mesh.extras = {"targetNames": list(part.morph_names)}
            mesh.weights = [0.0] * len(part.morph_names)
        gltf.meshes.append(mesh)
        gltf.nodes.append(gl.Node(name=part.name, mesh=len(gltf.meshes) - 1, skin=0))
        mesh_nodes[part.name] = len(gltf.nodes) - 1
    gltf.scenes.append(gl.Scene(name=AVATAR_NAME, nodes=[root, *mesh_nodes.values()]))
    gltf.scene = 0
    if vrm:
        face = avatar.part("head")
        joints = {name: i for i, name in enumerate(avatar.joint_names)}
        gltf.extensionsUsed = ["VRMC_vrm"]
        gltf.extensions = {"VRMC_vrm": vrm_extension(joints, mesh_nodes["head"], face.morph_names, AVATAR_NAME)}
    gltf.buffers.append(gl.Buffer(byteLength=len(buffer.data)))
    gltf.set_binary_blob(bytes(buffer.data))
    return gltf


def export_avatar(path: Path, avatar: RiggedAvatar | None = None) -> Path:
    """Writes the built-in (or the given) avatar: VRM 1.0 for a .vrm path, glTF binary otherwise."""
    vrm = path.suffix.lower() == ".vrm"
    if path.suffix.lower() not in (".vrm", ".glb"):
        raise ValueError(f"{path}: the avatar is written as .glb (glTF binary) or .vrm (VRM 1.0)")
    gltf = avatar_gltf(avatar or build_rigged_avatar(), vrm=vrm)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")  # readers never see a half-written file
    gltf.save_binary(str(partial))
    os.replace(partial, path)
    return path
