"""From query predictions to instances: scoring, thresholds, duplicate removal, voxels → points.

Score of a query = objectness probability × mask quality, where mask quality is the mean mask
probability over the points of its binary mask (Mask3D's score: class probability times the mean
heatmap inside the mask). Duplicates are removed greedily: in descending score order, a mask whose
IoU with an already kept mask exceeds ``nms_iou`` is dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from tracklift.models.config import InferenceConfig
from tracklift.structures import Instances


def greedy_mask_nms(
    masks: torch.Tensor, weights: torch.Tensor, scores: torch.Tensor, iou: float
) -> torch.Tensor:
    """Indices (descending score) of the masks kept by greedy NMS.

    Args:
        masks: (K, V) bool voxel masks.
        weights: (V,) points per voxel (IoU is over points).
        scores: (K,) scores.
        iou: masks overlapping a kept one with IoU strictly above this are dropped.

    Returns:
        (K',) int64 indices into ``masks``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if iou >= 1.0 or order.numel() <= 1:
        return order
    m = masks[order].to(weights.dtype)
    inter = (m * weights) @ m.T
    size = inter.diagonal()
    ious = inter / (size[:, None] + size[None] - inter).clamp(min=1e-9)
    keep = torch.ones(order.numel(), dtype=torch.bool, device=masks.device)
    ious_cpu = ious.cpu()
    for i in range(order.numel()):
        if keep[i]:
            later = ious_cpu[i, i + 1 :] > iou
            keep[i + 1 :] &= ~later.to(keep.device)
    return order[keep]


def scene_instances(
    mask_logits: torch.Tensor,
    obj_logits: torch.Tensor,
    point2voxel: torch.Tensor,
    cfg: InferenceConfig,
) -> Instances:
    """Instances of one scene from its final predictions.

    Args:
        mask_logits: (Q, V) mask logits over the scene's voxels.
        obj_logits: (Q,) objectness logits.
        point2voxel: (N,) int64 scene-local voxel of each point.
        cfg: thresholds.

    Returns:
        :class:`~tracklift.structures.Instances` over the N points, sorted by descending score.
    """
    n_points = int(point2voxel.numel())
    probs = mask_logits.float().sigmoid()
    counts = torch.bincount(point2voxel, minlength=probs.shape[1]).to(probs.dtype)
    binary = probs > cfg.mask_threshold
    size = binary.to(probs.dtype) @ counts
    quality = ((probs * binary) @ counts) / size.clamp(min=1.0)
    scores = obj_logits.float().sigmoid() * quality
    ok = (size >= max(cfg.min_points, 1)) & (scores >= cfg.score_threshold)
    cand = torch.nonzero(ok)[:, 0]
    if cand.numel() == 0:
        return Instances.empty(n_points)
    kept = cand[greedy_mask_nms(binary[cand], counts, scores[cand], cfg.nms_iou)][: cfg.max_instances]
    masks = binary[kept][:, point2voxel]
    return Instances(masks.cpu().numpy().astype(bool), scores[kept].cpu().numpy().astype(np.float64))
