"""Configuration of the curriculum: the settings every stage shares, one stage, the whole curriculum.

The three stages are configuration of one trainer. :class:`TrainConfig` is what ``tracklift train``
holds (``--train.<field>`` flags, a ``train:`` YAML section): where shards and checkpoints live, the model,
the epochs of stages 1, 2, 3 and the :class:`StageSettings` every stage uses. :attr:`TrainConfig.stages`
turns it into one :class:`StageConfig` per stage, which is what the training loop takes; a caller that
wants different settings per stage passes its own :class:`StageConfig` list to the trainers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tracklift.config import from_dict
from tracklift.errors import ConfigError
from tracklift.models import ModelConfig
from tracklift.training.augment import AugmentConfig

log = logging.getLogger(__name__)

STAGES = (1, 2, 3)
LR_SCHEDULES = ("constant", "cosine", "onecycle")
LR_SPANS = ("stage", "curriculum")
HANDOFFS = ("all", "backbone")


@dataclass
class StageSettings:
    """Optimisation and data settings of a curriculum stage.

    Args:
        lr: AdamW learning rate (Segment3D: 2e-4).
        batch_size: samples per optimisation step (the global batch on Ray Train).
        num_queries: override the preset's decoder query count (None = keep). When it differs from the
            previous stage's checkpoint, the first ``min(Q_old, Q_new)`` queries are copied and any extra
            ones keep their fresh initialisation.
        max_points: a sample with more points is randomly subsampled to this many (a fresh subset every
            epoch) to bound memory and step time; None = never.
        weight_decay: AdamW weight decay (0.01 is PyTorch's AdamW default; SPFormer uses 0.05).
        seed: seeds initialisation, shuffling, subsampling and the model's own random subsets.
        lr_schedule: learning rate over the stage's optimisation steps: ``constant`` (``lr`` throughout),
            ``cosine`` (linear warm-up from 0 over the first ``warmup`` share of the steps, then cosine
            decay to ``lr * final_lr_ratio``) or ``onecycle`` (PyTorch's OneCycleLR shape: warm-up from
            ``lr / 25`` over the first ``warmup`` share, 0.3 when ``warmup`` is 0, then cosine decay to
            ``lr / 25e4``). The rate is a function of the step, so a resumed stage continues the schedule.
        warmup: share of the stage's steps spent warming up (``cosine``, ``onecycle``).
        final_lr_ratio: ``cosine``: last learning rate as a share of ``lr``.
        augment: training augmentations (:class:`~tracklift.training.augment.AugmentConfig`, off by
            default).
        handoff: what a stage takes from the previous stage's checkpoint: ``all`` weights, or the
            ``backbone`` only (the query decoder and its queries start fresh).
    """

    lr: float = field(default=2e-4, metadata={"help": "AdamW learning rate (Segment3D: 2e-4)"})
    batch_size: int = field(default=2, metadata={"help": "samples per step (global over Ray workers)"})
    num_queries: int | None = field(default=None, metadata={"help": "decoder queries (None = the preset's)"})
    max_points: int | None = field(
        default=100_000, metadata={"help": "larger samples are randomly subsampled each epoch (None = never)"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, shuffling and subsampling"})
    lr_schedule: str = field(default="constant", metadata={"help": "constant | cosine | onecycle"})
    warmup: float = field(default=0.0, metadata={"help": "share of a stage's steps spent warming up"})
    final_lr_ratio: float = field(default=0.01, metadata={"help": "cosine: last lr as a share of lr"})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": "augmentations"})
    handoff: str = field(
        default="all", metadata={"help": "from the previous stage take: all | backbone (fresh decoder)"}
    )

    def __post_init__(self):
        if isinstance(self.augment, Mapping):
            self.augment = from_dict(AugmentConfig, dict(self.augment), "augment")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.handoff not in HANDOFFS:
            raise ValueError(f"handoff must be one of {', '.join(HANDOFFS)}, got {self.handoff!r}")
        if not (0 <= self.warmup < 1 and 0 <= self.final_lr_ratio <= 1):
            raise ValueError("need 0 <= warmup < 1 and 0 <= final_lr_ratio <= 1")


@dataclass(kw_only=True)
class StageConfig(StageSettings):
    """One curriculum stage: its number, its epochs and its :class:`StageSettings`.

    Args:
        stage: curriculum stage, 1 (single frames), 2 (frame windows) or 3 (full scenes).
        epochs: passes over the stage's shuffled samples.
    """

    stage: int
    epochs: int

    def __post_init__(self):
        super().__post_init__()
        if self.stage not in STAGES:
            raise ValueError(f"StageConfig.stage must be 1, 2 or 3, got {self.stage}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"stage {self.stage}: need epochs >= 0, batch_size >= 1 and lr > 0")
        if self.max_points is not None and self.max_points < 2:
            raise ValueError(f"stage {self.stage}: max_points must be >= 2 or None")


def check_epochs(stage_cfg: StageConfig) -> None:
    """Refuse to train a stage of 0 epochs on its own: it would write no checkpoint to hand on.

    Raises:
        ConfigError: ``stage_cfg.epochs`` is 0.
    """
    if stage_cfg.epochs == 0:
        raise ConfigError(
            f"stage {stage_cfg.stage} has 0 epochs: nothing to train (a curriculum skips such a stage and "
            "starts the next one from the last stage trained)"
        )


def span_curriculum(stages: Sequence[StageConfig]) -> list[StageConfig]:
    """The stages with one warm-up / hold / decay schedule across the curriculum instead of one per stage.

    The first stage that trains warms up over its ``warmup`` share and then holds its rate
    (``final_lr_ratio`` 1); the stages between hold theirs (``constant``); the last stage that trains
    decays by its ``cosine`` schedule with no second warm-up. So stages 1 and 2 hand on a network that
    was never cooled, and stage 3 is not warmed up again from rate 0 (the "warmup-stable-decay" shape).
    One trained stage keeps its own schedule; ``constant`` stages are unchanged.

    Raises:
        ValueError: a trained stage has the ``onecycle`` schedule (its warm-up and end rates are tied to
            one stage) or the stages mix schedules.
    """
    trained = [i for i, s in enumerate(stages) if s.epochs > 0]
    schedules = {stages[i].lr_schedule for i in trained}
    out = list(stages)
    if len(trained) < 2 or schedules == {"constant"}:
        return out
    if schedules != {"cosine"}:
        raise ValueError(
            f"lr_span=curriculum needs the cosine schedule in every trained stage, got {sorted(schedules)}"
        )
    first, *middle, last = trained
    out[first] = dataclasses.replace(stages[first], final_lr_ratio=1.0)
    for i in middle:
        out[i] = dataclasses.replace(stages[i], lr_schedule="constant")
    out[last] = dataclasses.replace(stages[last], warmup=0.0)
    return out


def trained_stages(stages: Iterable[StageConfig]) -> Iterator[StageConfig]:
    """The stages of a curriculum that train (epochs > 0), in order; each skipped stage is logged."""
    for stage_cfg in stages:
        if stage_cfg.epochs == 0:
            log.info("stage %d: 0 epochs, skipped", stage_cfg.stage)
            continue
        yield stage_cfg


@dataclass
class ModelOverrides:
    """Top-level :class:`~tracklift.models.ModelConfig` fields that replace the preset's (None = keep)."""

    voxel_size: float | None = field(default=None, metadata={"help": "voxel side in metres"})
    backend: str | None = field(
        default=None, metadata={"help": "sparse-conv backend: torch | minkowski (spconv: no CPU training)"}
    )
    use_xyz: bool | None = field(default=None, metadata={"help": "scene-centred xyz as input features"})
    decoder_level: str | None = field(
        default=None, metadata={"help": "superpoint | point decoding (models that offer both)"}
    )
    superpoint_stats: bool | None = field(
        default=None,
        metadata={"help": "superpoint decoding: append each superpoint's input mean and std to its features"},
    )

    def apply(self, cfg: ModelConfig) -> ModelConfig:
        """``cfg`` with the fields that are set here replaced.

        Raises:
            ConfigError: a field is set that this model config does not have (e.g. ``decoder_level`` on a
                point-only model).
        """
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        known = {f.name for f in dataclasses.fields(cfg)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"model_overrides: the model config has no field(s) {', '.join(unknown)}")
        return dataclasses.replace(cfg, **changes)


@dataclass(kw_only=True)
class TrainConfig(StageSettings):
    """The whole curriculum (the :class:`StageSettings` fields are used by every stage).

    Args:
        labels: URL of the labelling output; shards are read from ``<labels>/shards/stage{N}/``.
        out: URL where checkpoints go, ``<out>/stage{N}/last.pt``.
        model: :meth:`ModelConfig.preset` name (``tiny``, ``small``, ``base``).
        model_overrides: preset fields to replace (a :class:`ModelOverrides`, or a mapping of its fields).
        epochs: epochs of stages 1, 2, 3 (Segment3D trains 20 + 50 epochs on GPU; 4 each is CPU-sized).
        stage_lrs: the (start) learning rate of stages 1, 2, 3 when they should differ (e.g. a lower rate
            for a stage that fine-tunes the previous one); empty = ``lr`` for every stage.
        lr_span: what one ``lr_schedule`` spans: each ``stage`` (every stage warms up and decays), or the
            whole ``curriculum`` (warm up in the first stage, hold, decay in the last:
            :func:`span_curriculum`).
        device: torch device (``"cpu"``, ``"cuda"``) of the one-process trainer.
        log_every: log the running loss every this many steps.
        self_train: before stage 3, add confident stage-2 predictions on unlabelled points
            (:mod:`tracklift.training.self_training`).
        self_train_threshold: minimum score of a prediction added by self-training.
        max_pseudo: at most this many predictions added per scene.
        self_train_unlabelled: a prediction is added only when at least this fraction of its points is
            unlabelled (otherwise it mostly re-describes an existing pseudo-label).
        self_train_mode: ``fill`` adds confident predictions on unlabelled points only (lifted labels
            stay); ``replace`` makes the confident predictions the stage-3 labels (Segment3D's
            self-training: the network's own confident masks replace the lifted ones).
    """

    labels: str = field(default="runs/labels", metadata={"help": "labeling output URL (shards/stage{1,2,3})"})
    out: str = field(
        default="runs/train", metadata={"help": "checkpoint folder URL (<out>/stage{N}/last.pt)"}
    )
    model: str = field(default="small", metadata={"help": "model preset: default | tiny | small | base"})
    model_overrides: ModelOverrides = field(
        default_factory=ModelOverrides, metadata={"help": "preset fields to replace"}
    )
    epochs: list[int] = field(default_factory=lambda: [4, 4, 4], metadata={"help": "epochs of stages 1,2,3"})
    stage_lrs: list[float] = field(
        default_factory=list, metadata={"help": "learning rates of stages 1,2,3 (empty = lr for all)"}
    )
    lr_span: str = field(
        default="stage", metadata={"help": "one schedule per stage | one across the curriculum"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device (one-process runner)"})
    log_every: int = field(default=10, metadata={"help": "log the running loss every N steps (0 = never)"})
    self_train: bool = field(default=False, metadata={"help": "stage 3 adds confident stage-2 predictions"})
    self_train_threshold: float = field(default=0.6, metadata={"help": "self-training: minimum score"})
    max_pseudo: int = field(default=150, metadata={"help": "self-training: most instances added per scene"})
    self_train_unlabelled: float = field(
        default=0.5, metadata={"help": "self-training: minimum unlabelled fraction of a prediction"}
    )
    self_train_mode: str = field(
        default="fill", metadata={"help": "self-training: fill (unlabelled points) | replace (Segment3D)"}
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.model_overrides, Mapping):
            self.model_overrides = from_dict(ModelOverrides, dict(self.model_overrides), "model_overrides")
        self.epochs = [int(e) for e in self.epochs]
        if len(self.epochs) != len(STAGES) or min(self.epochs) < 0:
            raise ValueError(
                f"epochs takes three numbers, one per stage, each >= 0 (e.g. 4,4,4), got {self.epochs}"
            )
        self.stage_lrs = [float(v) for v in self.stage_lrs]
        if self.stage_lrs and (len(self.stage_lrs) != len(STAGES) or min(self.stage_lrs) <= 0):
            raise ValueError(f"stage_lrs takes three positive numbers or none, got {self.stage_lrs}")
        if self.lr_span not in LR_SPANS:
            raise ValueError(f"lr_span must be one of {', '.join(LR_SPANS)}, got {self.lr_span!r}")
        if self.self_train_mode not in ("fill", "replace"):
            raise ValueError(f"self_train_mode must be fill or replace, got {self.self_train_mode!r}")
        self.stages  # noqa: B018 (runs the per-stage checks now rather than when a stage starts)

    def settings(self) -> StageSettings:
        """The :class:`StageSettings` part of this config."""
        return StageSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(StageSettings)})

    @property
    def stages(self) -> list[StageConfig]:
        """One :class:`StageConfig` per stage, in order: the stage's epochs and the shared settings."""
        shared = dataclasses.asdict(self.settings())
        lrs = self.stage_lrs or [self.lr] * len(STAGES)
        stages = [
            StageConfig(stage=s, epochs=e, **{**shared, "lr": lr})
            for s, e, lr in zip(STAGES, self.epochs, lrs)
        ]
        return span_curriculum(stages) if self.lr_span == "curriculum" else stages


def stage_model_config(cfg: TrainConfig, stage_cfg: StageConfig) -> ModelConfig:
    """The :class:`ModelConfig` a stage trains: the preset, the overrides, the stage's query count."""
    mcfg = cfg.model_overrides.apply(ModelConfig.preset(cfg.model))
    if stage_cfg.num_queries is not None:
        mcfg = dataclasses.replace(
            mcfg, decoder=dataclasses.replace(mcfg.decoder, num_queries=stage_cfg.num_queries)
        )
    return mcfg.validate()
