"""Projection and image-geometry helpers shared by the weightless generator and the geometric tracker.

Conventions are those of :mod:`tracklift.datasets.scene`: metres, OpenCV camera axes (x right, y down,
z forward), poses camera→world, depth 0 = invalid.
"""

from __future__ import annotations

import numpy as np

from tracklift.datasets.scene import Intrinsics
from tracklift.errors import DataError

__all__ = [
    "backproject",
    "check_rgbd",
    "default_intrinsics",
    "normals_from_points",
    "project",
    "rgb_to_lab",
    "shifted",
    "voxel_downsample",
]


def check_rgbd(
    color: np.ndarray, depth: np.ndarray, where: str = "rgbd input"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a colour/depth pair; raise :class:`DataError` naming ``where`` and the problem.

    Args:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) float metres, 0 = invalid.
        where: what to name in the error (a frame URL or a description).

    Returns:
        ``(color, depth)`` as (H, W, 3) uint8 and (H, W) float32 with non-finite / negative depth set to 0.
    """
    color = np.asarray(color)
    depth = np.asarray(depth)
    if color.ndim != 3 or color.shape[2] != 3:
        raise DataError(where, f"colour must be (H, W, 3), got shape {color.shape}")
    if color.dtype != np.uint8:
        raise DataError(where, f"colour must be uint8, got {color.dtype}")
    if depth.shape != color.shape[:2]:
        raise DataError(where, f"depth shape {depth.shape} does not match colour shape {color.shape[:2]}")
    depth = depth.astype(np.float32, copy=True)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return color, depth


def default_intrinsics(width: int, height: int, focal: float = 0.9) -> Intrinsics:
    """A centred pinhole camera with ``fx = fy = focal * width`` (0.9 ≈ a Kinect / ScanNet depth camera).

    Used when a caller does not know the camera: surface normals need only approximate intrinsics.
    """
    f = float(focal) * width
    return Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))


def backproject(depth: np.ndarray, intr: Intrinsics, pose: np.ndarray | None = None) -> np.ndarray:
    """Lift every pixel to 3D.

    Args:
        depth: (H, W) metres (0 = invalid; those pixels give the point (0, 0, 0) in camera frame).
        intr: intrinsics of this image size.
        pose: optional (4, 4) camera→world; without it points stay in the camera frame.

    Returns:
        (H, W, 3) float32 points in metres.
    """
    h, w = depth.shape
    u = (np.arange(w, dtype=np.float32) - intr.cx) / intr.fx
    v = (np.arange(h, dtype=np.float32) - intr.cy) / intr.fy
    z = depth.astype(np.float32)
    pts = np.stack([z * u[None, :], z * v[:, None], z], axis=-1)
    if pose is not None:
        R = np.asarray(pose[:3, :3], dtype=np.float32)
        t = np.asarray(pose[:3, 3], dtype=np.float32)
        pts = pts @ R.T + t
    return pts


def project(
    points: np.ndarray, intr: Intrinsics, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into a camera.

    Args:
        points: (N, 3) world points, metres.
        intr: intrinsics of the target image.
        pose: (4, 4) camera→world of the target frame.

    Returns:
        ``(col, row, z)``: (N,) int64 pixel column and row (rounded) and (N,) float32 depth in the camera
        (metres; ≤ 0 behind the camera). Pixels may lie outside the image: callers test the bounds.
    """
    pose = np.asarray(pose, dtype=np.float64)
    R = pose[:3, :3]
    t = pose[:3, 3]
    cam = (np.asarray(points, dtype=np.float64) - t) @ R  # world→camera is R^T (p - t)
    z = cam[:, 2]
    safe = np.where(z > 1e-6, z, 1.0)
    col = np.rint(cam[:, 0] / safe * intr.fx + intr.cx).astype(np.int64)
    row = np.rint(cam[:, 1] / safe * intr.fy + intr.cy).astype(np.int64)
    return col, row, z.astype(np.float32)


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


def rgb_to_lab(color: np.ndarray) -> np.ndarray:
    """sRGB (uint8, D65) to CIE L*a*b*.

    Args:
        color: (..., 3) uint8 RGB.

    Returns:
        (..., 3) float32 Lab (L in [0, 100]); Euclidean distances are ΔE76.
    """
    c = np.asarray(color, dtype=np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ],
        dtype=np.float32,
    )
    xyz = lin @ m.T
    xyz /= np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    eps = 216.0 / 24389.0
    f = np.where(xyz > eps, np.cbrt(xyz), (24389.0 / 27.0 * xyz + 16.0) / 116.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1).astype(np.float32)


def voxel_downsample(points: np.ndarray, voxel: float, *attrs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep one point per voxel (the first in input order), with its attributes.

    Args:
        points: (N, 3) metres.
        voxel: voxel edge, metres (≤ 0: no downsampling).
        attrs: arrays with N rows to subsample alongside.

    Returns:
        ``(points, *attrs)`` restricted to one row per occupied voxel.
    """
    if voxel <= 0 or len(points) == 0:
        return (points, *attrs)
    keys = np.floor(points / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    dims = keys.max(axis=0) + 1
    flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]  # one int64 per voxel: fast unique
    _, first = np.unique(flat, return_index=True)
    first.sort()
    return (points[first], *(a[first] for a in attrs))
