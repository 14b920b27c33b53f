"""Mask losses on per-point targets, computed exactly at the resolution of the mask units.

Every point of a unit (a finest-level voxel for the point-level decoder, a superpoint for the superpoint
decoder) shares the unit's mask logit, so a sum over points of a per-point loss is a sum over units
weighted by how many (labelled) points of each target fall in each unit. Targets are therefore kept as a
(T, U) count matrix over the U units holding labelled points, and BCE / Dice over points become small
matrix products (for matching costs, all query × target pairs at once). For superpoints this is the "soft
share" target: ``counts[t, u] / totals[u]`` is the share of superpoint u's labelled points that belong to
instance t, and each superpoint weighs as many points as it holds (no majority vote throws away the
minority points of an impure superpoint).

Points with instance id 0 are unlabelled: they are left out of every mask term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SceneTargets:
    """One scene's instance targets, aggregated per voxel.

    Attributes:
        voxels: (U,) int64 scene-local finest-level voxel indices that hold labelled points.
        counts: (T, U) float number of labelled points of target t in voxel ``voxels[u]``.
        totals: (U,) float labelled points per voxel (``counts.sum(0)``).
        ids: (T,) int64 the instance ids of the targets (ascending).
    """

    voxels: torch.Tensor
    counts: torch.Tensor
    totals: torch.Tensor
    ids: torch.Tensor

    @property
    def num_targets(self) -> int:
        return int(self.ids.numel())

    @property
    def num_points(self) -> float:
        return float(self.totals.sum())


def scene_targets(
    point2voxel: torch.Tensor,
    instance: torch.Tensor,
    num_points: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> SceneTargets:
    """Aggregate one scene's per-point instance ids per voxel.

    Args:
        point2voxel: (N,) int64 scene-local voxel index of each point.
        instance: (N,) int64 instance id per point, 0 = unlabelled.
        num_points: use a random subset of at most this many labelled points (None = all).
        generator: random source for the subset.
        dtype: float dtype of the count matrices.

    Returns:
        :class:`SceneTargets` (T = 0 when no point is labelled).
    """
    labelled = torch.nonzero(instance != 0)[:, 0]
    if num_points is not None and labelled.numel() > num_points:
        pick = torch.randperm(labelled.numel(), generator=generator)[:num_points].to(labelled.device)
        labelled = labelled[pick]
    vox, tid = point2voxel[labelled], instance[labelled]
    voxels, vinv = torch.unique(vox, return_inverse=True)
    ids, tinv = torch.unique(tid, return_inverse=True)
    counts = torch.zeros(ids.numel(), voxels.numel(), dtype=dtype, device=instance.device)
    counts.index_put_((tinv, vinv), torch.ones_like(vinv, dtype=dtype), accumulate=True)
    return SceneTargets(voxels, counts, counts.sum(0), ids)


def per_unit(t: SceneTargets) -> SceneTargets:
    """``t`` with every mask unit weighing the same instead of as many points as it holds: each unit's
    counts become the shares of its labelled points per target (``counts / totals``, the soft share) and its
    total 1. The BCE is then a mean over units and Dice counts units (SPFormer's superpoint-level mask
    losses): the superpoints of a small object count as much as those of its large neighbour."""
    totals = t.totals.clamp(min=1.0)
    return SceneTargets(t.voxels, t.counts / totals[None], torch.ones_like(t.totals), t.ids)


def pairwise_mask_costs(logits: torch.Tensor, t: SceneTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and Dice of every prediction against every target, over the labelled points.

    Args:
        logits: (Q, U) mask logits at ``t.voxels``.
        t: the scene's targets.

    Returns:
        ``(bce, dice)``, each (Q, T): mean per-point sigmoid BCE, and ``1 - (2|p∩t| + 1) / (|p| + |t| + 1)``.
    """
    pos, neg = F.softplus(-logits), F.softplus(logits)  # -log sigmoid(l), -log(1 - sigmoid(l))
    n = max(t.num_points, 1.0)
    bce = (pos @ t.counts.T + neg @ (t.totals[None] - t.counts).T) / n
    p = logits.sigmoid()
    inter = p @ t.counts.T
    dice = 1.0 - (2.0 * inter + 1.0) / ((p @ t.totals)[:, None] + t.counts.sum(1)[None] + 1.0)
    return bce, dice


def matched_mask_losses(
    logits: torch.Tensor, counts: torch.Tensor, totals: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and Dice of matched pairs (row i of ``logits`` against row i of ``counts``).

    Args:
        logits: (M, U) mask logits.
        counts: (M, U) target point counts per voxel.
        totals: (U,) labelled points per voxel.

    Returns:
        ``(bce, dice)``, each (M,), the same quantities as :func:`pairwise_mask_costs`.
    """
    n = totals.sum().clamp(min=1.0)
    bce = (F.softplus(-logits) * counts + F.softplus(logits) * (totals[None] - counts)).sum(1) / n
    p = logits.sigmoid()
    dice = 1.0 - (2.0 * (p * counts).sum(1) + 1.0) / ((p * totals[None]).sum(1) + counts.sum(1) + 1.0)
    return bce, dice


def objectness_loss(logits: torch.Tensor, matched: torch.Tensor, no_object_weight: float) -> torch.Tensor:
    """Weighted BCE: matched queries are objects (weight 1), the others no-object (``no_object_weight``),
    normalised by the total weight like a weighted cross-entropy.

    Args:
        logits: (B, Q) objectness logits.
        matched: (B, Q) bool.
        no_object_weight: Mask3D's ``eos_coef``.
    """
    target = matched.to(logits.dtype)
    weight = torch.where(matched, torch.ones_like(target), torch.full_like(target, no_object_weight))
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    return loss / weight.sum()
