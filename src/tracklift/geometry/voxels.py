"""Voxel grids over point clouds: cell coordinates, keys, and downsampling with named semantics.

A voxel of side ``s`` metres is the half-open cube ``[s i, s (i + 1)) × [s j, s (j + 1)) × [s k, s (k + 1))``;
a point's cell is ``floor(p / s)`` computed in the points' own float dtype (float32 points are divided in
float32, as every caller did before these helpers existed, so cells do not move).

Two downsampling rules, named for what they keep:
  - :func:`voxel_downsample_first`: the first point of each voxel in input order, with its attributes
    (objects grown point by point keep the points they were seeded with);
  - :func:`voxel_downsample_mean`: the mean of the points (and of any attribute) of each voxel, voxels in
    ascending ``(i, j, k)`` order (the training samples' one point per cube).

The network's own voxelization runs on torch tensors on the model's device (``models/sparse.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "KEY_AXIS_BITS",
    "voxel_cells",
    "voxel_downsample_first",
    "voxel_downsample_mean",
    "voxel_index",
    "voxel_keys",
]

KEY_AXIS_BITS = 21  # bits per axis of :func:`voxel_keys`: ±2^20 cells (±10 km at 1 cm)


def voxel_cells(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """(N, 3) int64 cell ``floor(p / voxel_size)`` of each of the (N, 3) points (metres)."""
    return np.floor(np.asarray(points) / voxel_size).astype(np.int64)


def voxel_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """(N,) int64 key per point, equal for points in the same voxel, comparable across calls.

    Cells are computed in float64 and packed ``KEY_AXIS_BITS`` bits per axis around the origin; cells
    beyond ±2^20 along an axis are clamped onto the last one (distinct far voxels may then share a key).
    Sorting keys sorts cells by ``(i, j, k)``.
    """
    bias = 1 << (KEY_AXIS_BITS - 1)
    q = voxel_cells(np.asarray(points, dtype=np.float64), voxel_size) + bias
    q = np.clip(q, 0, (1 << KEY_AXIS_BITS) - 1)
    return (q[:, 0] << (2 * KEY_AXIS_BITS)) | (q[:, 1] << KEY_AXIS_BITS) | q[:, 2]


def _dense_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """(N,) int64 keys valid within this one point set (cells relative to its minimum, flattened over its
    bounding box): no range limit, ascending in ``(i, j, k)``; a fast input to ``np.unique``."""
    cell = voxel_cells(points, voxel_size)
    cell -= cell.min(axis=0)
    span = cell.max(axis=0) + 1
    return (cell[:, 0] * span[1] + cell[:, 1]) * span[2] + cell[:, 2]


def voxel_index(points: np.ndarray, voxel_size: float) -> tuple[np.ndarray, int]:
    """Voxel of each point, voxels numbered in ascending ``(i, j, k)`` order.

    Args:
        points: (N, 3) metres, N > 0.
        voxel_size: cube side, metres, > 0.

    Returns:
        ``(inverse, m)``: (N,) int64 voxel number of each point, and the number m of occupied voxels.
    """
    _, inverse = np.unique(_dense_keys(points, voxel_size), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64, copy=False)
    return inverse, int(inverse.max()) + 1


def voxel_downsample_first(
    points: np.ndarray, voxel_size: float, *attrs: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Keep one point per voxel, the first in input order, with its attributes.

    Args:
        points: (N, 3) metres.
        voxel_size: voxel edge, metres (≤ 0: no downsampling).
        attrs: arrays with N rows to subsample alongside.

    Returns:
        ``(points, *attrs)`` restricted to one row per occupied voxel, in input order.
    """
    if voxel_size <= 0 or len(points) == 0:
        return (points, *attrs)
    _, first = np.unique(_dense_keys(points, voxel_size), return_index=True)
    first.sort()
    return (points[first], *(a[first] for a in attrs))


def voxel_downsample_mean(
    points: np.ndarray, voxel_size: float, *attrs: np.ndarray, return_inverse: bool = False
) -> tuple[np.ndarray, ...]:
    """One point per occupied voxel: the mean position and the mean of each attribute.

    Args:
        points: (N, 3) metres, N > 0.
        voxel_size: cube side, metres, > 0.
        attrs: (N,) or (N, C) numeric arrays averaged per voxel alongside.
        return_inverse: also return the (N,) int64 voxel of each point (e.g. to vote per voxel).

    Returns:
        ``(points (M, 3), *attrs (M, C))`` float64 means, voxels in ascending ``(i, j, k)`` order, then
        the inverse if asked for.
    """
    inverse, m = voxel_index(points, voxel_size)
    count = np.bincount(inverse, minlength=m).astype(np.float64)

    def mean(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        cols = a.reshape(len(a), -1)
        out = np.stack(
            [np.bincount(inverse, weights=cols[:, i], minlength=m) for i in range(cols.shape[1])], 1
        )
        out = out / count[:, None]
        return out.reshape((m, *a.shape[1:]))

    out = (mean(points), *(mean(a) for a in attrs))
    return (*out, inverse) if return_inverse else out
