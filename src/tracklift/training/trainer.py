"""The one-process curriculum trainer: stage 1 → 2 → 3, each stage starting from the previous checkpoint.

The three stages are configuration (:class:`~tracklift.training.config.StageConfig`) of one training loop
(:func:`train_stage`), never three copies of it. A stage reads its shards
(:func:`~tracklift.training.data.load_stage_samples`), trains ``epochs`` passes over the shuffled samples
with AdamW (:func:`~tracklift.training.epochs.run_epoch`) and writes ``<out>/stage{N}/last.pt`` after every
epoch with the state that lets a rerun resume it (:mod:`tracklift.training.state`). Stage 3 may first be
relabelled by the stage-2 model (:mod:`tracklift.training.self_training`).

Determinism: the model is initialised from ``torch.manual_seed(seed)``; the epochs' random streams are
:func:`~tracklift.training.epochs.epoch_rng`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tracklift import storage
from tracklift.models import save_checkpoint
from tracklift.training.config import StageConfig, TrainConfig, check_epochs, trained_stages
from tracklift.training.data import load_stage_samples
from tracklift.training.epochs import epoch_record, run_epoch
from tracklift.training.self_training import self_train_samples
from tracklift.training.state import (
    build_stage_model,
    checkpoint_url,
    initial_progress,
    progress_extra,
    restore_progress,
)

log = logging.getLogger(__name__)


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
        ConfigError: the stage has 0 epochs (:func:`train_curriculum` skips such a stage).
        DataError: missing or empty shard folder, bad shards, a checkpoint of another stage or architecture.
    """
    n = stage_cfg.stage
    check_epochs(stage_cfg)
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
        progress = initial_progress(model, init_checkpoint, stage_cfg.handoff)

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


def train_curriculum(cfg: TrainConfig, stages: Sequence[StageConfig] | None = None) -> dict[int, str]:
    """Run the stages in order, each initialised from the previous one's checkpoint. A stage of 0 epochs
    is skipped: the next stage starts from the last stage trained (fresh when none was).

    Args:
        cfg: the curriculum.
        stages: the stages to run (default ``cfg.stages``: stages 1, 2, 3 with ``cfg.epochs`` and the
            shared settings); pass a list to run some stages only or to vary settings per stage.

    Returns:
        ``{stage: checkpoint URL}`` of the stages trained.
    """
    urls: dict[int, str] = {}
    previous = None
    for stage_cfg in trained_stages(cfg.stages if stages is None else stages):
        previous = train_stage(cfg, stage_cfg, previous)
        urls[stage_cfg.stage] = previous
    return urls
