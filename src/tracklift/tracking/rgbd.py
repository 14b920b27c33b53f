"""Colour/depth input checks and colour conversion shared by the weightless generator and the geometric
tracker (camera geometry and normals are in :mod:`tracklift.geometry`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tracklift.errors import DataError
from tracklift.geometry.compiled import jit, prange

__all__ = ["check_rgbd", "rgb_to_lab", "texture_energy", "without_thin_lines"]


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
    color = np.asarray(color, dtype=np.uint8)
    flat = np.ascontiguousarray(color.reshape(-1, 3))
    return _lab_kernel(flat, _SRGB_TO_LINEAR).reshape(color.shape)


@jit(parallel=True)
def _lab_kernel(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The per-pixel loop of :func:`rgb_to_lab`: (N, 3) uint8 → (N, 3) float32 (one pass, no temporaries)."""
    out = np.empty(rgb.shape, np.float32)
    eps = 216.0 / 24389.0
    kappa = 24389.0 / 27.0
    for i in prange(rgb.shape[0]):
        r, g, b = lut[rgb[i, 0]], lut[rgb[i, 1]], lut[rgb[i, 2]]
        x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
        y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
        z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
        fx = np.cbrt(x) if x > eps else (kappa * x + 16.0) / 116.0
        fy = np.cbrt(y) if y > eps else (kappa * y + 16.0) / 116.0
        fz = np.cbrt(z) if z > eps else (kappa * z + 16.0) / 116.0
        out[i, 0] = 116.0 * fy - 16.0
        out[i, 1] = 500.0 * (fx - fy)
        out[i, 2] = 200.0 * (fy - fz)
    return out


def texture_energy(lab: np.ndarray, window: int = 5) -> np.ndarray:
    """How textured the image is around each pixel, blind to single colour boundaries.

    The colour gradient is averaged over four square windows diagonally beside the pixel (up-left,
    up-right, down-left, down-right, not touching its row or column, as in Kuwahara's filter) and the
    least of the four is kept: a colour boundary passing by or through the pixel (a poster's edge)
    leaves at least one of them clean, while tiles, wood grain or patterned fabric fill all four.

    Args:
        lab: (H, W, 3) float Lab image (or a grid of cell means).
        window: sets the window size: each is ``2 * max(1, window // 4) + 1`` pixels (or cells) wide,
            centred one pixel further than that half-width from the pixel.

    Returns:
        (H, W) float32 ΔE76 per pixel step (central differences): the least of the four window means.
    """
    lab = np.asarray(lab, dtype=np.float32)
    gx = np.zeros(lab.shape[:2], np.float32)
    gy = np.zeros(lab.shape[:2], np.float32)
    gx[:, 1:-1] = np.linalg.norm(lab[:, 2:] - lab[:, :-2], axis=-1) / 2
    gy[1:-1, :] = np.linalg.norm(lab[2:] - lab[:-2], axis=-1) / 2
    m = max(1, window // 4)  # each window is 2m+1 wide, centred m+1 away from the pixel in x and y
    mean = ndimage.uniform_filter(np.sqrt(gx**2 + gy**2), size=2 * m + 1, mode="nearest")
    h, w = mean.shape
    pad = np.pad(mean, m + 1, mode="edge")
    far = 2 * m + 2
    out = pad[:h, :w]
    for dy, dx in ((0, far), (far, 0), (far, far)):
        out = np.minimum(out, pad[dy : dy + h, dx : dx + w])
    return out


def without_thin_lines(lab: np.ndarray, size: int = 3) -> np.ndarray:
    """The image with dark and bright lines thinner than ``size`` removed; steps stay where they are.

    A grey-level closing (fills dark lines: tile grout, dark grain lines) then an opening (removes
    bright ones), per channel. Morphology moves no straight step edge (corners round off by up to
    ``size // 2``), so a boundary between two regions of different colour (a poster on a wall) stays
    closed and in place, while a line that differs from the colour on both of its sides disappears.

    Args:
        lab: (H, W, 3) float Lab image (or a grid of cell means).
        size: side of the square structuring element, pixels (or cells); lines up to ``size - 1`` wide
            go.

    Returns:
        (H, W, 3) float32.
    """
    lab = np.asarray(lab, dtype=np.float32)
    closed = ndimage.grey_closing(lab, size=(size, size, 1), mode="nearest")
    return ndimage.grey_opening(closed, size=(size, size, 1), mode="nearest")
