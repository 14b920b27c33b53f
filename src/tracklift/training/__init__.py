"""Curriculum training of the 3D segmenter: stages 1 → 2 → 3 as configuration of one trainer, in one process
(:func:`train_curriculum`) or on Ray Train (:func:`train_curriculum_ray`)."""

from tracklift.training.distributed import RayTrainOptions, train_curriculum_ray, train_stage_ray
from tracklift.training.trainer import (
    Evaluation,
    StageConfig,
    TrainConfig,
    add_pseudo_instances,
    checkpoint_url,
    default_stages,
    evaluate_checkpoint,
    load_stage_samples,
    mean_sample_loss,
    stage_dir,
    train_curriculum,
    train_stage,
)

__all__ = [
    "Evaluation",
    "RayTrainOptions",
    "StageConfig",
    "TrainConfig",
    "add_pseudo_instances",
    "checkpoint_url",
    "default_stages",
    "evaluate_checkpoint",
    "load_stage_samples",
    "mean_sample_loss",
    "stage_dir",
    "train_curriculum",
    "train_curriculum_ray",
    "train_stage",
    "train_stage_ray",
]
