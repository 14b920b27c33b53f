"""Configuration of the curriculum: the settings every stage shares, one stage, the whole curriculum.

The three stages are configuration of one trainer. :class:`TrainConfig` is what ``tracklift train``
holds (``--train.<field>`` flags, a ``train:`` YAML section): where shards and checkpoints live, the model,
the epochs of stages 1, 2, 3 and the :class:`StageSettings` every stage uses. :attr:`TrainConfig.stages`
turns it into one :class:`StageConfig` per stage, which is what the training loop takes; a caller that
wants different settings per stage passes its own :class:`StageConfig` list to the trainers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from tracklift.config import from_dict
from tracklift.models import ModelConfig

STAGES = (1, 2, 3)


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
        weight_decay: AdamW weight decay (0.01 is PyTorch's AdamW default).
        seed: seeds initialisation, shuffling, subsampling and the model's own random subsets.
    """

    lr: float = field(default=2e-4, metadata={"help": "AdamW learning rate (Segment3D: 2e-4)"})
    batch_size: int = field(default=2, metadata={"help": "samples per step (global over Ray workers)"})
    num_queries: int | None = field(default=None, metadata={"help": "decoder queries (None = the preset's)"})
    max_points: int | None = field(
        default=100_000, metadata={"help": "larger samples are randomly subsampled each epoch (None = never)"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, shuffling and subsampling"})


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
        if self.stage not in STAGES:
            raise ValueError(f"StageConfig.stage must be 1, 2 or 3, got {self.stage}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"stage {self.stage}: need epochs >= 0, batch_size >= 1 and lr > 0")
        if self.max_points is not None and self.max_points < 2:
            raise ValueError(f"stage {self.stage}: max_points must be >= 2 or None")


@dataclass
class ModelOverrides:
    """Top-level :class:`~tracklift.models.ModelConfig` fields that replace the preset's (None = keep)."""

    voxel_size: float | None = field(default=None, metadata={"help": "voxel side in metres"})
    backend: str | None = field(
        default=None, metadata={"help": "sparse-conv backend: torch | minkowski (spconv: no CPU training)"}
    )
    use_xyz: bool | None = field(default=None, metadata={"help": "scene-centred xyz as input features"})

    def apply(self, cfg: ModelConfig) -> ModelConfig:
        """``cfg`` with the fields that are set here replaced."""
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
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
        device: torch device (``"cpu"``, ``"cuda"``) of the one-process trainer.
        log_every: log the running loss every this many steps.
        self_train: before stage 3, add confident stage-2 predictions on unlabelled points
            (:mod:`tracklift.training.self_training`).
        self_train_threshold: minimum score of a prediction added by self-training.
        max_pseudo: at most this many predictions added per scene.
        self_train_unlabelled: a prediction is added only when at least this fraction of its points is
            unlabelled (otherwise it mostly re-describes an existing pseudo-label).
    """

    labels: str = field(default="runs/labels", metadata={"help": "labeling output URL (shards/stage{1,2,3})"})
    out: str = field(
        default="runs/train", metadata={"help": "checkpoint folder URL (<out>/stage{N}/last.pt)"}
    )
    model: str = field(default="small", metadata={"help": "model preset: tiny | small | base"})
    model_overrides: ModelOverrides = field(
        default_factory=ModelOverrides, metadata={"help": "preset fields to replace"}
    )
    epochs: list[int] = field(default_factory=lambda: [4, 4, 4], metadata={"help": "epochs of stages 1,2,3"})
    device: str = field(default="cpu", metadata={"help": "torch device (one-process runner)"})
    log_every: int = field(default=10, metadata={"help": "log the running loss every N steps (0 = never)"})
    self_train: bool = field(default=False, metadata={"help": "stage 3 adds confident stage-2 predictions"})
    self_train_threshold: float = field(default=0.6, metadata={"help": "self-training: minimum score"})
    max_pseudo: int = field(default=150, metadata={"help": "self-training: most instances added per scene"})
    self_train_unlabelled: float = field(
        default=0.5, metadata={"help": "self-training: minimum unlabelled fraction of a prediction"}
    )

    def __post_init__(self):
        if isinstance(self.model_overrides, Mapping):
            self.model_overrides = from_dict(ModelOverrides, dict(self.model_overrides), "model_overrides")
        self.epochs = [int(e) for e in self.epochs]
        if len(self.epochs) != len(STAGES) or min(self.epochs) < 0:
            raise ValueError(
                f"epochs takes three numbers, one per stage, each >= 0 (e.g. 4,4,4), got {self.epochs}"
            )
        self.stages  # noqa: B018 (runs the per-stage checks now rather than when a stage starts)

    def settings(self) -> StageSettings:
        """The :class:`StageSettings` part of this config."""
        return StageSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(StageSettings)})

    @property
    def stages(self) -> list[StageConfig]:
        """One :class:`StageConfig` per stage, in order: the stage's epochs and the shared settings."""
        shared = dataclasses.asdict(self.settings())
        return [StageConfig(stage=s, epochs=e, **shared) for s, e in zip(STAGES, self.epochs)]


def stage_model_config(cfg: TrainConfig, stage_cfg: StageConfig) -> ModelConfig:
    """The :class:`ModelConfig` a stage trains: the preset, the overrides, the stage's query count."""
    mcfg = cfg.model_overrides.apply(ModelConfig.preset(cfg.model))
    if stage_cfg.num_queries is not None:
        mcfg = dataclasses.replace(
            mcfg, decoder=dataclasses.replace(mcfg.decoder, num_queries=stage_cfg.num_queries)
        )
    return mcfg.validate()
