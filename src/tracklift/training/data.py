"""Training data: where a stage's shards are, reading them, and the per-step subsample of a sample.

Superpoints: a sample without them (stage 1 and 2 partial clouds; stage-3 samples read back from shards,
which do not store them) gets the superpoint decoder's own point-cloud segmentator
(:func:`tracklift.models.superpoints.cloud_superpoints`, default settings) the first time
:func:`subsample` sees it, computed on the whole sample and kept on it: once per sample per training run,
never per step, and the per-step subsets carry the ids along.

A stage reads its shards from ``<labels>/shards/stage{N}/`` (written by ``tracklift label``; ``.npz`` and
``.parquet`` shards are both read), in name order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from tracklift import storage
from tracklift.errors import DataError
from tracklift.labeling.layout import OutputLayout
from tracklift.lifting import Sample, read_samples, scanned_part
from tracklift.lifting.shards import SHARD_SUFFIXES
from tracklift.models.config import SuperpointConfig
from tracklift.models.superpoints import cloud_superpoints

log = logging.getLogger(__name__)


def stage_dir(labels: str, stage: int) -> str:
    """URL of a stage's shard folder (the labeling output layout knows where)."""
    return OutputLayout(labels).shard_dir(stage)


def stage_shards(labels: str, stage: int) -> list[str]:
    """URLs of one stage's shards (``.npz`` and ``.parquet``), in name order.

    Raises:
        DataError: the folder is missing or holds no shard.
    """
    folder = stage_dir(labels, stage)
    if not storage.isdir(folder):
        raise DataError(folder, f"no stage-{stage} shard folder (run `tracklift label` to write it)")
    names = sorted(n for n in storage.listdir(folder) if n.endswith(SHARD_SUFFIXES))
    if not names:
        raise DataError(folder, f"the stage-{stage} shard folder holds no .npz or .parquet shard")
    return [storage.join(folder, n) for n in names]


def usable(samples: Sequence[Sample], stage: int, where: str) -> list[Sample]:
    """The samples with at least 2 points (the network's minimum); none at all is a :class:`DataError`."""
    kept = [s for s in samples if len(s) >= 2]
    if len(kept) < len(samples):
        log.info("stage %d: skipping %d samples with fewer than 2 points", stage, len(samples) - len(kept))
    if not kept:
        raise DataError(where, f"the stage-{stage} shards hold no sample with at least 2 points")
    return kept


def load_stage_samples(labels: str, stage: int) -> list[Sample]:
    """All samples of one stage, shards in name order, samples in shard order.

    Raises:
        DataError: the folder is missing, holds no ``.npz`` / ``.parquet`` shard, or its shards hold no
            usable sample.
    """
    samples = []
    for url in stage_shards(labels, stage):
        samples.extend(read_samples(url))
    return usable(samples, stage, stage_dir(labels, stage))


def with_superpoints(sample: Sample, cfg: SuperpointConfig | None = None) -> Sample:
    """``sample`` with superpoints: its own, or the point-cloud segmentator's, stored on it (in place)."""
    if sample.superpoints is None and len(sample):
        sample.superpoints = cloud_superpoints(sample.points, cfg)
    return sample


def subsample(sample: Sample, max_points: int | None, rng: np.random.Generator) -> Sample:
    """The part of ``sample`` inside the scan (:func:`scanned_part`), or a uniform random subset of
    ``max_points`` of it; superpoint ids follow (:func:`with_superpoints` gives them on first use)."""
    sample, _ = scanned_part(with_superpoints(sample))
    if max_points is None or len(sample) <= max_points:
        return sample
    return sample.subset(np.sort(rng.choice(len(sample), max_points, replace=False)))
