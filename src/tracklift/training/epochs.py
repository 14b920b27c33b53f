"""The epoch: its random streams, its optimisation steps, its history record. The step code of both
trainers (one process, :mod:`tracklift.training.trainer`; Ray Train workers,
:mod:`tracklift.training.distributed`).

Determinism: epoch ``e`` shuffles and subsamples with ``numpy.random.default_rng([seed, e])`` and reseeds
torch with ``seed * 100003 + e``, so a resumed run sees the same epochs as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tracklift.lifting import Sample
from tracklift.models import PointBatch
from tracklift.training.augment import augment
from tracklift.training.config import StageConfig, StageSettings
from tracklift.training.data import subsample

log = logging.getLogger(__name__)


def epoch_rng(seed: int, epoch: int, rank: int = 0) -> np.random.Generator:
    """The epoch's shuffling / subsampling stream; also reseeds torch (the model's own random subsets).

    Rank 0 gets the one-process trainer's streams, so a one-worker distributed run repeats it exactly.
    """
    torch.manual_seed(seed * 100003 + epoch + 7919 * rank)
    return np.random.default_rng([seed, epoch] if rank == 0 else [seed, epoch, rank])


def learning_rate(settings: StageSettings, step: int, total_steps: int) -> float:
    """The learning rate of optimisation step ``step`` (0-based) of a stage of ``total_steps`` steps, by
    ``settings.lr_schedule`` (see :class:`~tracklift.training.config.StageSettings`)."""
    lr = settings.lr
    if settings.lr_schedule == "constant" or total_steps <= 0:
        return lr
    if settings.lr_schedule == "onecycle":
        warm, start, end = settings.warmup or 0.3, lr / 25.0, lr / 25e4
    else:
        warm, start, end = settings.warmup, 0.0, lr * settings.final_lr_ratio
    warm_steps = warm * total_steps
    if step < warm_steps:
        return start + (lr - start) * (step + 1) / warm_steps
    t = min(1.0, (step - warm_steps) / max(total_steps - warm_steps, 1.0))
    return end + (lr - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def augmented(sample: Sample, stage_cfg: StageSettings, rng: np.random.Generator) -> Sample:
    """``sample`` with the stage's augmentations applied (itself when they are off); per-point superpoint
    ids, when the sample carries them, are cropped with the points."""
    if not stage_cfg.augment.enabled:
        return sample
    superpoints = getattr(sample, "superpoints", None)
    points, colors, labels, superpoints = augment(
        sample.points, sample.colors, sample.instance, rng, stage_cfg.augment, superpoints
    )
    changes = {"points": points, "colors": colors, "instance": labels}
    if superpoints is not None:
        changes["superpoints"] = superpoints
    return dataclasses.replace(sample, **changes)


def run_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[Sample],
    stage_cfg: StageConfig,
    epoch: int,
    log_every: int = 0,
    rank: int = 0,
    batch_size: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """One pass over ``samples`` shuffled by :func:`epoch_rng`, each subsampled, then augmented
    (``stage_cfg.augment``), at the learning rate of ``stage_cfg.lr_schedule`` (:func:`learning_rate`).

    Args:
        model: a :class:`Segmenter`, or one wrapped for data parallelism (its forward returns the loss dict).
        optimizer: its optimizer.
        samples: the samples this process trains on this epoch.
        stage_cfg: stage (seed, max_points, batch_size, stage number for the log).
        epoch: 0-based epoch number.
        log_every: log the running loss every this many steps (0 = never).
        rank: the process's rank among data-parallel workers (0 in one process).
        batch_size: samples per step in this process (default ``stage_cfg.batch_size``).
        on_step: called with the step number (from 1) after every optimisation step.

    Returns:
        ``(mean step loss, steps)``.
    """
    rng = epoch_rng(stage_cfg.seed, epoch, rank)
    order = rng.permutation(len(samples))
    size = batch_size or stage_cfg.batch_size
    per_epoch = math.ceil(len(order) / size)
    model.train()
    total, steps = 0.0, 0
    for start in range(0, len(order), size):
        chunk = [
            augmented(subsample(samples[i], stage_cfg.max_points, rng), stage_cfg, rng)
            for i in order[start : start + size]
        ]
        if stage_cfg.lr_schedule != "constant":
            lr = learning_rate(stage_cfg, epoch * per_epoch + steps, stage_cfg.epochs * per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
        losses = model(PointBatch.collate(chunk))
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        steps += 1
        if log_every and steps % log_every == 0:
            log.info("stage %d epoch %d step %d: loss %.4f", stage_cfg.stage, epoch + 1, steps, total / steps)
        if on_step is not None:
            on_step(steps)
    return total / max(steps, 1), steps


def epoch_record(
    epoch: int, loss: float, steps: int, samples: int, seconds: float, pseudo: int, **more: Any
) -> dict[str, Any]:
    """One ``history`` entry: 1-based ``epoch``, mean step ``loss``, optimisation ``steps``, training
    ``samples`` seen (all workers), wall ``seconds``, self-training ``pseudo_instances``, and ``more``."""
    return {
        "epoch": epoch + 1,
        "loss": loss,
        "steps": steps,
        "samples": samples,
        "seconds": seconds,
        "pseudo_instances": pseudo,
        **more,
    }
