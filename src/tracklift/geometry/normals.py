"""Surface normals: of triangle meshes (per face, per vertex) and of organised point images (per pixel).

Conventions: metres, unit normals, (0, 0, 0) where a normal is undefined (degenerate triangle, isolated
vertex, pixel without depth).
"""

from __future__ import annotations

import numpy as np

from tracklift.geometry.compiled import jit, prange

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
    pts = np.ascontiguousarray(points, dtype=np.float32)
    return _normals_kernel(pts, np.ascontiguousarray(valid, dtype=np.bool_), r, float(continuity))


@jit(parallel=True)
def _normals_kernel(pts: np.ndarray, valid: np.ndarray, r: int, continuity: float) -> np.ndarray:
    """The loop of :func:`normals_from_points` (compiled: one pass per step instead of (2r+1)² shifted
    copies of the image; rows in parallel)."""
    h, w = valid.shape
    sm = np.zeros((h, w, 3), np.float64)
    sval = np.zeros((h, w), np.bool_)
    for y in prange(h):
        for x in range(w):
            if not valid[y, x]:
                continue
            z = pts[y, x, 2]
            sx = sy = sz = 0.0
            cnt = 0
            for dy in range(-r, r + 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in range(-r, r + 1):
                    xx = x + dx
                    if xx < 0 or xx >= w or not valid[yy, xx]:
                        continue
                    if abs(pts[yy, xx, 2] - z) <= continuity * max(abs(dy), abs(dx)) * z:
                        sx += pts[yy, xx, 0]
                        sy += pts[yy, xx, 1]
                        sz += pts[yy, xx, 2]
                        cnt += 1
            if cnt > 0:
                sm[y, x, 0], sm[y, x, 1], sm[y, x, 2] = sx / cnt, sy / cnt, sz / cnt
                sval[y, x] = True
    out = np.zeros((h, w, 3), np.float32)
    for y in prange(h):
        t = np.zeros((2, 3), np.float64)
        for x in range(w):
            if not sval[y, x]:
                continue
            z = sm[y, x, 2]
            lim = continuity * r * z
            ok = True
            for a in range(2):  # a = 0: along x (0, r); a = 1: along y (r, 0)
                dy, dx = (0, r) if a == 0 else (r, 0)
                yf, xf, yb, xb = y + dy, x + dx, y - dy, x - dx
                fok = 0 <= yf < h and 0 <= xf < w and sval[yf, xf]
                bok = 0 <= yb < h and 0 <= xb < w and sval[yb, xb]
                fz = sm[yf, xf, 2] - z if fok else 0.0
                bz = z - sm[yb, xb, 2] if bok else 0.0
                fok = fok and abs(fz) <= lim
                bok = bok and abs(bz) <= lim
                if not (fok or bok):
                    ok = False
                    break
                if fok and (not bok or abs(fz) <= abs(bz)):
                    for c in range(3):
                        t[a, c] = sm[yf, xf, c] - sm[y, x, c]
                else:
                    for c in range(3):
                        t[a, c] = sm[y, x, c] - sm[yb, xb, c]
            if not ok:
                continue
            nx = t[0, 1] * t[1, 2] - t[0, 2] * t[1, 1]
            ny = t[0, 2] * t[1, 0] - t[0, 0] * t[1, 2]
            nz = t[0, 0] * t[1, 1] - t[0, 1] * t[1, 0]
            nn = np.sqrt(nx * nx + ny * ny + nz * nz)
            if nn <= 1e-12:
                continue
            nx, ny, nz = nx / nn, ny / nn, nz / nn
            if nx * pts[y, x, 0] + ny * pts[y, x, 1] + nz * pts[y, x, 2] > 0:  # face the camera
                nx, ny, nz = -nx, -ny, -nz
            out[y, x, 0], out[y, x, 1], out[y, x, 2] = nx, ny, nz
    return out


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
