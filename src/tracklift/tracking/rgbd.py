"""Colour/depth input checks and colour conversion shared by the weightless generator and the geometric
tracker (camera geometry and normals are in :mod:`tracklift.geometry`).
"""

from __future__ import annotations

import numpy as np

from tracklift.errors import DataError

__all__ = ["check_rgbd", "rgb_to_lab"]


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


def _srgb_to_linear_table() -> np.ndarray:
    """(256,) float32 linear intensity of each 8-bit sRGB level (a lookup instead of a power per pixel)."""
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


_SRGB_TO_LINEAR = _srgb_to_linear_table()


def rgb_to_lab(color: np.ndarray) -> np.ndarray:
    """sRGB (uint8, D65) to CIE L*a*b*.

    Args:
        color: (..., 3) uint8 RGB.

    Returns:
        (..., 3) float32 Lab (L in [0, 100]); Euclidean distances are ΔE76.
    """
    lin = _SRGB_TO_LINEAR[np.asarray(color, dtype=np.uint8)]
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
