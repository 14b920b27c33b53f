"""The one-process curriculum trainer: stage 1 → 2 → 3, each stage starting from the previous checkpoint.

The three stages are configuration (:class:`StageConfig`) of one training loop (:func:`train_stage`), never
three copies of it. A stage reads its shards from ``<labels>/shards/stage{N}/*.npz`` (written by
``tracklift label``; ``.npz`` and ``.parquet`` shards are both read), trains ``epochs`` passes over the
shuffled samples with AdamW and writes
``<out>/stage{N}/last.pt`` after every epoch. The checkpoint's ``extra`` holds the trainer state
(``stage``, completed ``epoch``, ``optimizer`` state, per-epoch ``history``, the ``init`` checkpoint), so a
rerun resumes an interrupted stage and skips a finished one.

The building blocks (:func:`build_stage_model`, :func:`restore_progress` / :func:`initial_progress`,
:func:`run_epoch`, :func:`epoch_record`, :func:`progress_extra`) are shared with the Ray Train path
(:mod:`tracklift.training.distributed`), which runs the same epochs on each worker's share of the samples.

Determinism: the model is initialised from ``torch.manual_seed(seed)``; epoch ``e`` shuffles and subsamples
with ``numpy.random.default_rng([seed, e])`` and reseeds torch with ``seed * 100003 + e``, so a resumed run
sees the same epochs as an uninterrupted one.

Self-training (stage 3, ``TrainConfig.self_train``), after Segment3D: before stage 3 the stage-2 model
predicts on every stage-3 sample; predictions scoring at least ``self_train_threshold`` (0.6), at most
``max_pseudo`` (150) per scene, highest first, whose points are mostly unlabelled (instance 0) become new
instances on those unlabelled points. Points already carrying a lifted pseudo-label keep it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tracklift import storage
from tracklift.errors import DataError
from tracklift.evaluation import APAccumulator
from tracklift.lifting import Sample, read_samples, scanned_part
from tracklift.lifting.shards import SHARD_SUFFIXES
from tracklift.models import (
    ModelConfig,
    PointBatch,
    Segmenter,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from tracklift.models.config import architecture_differences
from tracklift.structures import Instances

log = logging.getLogger(__name__)

# Decoder tensors whose first dimension is the number of queries (see models/decoder.py).
_QUERY_TENSORS = ("decoder.query_feat.weight", "decoder.query_pos.weight")


@dataclass
class StageConfig:
    """One curriculum stage.

    Args:
        stage: curriculum stage, 1 (single frames), 2 (frame windows) or 3 (full scenes).
        epochs: passes over the stage's shuffled samples.
        lr: AdamW learning rate (Segment3D: 2e-4).
        batch_size: samples per optimisation step.
        num_queries: override the preset's decoder query count for this stage (None = keep). When it
            differs from the previous stage's checkpoint, the first ``min(Q_old, Q_new)`` queries are copied
            and any extra ones keep their fresh initialisation.
        max_points: a sample with more points is randomly subsampled to this many (a fresh subset every
            epoch) to bound memory and step time; None = never.
        weight_decay: AdamW weight decay (0.01 is PyTorch's AdamW default).
        seed: seeds initialisation, shuffling, subsampling and the model's own random subsets.
    """

    stage: int
    epochs: int = 4
    lr: float = 2e-4
    batch_size: int = 2
    num_queries: int | None = None
    max_points: int | None = 100_000
    weight_decay: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if self.stage not in (1, 2, 3):
            raise ValueError(f"StageConfig.stage must be 1, 2 or 3, got {self.stage}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"stage {self.stage}: need epochs >= 0, batch_size >= 1 and lr > 0")
        if self.max_points is not None and self.max_points < 2:
            raise ValueError(f"stage {self.stage}: max_points must be >= 2 or None")


def default_stages() -> list[StageConfig]:
    """Stages 1, 2, 3 with 4 epochs each: a CPU-sized schedule (Segment3D trains 20 + 50 epochs on GPU)."""
    return [StageConfig(stage=s, epochs=4) for s in (1, 2, 3)]


@dataclass
class TrainConfig:
    """The whole curriculum.

    Args:
        labels: URL of the labelling output; shards are read from ``<labels>/shards/stage{N}/*.npz``.
        out: URL where checkpoints go, ``<out>/stage{N}/last.pt``.
        model: :meth:`ModelConfig.preset` name (``tiny``, ``small``, ``base``).
        model_overrides: top-level :class:`ModelConfig` fields to override (e.g. ``{"voxel_size": 0.05}``).
        stages: the stages, run in this order, each initialised from the previous one's checkpoint.
        device: torch device (``"cpu"``, ``"cuda"``).
        log_every: log the running loss every this many steps.
        self_train: before stage 3, add confident stage-2 predictions on unlabelled points (module doc).
        self_train_threshold: minimum score of a prediction added by self-training.
        max_pseudo: at most this many predictions added per scene.
        self_train_unlabelled: a prediction is added only when at least this fraction of its points is
            unlabelled (otherwise it mostly re-describes an existing pseudo-label).
    """

    labels: str
    out: str
    model: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    stages: list[StageConfig] = field(default_factory=default_stages)
    device: str = "cpu"
    log_every: int = 10
    self_train: bool = False
    self_train_threshold: float = 0.6
    max_pseudo: int = 150
    self_train_unlabelled: float = 0.5


def stage_dir(labels: str, stage: int) -> str:
    """URL of a stage's shard folder."""
    return storage.join(labels, "shards", f"stage{stage}")


def checkpoint_url(out: str, stage: int) -> str:
    """URL of a stage's checkpoint."""
    return storage.join(out, f"stage{stage}", "last.pt")


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


def stage_model_config(cfg: TrainConfig, stage_cfg: StageConfig) -> ModelConfig:
    """The :class:`ModelConfig` a stage trains: the preset, the overrides, the stage's query count."""
    mcfg = ModelConfig.preset(cfg.model, **cfg.model_overrides)
    if stage_cfg.num_queries is not None:
        mcfg = dataclasses.replace(
            mcfg, decoder=dataclasses.replace(mcfg.decoder, num_queries=stage_cfg.num_queries)
        )
    return mcfg.validate()


def init_from(model: Segmenter, url: str) -> None:
    """Initialise ``model`` from another stage's checkpoint; a different query count is allowed (the
    first ``min`` queries are copied), any other architecture difference is a :class:`DataError`."""
    ckpt, ccfg = read_checkpoint(url)
    diffs = architecture_differences(ccfg, model.config)
    if not diffs:
        load_weights(model, url)
        return
    if any(not d.startswith("decoder.num_queries") for d in diffs):
        raise DataError(url, "checkpoint of another architecture (checkpoint vs model): " + "; ".join(diffs))
    state = dict(ckpt["state_dict"])
    own = model.state_dict()
    for name in _QUERY_TENSORS:
        q = min(state[name].shape[0], own[name].shape[0])
        merged = own[name].clone()
        merged[:q] = state[name][:q]
        state[name] = merged
    model.load_state_dict(state)
    log.info("%s: copied %d of the model's %d queries", url, q, own[_QUERY_TENSORS[0]].shape[0])


def subsample(sample: Sample, max_points: int | None, rng: np.random.Generator) -> Sample:
    """The part of ``sample`` inside the scan (:func:`scanned_part`), or a uniform random subset of
    ``max_points`` of it."""
    sample, _ = scanned_part(sample)
    if max_points is None or len(sample) <= max_points:
        return sample
    return sample.subset(np.sort(rng.choice(len(sample), max_points, replace=False)))


def predict_sample(model: Segmenter, sample: Sample) -> Instances:
    """Instances over all of ``sample``'s points, predicted from its part inside the scan (points marked
    outside the scan, id -1, are not fed to the network and belong to no instance)."""
    part, index = scanned_part(sample)
    pred = model.predict(part.points, part.colors)
    if index is None:
        return pred
    masks = np.zeros((len(pred.scores), len(sample)), dtype=bool)
    masks[:, index] = pred.masks
    return Instances(masks, pred.scores)


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
        out.append(Sample(s.points, s.colors, ids, s.scene_id, s.stage, s.frames))
    return out, added


def build_stage_model(cfg: TrainConfig, stage_cfg: StageConfig, device: str | torch.device):
    """A freshly initialised model for the stage (seeded) and its AdamW optimizer.

    Returns:
        ``(model on device, optimizer)``.
    """
    torch.manual_seed(stage_cfg.seed)
    model = Segmenter.from_config(stage_model_config(cfg, stage_cfg)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage_cfg.lr, weight_decay=stage_cfg.weight_decay)
    return model, optimizer


@dataclass
class StageProgress:
    """Where a stage stands.

    Attributes:
        done: completed epochs.
        history: one :func:`epoch_record` per completed epoch.
        init: the checkpoint the stage was initialised from (None = fresh initialisation).
        extra: further checkpoint ``extra`` entries to carry on (e.g. the Ray path's attempt log).
    """

    done: int = 0
    history: list[dict] = field(default_factory=list)
    init: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_PROGRESS_KEYS = ("stage", "epoch", "optimizer", "history", "init")


def restore_progress(
    model: Segmenter, optimizer: torch.optim.Optimizer, url: str, stage: int
) -> StageProgress:
    """Load a stage's own checkpoint (weights, optimizer state, history) to resume it.

    Raises:
        DataError: the checkpoint belongs to another stage or architecture.
    """
    extra = load_weights(model, url)
    if extra.get("stage") != stage:
        raise DataError(url, f"checkpoint of stage {extra.get('stage')!r}, expected stage {stage}")
    if "optimizer" in extra:
        optimizer.load_state_dict(extra["optimizer"])
    rest = {k: v for k, v in extra.items() if k not in _PROGRESS_KEYS}
    return StageProgress(int(extra.get("epoch", 0)), list(extra.get("history", [])), extra.get("init"), rest)


def initial_progress(model: Segmenter, init_checkpoint: str | None) -> StageProgress:
    """Start a stage: from ``init_checkpoint`` (the previous stage, see :func:`init_from`) or fresh."""
    if init_checkpoint is not None:
        init_from(model, init_checkpoint)
        log.info("initialised from %s", init_checkpoint)
    return StageProgress(init=init_checkpoint)


def progress_extra(stage: int, progress: StageProgress, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The checkpoint ``extra`` that lets :func:`restore_progress` resume after ``progress.done`` epochs."""
    return {
        **progress.extra,
        "stage": stage,
        "epoch": progress.done,
        "optimizer": optimizer.state_dict(),
        "history": progress.history,
        "init": progress.init,
    }


def self_train_samples(
    cfg: TrainConfig, samples: Sequence[Sample], init_checkpoint: str | None, device: str | torch.device
) -> tuple[list[Sample], int]:
    """Stage-3 samples with self-training labels from the stage-2 model (module doc), when enabled.

    Returns:
        ``(samples, instances added)``; the samples unchanged and 0 when self-training is off or there
        is no previous-stage checkpoint.
    """
    if not cfg.self_train or init_checkpoint is None:
        return list(samples), 0
    teacher = Segmenter.from_config(read_checkpoint(init_checkpoint)[1]).to(device)
    load_weights(teacher, init_checkpoint)
    out, pseudo = add_pseudo_instances(
        teacher, samples, cfg.self_train_threshold, cfg.max_pseudo, cfg.self_train_unlabelled
    )
    log.info("stage 3: self-training added %d instances from %s", pseudo, init_checkpoint)
    return out, pseudo


def epoch_rng(seed: int, epoch: int, rank: int = 0) -> np.random.Generator:
    """The epoch's shuffling / subsampling stream; also reseeds torch (the model's own random subsets).

    Rank 0 gets the one-process trainer's streams, so a one-worker distributed run repeats it exactly.
    """
    torch.manual_seed(seed * 100003 + epoch + 7919 * rank)
    return np.random.default_rng([seed, epoch] if rank == 0 else [seed, epoch, rank])


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
    """One pass over ``samples`` shuffled by :func:`epoch_rng`: the step code of both trainers.

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
    model.train()
    total, steps = 0.0, 0
    for start in range(0, len(order), size):
        chunk = [subsample(samples[i], stage_cfg.max_points, rng) for i in order[start : start + size]]
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


def train_stage(cfg: TrainConfig, stage_cfg: StageConfig, init_checkpoint: str | None = None) -> str:
    """Train (or resume, or skip) one curriculum stage.

    Args:
        cfg: the curriculum config (shard and checkpoint locations, model, device).
        stage_cfg: this stage.
        init_checkpoint: the previous stage's checkpoint to start from (None = fresh initialisation).
            Ignored when resuming, since the stage's own checkpoint already holds the weights.

    Returns:
        URL of the stage's checkpoint ``<out>/stage{N}/last.pt``.

    Raises:
        DataError: missing or empty shard folder, bad shards, a checkpoint of another stage or architecture.
    """
    n = stage_cfg.stage
    url = checkpoint_url(cfg.out, n)
    model, optimizer = build_stage_model(cfg, stage_cfg, cfg.device)
    if storage.exists(url):
        progress = restore_progress(model, optimizer, url, n)
        if progress.done >= stage_cfg.epochs:
            log.info(
                "stage %d: %s already has %d/%d epochs, skipping", n, url, progress.done, stage_cfg.epochs
            )
            return url
        log.info("stage %d: resuming from %s after epoch %d", n, url, progress.done)
    else:
        progress = initial_progress(model, init_checkpoint)

    samples = load_stage_samples(cfg.labels, n)
    pseudo = 0
    if n == 3:
        samples, pseudo = self_train_samples(cfg, samples, progress.init, cfg.device)
    big = sum(stage_cfg.max_points is not None and len(s) > stage_cfg.max_points for s in samples)
    log.info(
        "stage %d: %d samples, %d of them randomly subsampled to %s points each epoch",
        n,
        len(samples),
        big,
        stage_cfg.max_points,
    )

    for epoch in range(progress.done, stage_cfg.epochs):
        t0 = time.perf_counter()
        mean, steps = run_epoch(model, optimizer, samples, stage_cfg, epoch, cfg.log_every)
        progress.history.append(
            epoch_record(epoch, mean, steps, len(samples), time.perf_counter() - t0, pseudo)
        )
        progress.done = epoch + 1
        log.info("stage %d epoch %d/%d: mean loss %.4f", n, epoch + 1, stage_cfg.epochs, mean)
        save_checkpoint(model, url, extra=progress_extra(n, progress, optimizer))
    return url


def train_curriculum(cfg: TrainConfig) -> dict[int, str]:
    """Run the stages in order, each initialised from the previous one's checkpoint.

    Returns:
        ``{stage: checkpoint URL}``.
    """
    urls: dict[int, str] = {}
    previous = None
    for stage_cfg in cfg.stages:
        previous = train_stage(cfg, stage_cfg, previous)
        urls[stage_cfg.stage] = previous
    return urls


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
    model = Segmenter.from_config(read_checkpoint(url)[1]).to(device)
    load_weights(model, url)
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
