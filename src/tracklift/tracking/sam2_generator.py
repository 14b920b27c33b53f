"""Automatic (prompt-free) masks from SAM2: a grid of point prompts, filtered by quality and NMS."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from tracklift.tracking.base import Mask2D
from tracklift.tracking.sam2_loading import Sam2Config, autocast, feature_sizes, get_sam2_model, import_sam2

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class Sam2MaskGenerator:
    """:class:`~tracklift.tracking.base.MaskGenerator` on SAM2's automatic mask generator.

    Not thread-safe (SAM2's image predictor keeps the current image's features): use one per thread.

    Args:
        cfg: model and automatic-mask settings.
        model: a built SAM2 network to share (e.g. with a :class:`Sam2Tracker`); default: the
            process-wide model for ``cfg`` (:func:`get_sam2_model`).
    """

    def __init__(self, cfg: Sam2Config, model: torch.nn.Module | None = None):
        import_sam2()
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        self.cfg = cfg
        self.model = model if model is not None else get_sam2_model(cfg)
        self._amg = SAM2AutomaticMaskGenerator(
            self.model,
            points_per_side=cfg.points_per_side,
            points_per_batch=cfg.points_per_batch,
            pred_iou_thresh=cfg.pred_iou_thresh,
            stability_score_thresh=cfg.stability_score_thresh,
            stability_score_offset=cfg.stability_score_offset,
            box_nms_thresh=cfg.box_nms_thresh,
            crop_n_layers=cfg.crop_n_layers,
            use_m2m=cfg.use_m2m,
            # SAM2's small-region clean-up needs OpenCV and its compiled extension: done here with scipy
            min_mask_region_area=0,
            output_mode="binary_mask",
        )
        self._amg.predictor._bb_feat_sizes = feature_sizes(self.model.image_size)

    def generate(self, color: np.ndarray, depth: np.ndarray | None = None) -> list[Mask2D]:
        """Automatic masks on one frame.

        Args:
            color: (H, W, 3) uint8 RGB.
            depth: (H, W) float32 metres; not used by SAM2 (accepted for the interface).
        Returns:
            masks at the frame's resolution, possibly overlapping, highest predicted IoU first;
            ``score`` is SAM2's predicted IoU, ``stability`` its stability score.
        """
        color = np.asarray(color)
        if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
            raise ValueError(f"color must be (H, W, 3) uint8, got {color.shape} {color.dtype}")
        with autocast(self.cfg):
            records = self._amg.generate(np.ascontiguousarray(color))
        masks = [
            Mask2D(
                mask=np.asarray(r["segmentation"], dtype=bool),
                score=float(r["predicted_iou"]),
                stability=float(r["stability_score"]),
            )
            for r in records
        ]
        if self.cfg.min_mask_region_area > 0:
            masks = clean_masks(masks, self.cfg.min_mask_region_area, self.cfg.box_nms_thresh)
        masks.sort(key=lambda m: -m.score)
        return masks


def clean_masks(masks: list[Mask2D], min_area: int, nms_thresh: float) -> list[Mask2D]:
    """Remove islands and fill holes under ``min_area`` pixels (8-connected), then drop masks left
    empty and masks that became duplicates (box IoU above ``nms_thresh`` with a better-scoring mask).

    Args:
        masks: automatic masks of one frame.
        min_area: pixels.
        nms_thresh: box IoU in [0, 1].
    Returns:
        the cleaned masks, in their input order.
    """
    cleaned = []
    for m in masks:
        mask = _drop_small_components(m.mask, min_area)
        mask = ~_drop_small_components(~mask, min_area)  # holes are small components of the outside
        if mask.any():
            cleaned.append(Mask2D(mask, m.score, m.stability))
    if len(cleaned) < 2:
        return cleaned
    from torchvision.ops import nms

    boxes = torch.tensor([_box(m.mask) for m in cleaned], dtype=torch.float32)
    scores = torch.tensor([m.score for m in cleaned], dtype=torch.float32)
    keep = nms(boxes, scores, nms_thresh).tolist()
    return [cleaned[i] for i in sorted(keep)]


def _drop_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its 8-connected components smaller than ``min_area`` pixels."""
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n == 0:
        return mask
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    small = areas < min_area
    small[0] = False  # label 0 is everything outside the mask
    if not small.any():
        return mask
    return mask & ~small[labels]


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) box of a non-empty mask, pixel edges (a one-pixel mask has area 1)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)
