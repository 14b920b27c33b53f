"""Superpoints for the superpoint decoder: getting them for a cloud, indexing them over a batch, pooling.

A batch's superpoints are numbered batch-wide: scene b owns ids ``offsets[b]:offsets[b + 1]``, so one
``scatter_reduce`` pools every scene at once. Clouds that come without superpoints get them from the
project's point-cloud segmentator (:func:`tracklift.datasets.superpoints.segment_points`) run on voxel
centroids (:func:`cloud_superpoints`), which is what keeps it inside the inference budget: at 50k points
and 8 cm voxels it is tens of milliseconds, on every point it would be several hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tracklift.datasets.superpoints import SegmentatorConfig, contiguous_ids, segment_points
from tracklift.geometry.voxels import voxel_downsample_mean
from tracklift.models.config import SuperpointConfig


def cloud_superpoints(points, cfg: SuperpointConfig | None = None) -> np.ndarray:
    """Superpoints of a point cloud without faces: the kNN segmentator on voxel centroids.

    Args:
        points: (N, 3) metres (numpy or torch), N >= 1.
        cfg: voxel side of the centroids and the segmentator's settings (default: SuperpointConfig()).

    Returns:
        (N,) int64 superpoint id per point, 0..K-1 (every point of a centroid voxel shares its id).
    """
    cfg = cfg or SuperpointConfig()
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    centroids, inverse = voxel_downsample_mean(p, cfg.voxel_size, return_inverse=True)
    seg = SegmentatorConfig(k_thresh=cfg.k_thresh, seg_min_verts=cfg.min_verts, knn=cfg.knn)
    return segment_points(centroids, seg)[inverse]


def check_superpoints(ids, n: int, where: str = "superpoints") -> torch.Tensor:
    """(N,) int64 tensor of superpoint ids, checked.

    Raises:
        ValueError: wrong length, not integers, or a negative id (only a whole cloud of -1, meaning "none,
            compute them", is allowed).
    """
    t = ids if isinstance(ids, torch.Tensor) else torch.as_tensor(np.asarray(ids))
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{where} must be integer ids, got {t.dtype}")
    t = t.to(torch.int64).reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{where}: {t.numel()} superpoint ids for {n} points")
    if n and bool((t < 0).any()) and not bool((t == -1).all()):
        raise ValueError(f"{where}: negative superpoint ids (ids must be >= 0; all -1 means none)")
    return t


@dataclass
class BatchSuperpoints:
    """The superpoints of a batch, numbered batch-wide.

    Attributes:
        ids: (N,) int64 superpoint of each point; scene b's are in ``offsets[b]:offsets[b + 1]``.
        offsets: (B + 1,) int64 first superpoint of each scene, then S (the total).
        positions: (S, 3) float superpoint centroids normalised per scene to [0, 1]^3 by the scene's
            bounding box (the decoder's positional encoding input).
        input_stats: (S, 2C) ``[mean | std]`` of the point input features of every superpoint
            (:func:`input_stats`), when the model uses them (``ModelConfig.superpoint_stats``), else None.
    """

    ids: torch.Tensor
    offsets: torch.Tensor
    positions: torch.Tensor
    input_stats: torch.Tensor | None = None

    @property
    def num_superpoints(self) -> int:
        return int(self.offsets[-1])

    def counts(self) -> torch.Tensor:
        """(S,) int64 points per superpoint."""
        return torch.bincount(self.ids, minlength=self.num_superpoints)

    def scene_ids(self, b: int, rows: slice) -> torch.Tensor:
        """(N_b,) int64 scene-local superpoint of each point of scene b (rows ``rows`` of the batch)."""
        return self.ids[rows] - self.offsets[b]


def batch_superpoints(
    coord: torch.Tensor, slices: list[slice], given: torch.Tensor | None, cfg: SuperpointConfig
) -> BatchSuperpoints:
    """Number a batch's superpoints batch-wide, computing those of clouds that have none.

    Args:
        coord: (N, 3) float point coordinates, metres.
        slices: row range of each scene.
        given: optional (N,) int64 scene-local ids; a scene whose ids are all -1 (or ``given`` None) gets
            :func:`cloud_superpoints`.
        cfg: the segmentator for those.

    Returns:
        :class:`BatchSuperpoints` on ``coord``'s device (ids renumbered 0..K_b-1 within each scene).
    """
    parts, starts = [], [0]
    for rows in slices:
        local = None if given is None else given[rows]
        if local is None or (local.numel() and bool((local < 0).any())):
            ids = cloud_superpoints(coord[rows], cfg)
        else:
            ids = contiguous_ids(local.cpu().numpy())
        k = int(ids.max()) + 1 if len(ids) else 0
        parts.append(torch.as_tensor(ids, dtype=torch.int64) + starts[-1])
        starts.append(starts[-1] + k)
    ids = torch.cat(parts).to(coord.device)
    offsets = torch.tensor(starts, dtype=torch.int64, device=coord.device)
    s = starts[-1]
    # Centroids, then each scene's bounding box: positions in [0, 1]^3 per scene, as the point decoder's.
    cnt = torch.bincount(ids, minlength=s).clamp(min=1).to(coord.dtype)
    cent = coord.new_zeros(s, 3).index_add_(0, ids, coord) / cnt[:, None]
    pos = torch.empty_like(cent)
    for b, rows in enumerate(slices):
        lo, hi = coord[rows].amin(0), coord[rows].amax(0)
        sl = slice(starts[b], starts[b + 1])
        pos[sl] = (cent[sl] - lo) / (hi - lo).clamp(min=1e-6)
    return BatchSuperpoints(ids, offsets, pos)


def pool_superpoints(point_feats: torch.Tensor, sp: BatchSuperpoints) -> torch.Tensor:
    """Mean and max of the point features of every superpoint.

    Args:
        point_feats: (N, C) features per point (e.g. the finest backbone level gathered per point).
        sp: the batch's superpoints.

    Returns:
        (S, 2C): ``[mean | max]`` per superpoint (a superpoint always has at least one point).
    """
    s, c = sp.num_superpoints, point_feats.shape[1]
    index = sp.ids[:, None].expand(-1, c)
    mean = point_feats.new_zeros(s, c).scatter_reduce(
        0, index, point_feats, reduce="mean", include_self=False
    )
    peak = point_feats.new_zeros(s, c).scatter_reduce(
        0, index, point_feats, reduce="amax", include_self=False
    )
    return torch.cat([mean, peak], dim=1)


def input_stats(point_inputs: torch.Tensor, sp: BatchSuperpoints) -> torch.Tensor:
    """Mean and standard deviation of the point input features of every superpoint.

    Args:
        point_inputs: (N, C) the network's input features per point (colour, optionally xyz).
        sp: the batch's superpoints.

    Returns:
        (S, 2C): ``[mean | std]`` per superpoint (population std: 0 for a one-point superpoint).
    """
    s, c = sp.num_superpoints, point_inputs.shape[1]
    cnt = sp.counts().clamp(min=1).to(point_inputs.dtype)[:, None]
    mean = point_inputs.new_zeros(s, c).index_add_(0, sp.ids, point_inputs) / cnt
    sq = point_inputs.new_zeros(s, c).index_add_(0, sp.ids, point_inputs * point_inputs) / cnt
    return torch.cat([mean, (sq - mean * mean).clamp(min=0).sqrt()], dim=1)
