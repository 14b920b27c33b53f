"""Curriculum training of the 3D segmenter: stages 1 → 2 → 3 as configuration of one trainer."""

from tracklift.training.trainer import (
    Evaluation,
    StageConfig,
    TrainConfig,
    add_pseudo_instances,
    checkpoint_url,
    default_stages,
    evaluate_checkpoint,
    load_stage_samples,
    stage_dir,
    train_curriculum,
    train_stage,
)

__all__ = [
    "Evaluation",
    "StageConfig",
    "TrainConfig",
    "add_pseudo_instances",
    "checkpoint_url",
    "default_stages",
    "evaluate_checkpoint",
    "load_stage_samples",
    "stage_dir",
    "train_curriculum",
    "train_stage",
]
