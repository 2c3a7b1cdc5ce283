"""Reading glTF/VRM data through pygltflib: accessors as numpy arrays (sparse ones included), morph target
names, and the VRM humanoid and expressions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib as gl

COMPONENTS = {
    gl.BYTE: np.int8,
    gl.UNSIGNED_BYTE: np.uint8,
    gl.SHORT: np.int16,
    gl.UNSIGNED_SHORT: np.uint16,
    gl.UNSIGNED_INT: np.uint32,
    gl.FLOAT: np.float32,
}
WIDTHS = {gl.SCALAR: 1, gl.VEC2: 2, gl.VEC3: 3, gl.VEC4: 4, gl.MAT2: 4, gl.MAT3: 9, gl.MAT4: 16}


def load(path: Path) -> gl.GLTF2:
    try:
        with open(path, "rb") as file:
            binary = file.read(4) == b"glTF"  # .vrm is binary glTF under another extension
        return gl.GLTF2().load_binary(str(path)) if binary else gl.GLTF2().load_json(str(path))
    except Exception as exc:  # pygltflib raises many kinds on a broken file
        raise ValueError(f"{path}: not a readable glTF or VRM file ({exc})") from None


def _view(gltf: gl.GLTF2, index: int, dtype: type, count: int, width: int, offset: int = 0) -> np.ndarray:
    view = gltf.bufferViews[index]
    blob = (
        gltf.binary_blob()
        if gltf.buffers[view.buffer].uri is None
        else gltf.get_data_from_buffer_uri(gltf.buffers[view.buffer].uri)
    )
    item = np.dtype(dtype).itemsize * width
    stride = view.byteStride or item
    start = (view.byteOffset or 0) + offset
    raw = np.frombuffer(blob, np.uint8, count=stride * (count - 1) + item if count else 0, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, (count, item), (stride, 1)) if count else raw.reshape(0, item)
    return rows.copy().view(dtype).reshape(count, width)


def accessor_array(gltf: gl.GLTF2, index: int) -> np.ndarray:
    """Accessor `index` as a (count, width) array (float32 for floats), with any sparse values applied."""
    accessor = gltf.accessors[index]
    dtype, width = COMPONENTS[accessor.componentType], WIDTHS[accessor.type]
    if accessor.bufferView is None:
        data = np.zeros((accessor.count, width), dtype)
    else:
        data = _view(gltf, accessor.bufferView, dtype, accessor.count, width, accessor.byteOffset or 0)
    if accessor.sparse is not None and accessor.sparse.count:
        sparse = accessor.sparse
        rows = _view(
            gltf,
            sparse.indices.bufferView,
            COMPONENTS[sparse.indices.componentType],
            sparse.count,
            1,
            sparse.indices.byteOffset or 0,
        )[:, 0]
        data[rows] = _view(gltf, sparse.values.bufferView, dtype, sparse.count, width, sparse.values.byteOffset or 0)
    return data


def target_names(mesh: gl.Mesh) -> list[str]:
    """Morph target names: `extras.targetNames` (Blender, three.js), else a primitive's (some exporters)."""
    for holder in (mesh, *mesh.primitives):
        names = (holder.extras or {}).get("targetNames")
        if names:
            return list(names)
    return []


def vrm_extension(gltf: gl.GLTF2) -> dict | None:
    """`VRMC_vrm` (VRM 1.0) if the file has it."""
    return (gltf.extensions or {}).get("VRMC_vrm")
