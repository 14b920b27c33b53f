"""Using a trained model on samples: predictions over a sample's points, AP of a checkpoint against GT,
and the mean training loss of a model (to compare checkpoints on the same data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tracklift.errors import DataError
from tracklift.evaluation import APAccumulator
from tracklift.lifting import Sample, scanned_part
from tracklift.models import PointBatch, Segmenter
from tracklift.structures import Instances
from tracklift.training.data import load_stage_samples, subsample
from tracklift.training.epochs import epoch_rng


def predict_sample(model: Segmenter, sample: Sample) -> Instances:
    """Instances over all of ``sample``'s points, predicted from its part inside the scan (points marked
    outside the scan, id -1, are not fed to the network and belong to no instance)."""
    part, index = scanned_part(sample)
    return on_whole_sample(model.predict(part.points, part.colors), index, len(sample))


def on_whole_sample(pred: Instances, index: np.ndarray | None, n_points: int) -> Instances:
    """Instances predicted on a sample's scanned part (``index`` from :func:`scanned_part`, None when the
    part is the whole sample) as instances over all ``n_points`` of the sample."""
    if index is None:
        return pred
    masks = np.zeros((len(pred.scores), n_points), dtype=bool)
    masks[:, index] = pred.masks
    return Instances(masks, pred.scores)


@dataclass
class Evaluation:
    """Predictions of a checkpoint and, when ground truth was given, their scores.

    Attributes:
        predictions: scene id → :class:`Instances` over the sample's points (stage-3 samples are the mesh
            vertices, in order).
        metrics: :meth:`APAccumulator.result` (``AP``, ``AP50``, ``AP25``, ...) or None without GT.
    """

    predictions: dict[str, Instances]
    metrics: dict | None


def evaluate_checkpoint(
    url: str,
    samples: str | Sequence[Sample],
    gt: Mapping[str, np.ndarray] | None = None,
    device: str = "cpu",
    preset: str = "all_annotated",
) -> Evaluation:
    """Predict with a checkpoint on stage-3 samples and score against per-vertex GT when given.

    Args:
        url: the checkpoint.
        samples: stage-3 samples, or a labels URL whose ``shards/stage3`` are read.
        gt: scene id → (N,) per-vertex GT ids (ScanNet encoding, 0 = unannotated) for the scenes to score;
            scenes without GT are predicted but not scored.
        device: torch device.
        preset: evaluation preset name.

    Returns:
        :class:`Evaluation`.

    Raises:
        DataError: a GT array whose length differs from its sample's point count.
    """
    if isinstance(samples, str):
        samples = load_stage_samples(samples, 3)
    model = Segmenter.from_checkpoint(url, device=device)
    predictions = {s.scene_id: predict_sample(model, s) for s in samples}
    if gt is None:
        return Evaluation(predictions, None)
    acc = APAccumulator(preset)
    for scene_id, inst in predictions.items():
        if scene_id not in gt:
            continue
        ids = np.asarray(gt[scene_id])
        if ids.shape != (inst.num_points,):
            raise DataError(
                scene_id, f"GT has shape {ids.shape}, the stage-3 sample has {inst.num_points} points"
            )
        acc.add(scene_id, inst, ids)
    return Evaluation(predictions, acc.result())


@torch.no_grad()
def mean_sample_loss(
    model: Segmenter, samples: Sequence[Sample], max_points: int | None = None, seed: int = 0
) -> float:
    """The training loss of ``model`` averaged over ``samples``, one sample per step, no update.

    Compares checkpoints on the same data (e.g. trained against untrained). Runs in eval mode (batch
    norms use their running statistics, no dropout) and restores the model's mode; the random parts
    (subsampling, the losses' point subsets) are seeded with ``seed``.

    Args:
        model: the model.
        samples: labelled samples (at least one).
        max_points: subsample larger samples to this many points.
        seed: seed of the random parts.

    Returns:
        mean over samples of the summed loss dict.
    """
    if not samples:
        raise ValueError("mean_sample_loss needs at least one sample")
    was_training = model.training
    model.eval()
    try:
        rng = epoch_rng(seed, 0)
        total = 0.0
        for s in samples:
            batch = PointBatch.collate([subsample(s, max_points, rng)]).to(model.device)
            total += float(sum(model.losses(model.run(batch), batch).values()))
        return total / len(samples)
    finally:
        model.train(was_training)
