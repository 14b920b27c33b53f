"""Self-training before stage 3 (``TrainConfig.self_train``), after Segment3D.

Before stage 3 the stage-2 model predicts on every stage-3 sample; predictions scoring at least
``self_train_threshold`` (0.6), at most ``max_pseudo`` (150) per scene, highest first, whose points are
mostly unlabelled (instance 0) become new instances on those unlabelled points. Points already carrying a
lifted pseudo-label keep it (``self_train_mode="fill"``). With ``self_train_mode="replace"`` (Segment3D's
self-training) the confident predictions become the stage-3 labels on their own: every scanned point gets
the highest-scoring confident prediction covering it, or 0.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from tracklift.lifting import Sample
from tracklift.models import Segmenter
from tracklift.training.config import TrainConfig
from tracklift.training.evaluate import predict_sample

log = logging.getLogger(__name__)


def add_pseudo_instances(
    model: Segmenter, samples: Sequence[Sample], threshold: float, max_pseudo: int, min_unlabelled: float
) -> tuple[list[Sample], int]:
    """Self-training labels: confident predictions of ``model`` on unlabelled points become new instances.

    Args:
        model: the stage-2 model.
        samples: stage-3 samples.
        threshold: minimum prediction score.
        max_pseudo: at most this many added instances per sample (highest scores first).
        min_unlabelled: a prediction is added when at least this fraction of its points has instance 0.

    Returns:
        ``(new samples, number of instances added in total)``; ids of added instances start above the
        sample's largest id, and only its unlabelled points (not claimed by a higher-scoring addition) get it.
    """
    out, added = [], 0
    for s in samples:
        pred = predict_sample(model, s)
        order = np.argsort(-pred.scores, kind="stable")
        ids = s.instance.copy()
        next_id = int(ids.max(initial=0)) + 1
        n_added = 0
        for k in order:
            if pred.scores[k] < threshold or n_added >= max_pseudo:
                break
            mask = pred.masks[k]
            size = int(mask.sum())
            free = mask & (ids == 0)
            if size == 0 or free.sum() < min_unlabelled * size:
                continue
            ids[free] = next_id
            next_id += 1
            n_added += 1
        added += n_added
        out.append(dataclasses.replace(s, instance=ids))
    return out, added


def replace_with_predictions(
    model: Segmenter, samples: Sequence[Sample], threshold: float, max_pseudo: int
) -> tuple[list[Sample], int]:
    """Segment3D's self-training labels: the confident predictions of ``model`` replace the labels.

    Args:
        model: the teacher (the previous stage's model).
        samples: stage-3 samples.
        threshold: minimum prediction score.
        max_pseudo: at most this many predictions per sample (highest scores first).

    Returns:
        ``(new samples, instances kept in total)``; ids 1..K in descending score, a point covered by several
        predictions takes the highest-scoring one; points outside the scan (-1) stay -1, the rest are 0.
    """
    out, kept = [], 0
    for s in samples:
        pred = predict_sample(model, s)
        order = np.argsort(-pred.scores, kind="stable")
        order = order[pred.scores[order] >= threshold][:max_pseudo]
        ids = np.where(s.instance < 0, -1, 0).astype(np.int64)
        next_id = 1
        for k in order:
            free = pred.masks[k] & (ids == 0)
            if free.any():
                ids[free] = next_id
                next_id += 1
        kept += next_id - 1
        out.append(dataclasses.replace(s, instance=ids))
    return out, kept


def load_teacher(
    cfg: TrainConfig, init_checkpoint: str | None, device: str | torch.device
) -> Segmenter | None:
    """The stage-2 model that labels stage 3, or None when self-training is off or there is no
    previous-stage checkpoint."""
    if not cfg.self_train or init_checkpoint is None:
        return None
    return Segmenter.from_checkpoint(init_checkpoint, device=device)


def relabel(cfg: TrainConfig, teacher: Segmenter, samples: Sequence[Sample]) -> tuple[list[Sample], int]:
    """:func:`add_pseudo_instances` (``self_train_mode="fill"``) or :func:`replace_with_predictions`
    (``"replace"``) with the thresholds of ``cfg``."""
    if cfg.self_train_mode == "replace":
        return replace_with_predictions(teacher, samples, cfg.self_train_threshold, cfg.max_pseudo)
    return add_pseudo_instances(
        teacher, samples, cfg.self_train_threshold, cfg.max_pseudo, cfg.self_train_unlabelled
    )


def self_train_samples(
    cfg: TrainConfig, samples: Sequence[Sample], init_checkpoint: str | None, device: str | torch.device
) -> tuple[list[Sample], int]:
    """Stage-3 samples with self-training labels from the stage-2 model (module doc), when enabled.

    Returns:
        ``(samples, instances added)``; the samples unchanged and 0 when self-training is off or there
        is no previous-stage checkpoint.
    """
    teacher = load_teacher(cfg, init_checkpoint, device)
    if teacher is None:
        return list(samples), 0
    out, pseudo = relabel(cfg, teacher, samples)
    log.info("stage 3: self-training added %d instances from %s", pseudo, init_checkpoint)
    return out, pseudo
