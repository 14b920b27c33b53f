"""A stage's state: its checkpoint, the model it starts from, and resuming an interrupted stage.

``<out>/stage{N}/last.pt`` is written after every epoch. Its ``extra`` holds the trainer state (``stage``,
completed ``epoch``, ``optimizer`` state, per-epoch ``history``, the ``init`` checkpoint), so a rerun
resumes an interrupted stage and skips a finished one. Shared by the one-process trainer and the Ray
Train workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from tracklift import storage
from tracklift.errors import DataError
from tracklift.models import Segmenter, load_weights, read_checkpoint
from tracklift.models.checkpoint import apply_weights
from tracklift.models.config import architecture_differences
from tracklift.training.config import StageConfig, TrainConfig, stage_model_config

log = logging.getLogger(__name__)

# Decoder tensors whose first dimension is the number of queries (see models/decoder.py).
_QUERY_TENSORS = ("decoder.query_feat.weight", "decoder.query_pos.weight")


def checkpoint_url(out: str, stage: int) -> str:
    """URL of a stage's checkpoint."""
    return storage.join(out, f"stage{stage}", "last.pt")


def build_stage_model(cfg: TrainConfig, stage_cfg: StageConfig, device: str | torch.device):
    """A freshly initialised model for the stage (seeded) and its AdamW optimizer.

    Returns:
        ``(model on device, optimizer)``.
    """
    torch.manual_seed(stage_cfg.seed)
    model = Segmenter.from_config(stage_model_config(cfg, stage_cfg)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage_cfg.lr, weight_decay=stage_cfg.weight_decay)
    return model, optimizer


def init_from(model: Segmenter, url: str, handoff: str = "all") -> None:
    """Initialise ``model`` from another stage's checkpoint; a different query count is allowed (the
    first ``min`` queries are copied), any other architecture difference is a :class:`DataError`.

    Args:
        model: the freshly initialised model of the stage.
        url: the previous stage's checkpoint.
        handoff: ``all`` copies every weight; ``backbone`` copies all but the query decoder's
            (``decoder.*``), which keeps its fresh initialisation (its query count may then differ freely).
    """
    ckpt, ccfg = read_checkpoint(url)
    diffs = architecture_differences(ccfg, model.config)
    if handoff == "backbone":
        if any(not d.startswith("decoder.") for d in diffs):
            raise DataError(url, "checkpoint of another backbone (checkpoint vs model): " + "; ".join(diffs))
        own = model.state_dict()
        state = {k: (own[k] if k.startswith("decoder.") else v) for k, v in ckpt["state_dict"].items()}
        missing = [k for k in own if k not in state]
        if missing:
            raise DataError(url, f"checkpoint lacks {len(missing)} backbone weights, e.g. {missing[0]}")
        model.load_state_dict(state)
        log.info("%s: backbone copied, decoder freshly initialised", url)
        return
    if not diffs:
        apply_weights(model, url, ckpt, ccfg)
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


@dataclass
class StageProgress:
    """Where a stage stands.

    Attributes:
        done: completed epochs.
        history: one :func:`~tracklift.training.epochs.epoch_record` per completed epoch.
        init: the checkpoint the stage was initialised from (None = fresh initialisation).
        extra: further checkpoint ``extra`` entries to carry on (e.g. the Ray path's attempt log).
    """

    done: int = 0
    history: list[dict] = field(default_factory=list)
    init: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_PROGRESS_KEYS = ("stage", "epoch", "optimizer", "history", "init")


def check_stage(url: str, extra: dict[str, Any], stage: int) -> None:
    """Raise :class:`DataError` unless the checkpoint ``extra`` read from ``url`` belongs to ``stage``."""
    if extra.get("stage") != stage:
        raise DataError(url, f"checkpoint of stage {extra.get('stage')!r}, expected stage {stage}")


def restore_progress(
    model: Segmenter, optimizer: torch.optim.Optimizer, url: str, stage: int
) -> StageProgress:
    """Load a stage's own checkpoint (weights, optimizer state, history) to resume it.

    Raises:
        DataError: the checkpoint belongs to another stage or architecture.
    """
    extra = load_weights(model, url)
    check_stage(url, extra, stage)
    if "optimizer" in extra:
        optimizer.load_state_dict(extra["optimizer"])
    rest = {k: v for k, v in extra.items() if k not in _PROGRESS_KEYS}
    return StageProgress(int(extra.get("epoch", 0)), list(extra.get("history", [])), extra.get("init"), rest)


def initial_progress(model: Segmenter, init_checkpoint: str | None, handoff: str = "all") -> StageProgress:
    """Start a stage: from ``init_checkpoint`` (the previous stage, see :func:`init_from`) or fresh."""
    if init_checkpoint is not None:
        init_from(model, init_checkpoint, handoff)
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
