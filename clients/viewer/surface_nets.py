"""Naive surface nets (Gibson 1998): the zero level set of a sampled signed distance as a triangle mesh.

One vertex per grid cell that the surface crosses, at the mean of the points where the surface crosses
that cell's edges; one quad (two triangles) per grid edge with a sign change, joining the four cells
around it. Smoother than marching cubes on distance fields and needs no case tables; vectorised in numpy.
"""

from __future__ import annotations

import numpy as np

# For an edge along each axis, the offsets of the four cells that share it (the edge's own index is the
# cell with the largest coordinates on the two other axes), in an order that winds the quad around it.
_AROUND = {
    0: ((0, 0, 0), (0, -1, 0), (0, -1, -1), (0, 0, -1)),
    1: ((0, 0, 0), (0, 0, -1), (-1, 0, -1), (-1, 0, 0)),
    2: ((0, 0, 0), (-1, 0, 0), (-1, -1, 0), (0, -1, 0)),
}


def surface_nets(values: np.ndarray, origin: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """`values` (X, Y, Z) sampled at origin + spacing * index, negative inside. Returns the surface's
    vertices (V, 3) and triangles (F, 3), wound counter-clockwise seen from outside."""
    inside = values < 0
    shape = np.array(values.shape)
    cells = shape - 1
    total = np.zeros((*cells, 3))
    count = np.zeros(tuple(cells))
    # Every grid edge with a sign change adds its crossing point to the (up to) four cells around it.
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        a, b = values[tuple(lo)], values[tuple(hi)]
        crossing = (a < 0) != (b < 0)
        index = np.argwhere(crossing)
        t = a[crossing] / (a[crossing] - b[crossing])
        point = index.astype(np.float64)
        point[:, axis] += t
        for offset in _AROUND[axis]:
            cell = index + np.array(offset)
            ok = np.all((cell >= 0) & (cell < cells), axis=1)
            np.add.at(total, tuple(cell[ok].T), point[ok])
            np.add.at(count, tuple(cell[ok].T), 1.0)
    active = count > 0
    vertex_id = np.full(tuple(cells), -1, np.int64)
    vertex_id[active] = np.arange(int(active.sum()))
    vertices = origin + spacing * (total[active] / count[active][:, None])

    quads = []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        a_in, b_in = inside[tuple(lo)], inside[tuple(hi)]
        index = np.argwhere(a_in != b_in)
        # Edges on the grid's outer faces have fewer than four cells: skip them (keep the field open there).
        others = [k for k in range(3) if k != axis]
        ok = np.all(index[:, others] >= 1, axis=1) & np.all(index[:, others] < cells[others], axis=1)
        index = index[ok]
        flip = ~a_in[tuple(index.T)]  # the ring of _AROUND faces +axis; here the surface faces -axis
        corners = np.stack([vertex_id[tuple((index + np.array(o)).T)] for o in _AROUND[axis]], axis=1)
        corners[flip] = corners[flip][:, ::-1]
        quads.append(corners)
    quad = np.concatenate(quads)
    triangles = np.concatenate([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]])
    return vertices, triangles
