"""Surface normals: of triangle meshes (per face, per vertex) and of organised point images (per pixel).

Conventions: metres, unit normals, (0, 0, 0) where a normal is undefined (degenerate triangle, isolated
vertex, pixel without depth).
"""

from __future__ import annotations

import numpy as np

__all__ = ["face_normals", "normals_from_points", "shifted", "vertex_normals"]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) float64 unit normals of the triangles (right-hand winding); (0, 0, 0) for degenerate ones.

    Args:
        vertices: (N, 3) metres.
        faces: (F, 3) int vertex indices.
    """
    tri = np.asarray(vertices, dtype=np.float64)[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(cross, axis=1, keepdims=True)
    return np.where(norm > 0, cross / np.where(norm > 0, norm, 1.0), 0.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit area-weighted vertex normals (the sum of the adjacent faces' cross products,
    normalised), in ``vertices``' dtype; (0, 0, 0) for a vertex without faces.

    Args:
        vertices: (N, 3) metres.
        faces: (F, 3) int vertex indices.
    """
    cross = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], cross)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)


def normals_from_points(
    points: np.ndarray, valid: np.ndarray, radius: int = 2, continuity: float = 0.04
) -> np.ndarray:
    """Unit surface normals of an organised point image, facing the camera, that respect depth edges.

    Points are first smoothed over the ``(2r+1)²`` window, but only with neighbours on the same surface
    (relative depth difference at most ``continuity`` per pixel of offset): depth noise makes raw
    neighbour differences too noisy, and a plain box filter would bend the normals of every pixel near
    an occlusion boundary. The tangents are then one-sided differences ``radius`` pixels long, each
    taken towards the side whose depth is continuous.

    Args:
        points: (H, W, 3) camera-frame points, metres.
        valid: (H, W) bool pixels with depth.
        radius: half-width of the smoothing window and the difference baseline, pixels.
        continuity: relative depth step per pixel beyond which two pixels are on different surfaces.

    Returns:
        (H, W, 3) float32 unit normals; (0, 0, 0) where the normal is undefined.
    """
    r = max(1, int(radius))
    pts = np.asarray(points, dtype=np.float32)
    z = pts[..., 2]
    acc = np.zeros_like(pts)
    cnt = np.zeros(z.shape, np.float32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            zq = shifted(z, dy, dx, 0.0)
            same = valid & shifted(valid, dy, dx, False)
            same &= np.abs(zq - z) <= continuity * max(abs(dy), abs(dx)) * z
            acc += shifted(pts, dy, dx, 0.0) * same[..., None]
            cnt += same
    sm = acc / np.maximum(cnt, 1.0)[..., None]
    sz = sm[..., 2]
    sval = valid & (cnt > 0)

    def tangent(dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
        fwd, bwd = shifted(sm, dy, dx, 0.0) - sm, sm - shifted(sm, -dy, -dx, 0.0)
        fok = shifted(sval, dy, dx, False) & (np.abs(fwd[..., 2]) <= continuity * r * sz)
        bok = shifted(sval, -dy, -dx, False) & (np.abs(bwd[..., 2]) <= continuity * r * sz)
        use_f = fok & (~bok | (np.abs(fwd[..., 2]) <= np.abs(bwd[..., 2])))
        return np.where(use_f[..., None], fwd, bwd), sval & (fok | bok)

    tx, okx = tangent(0, r)
    ty, oky = tangent(r, 0)
    n = np.cross(tx, ty)
    nn = np.linalg.norm(n, axis=-1, keepdims=True)
    good = okx & oky & (nn[..., 0] > 1e-12)
    n = n / np.where(nn > 1e-12, nn, 1.0)
    # face the camera: the normal points against the viewing ray
    flip = np.einsum("hwc,hwc->hw", n, pts) > 0
    n[flip] *= -1.0
    n[~good] = 0.0
    return n.astype(np.float32)


def shifted(a: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """Args: a (H, W, ...) image; dy, dx offsets in pixels; fill value outside the image.
    Returns: ``out`` with ``out[y, x] = a[y + dy, x + dx]`` (``fill`` where that falls outside)."""
    out = np.full_like(a, fill)
    h, w = a.shape[:2]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out
