"""Curriculum training of the 3D segmenter: stages 1 → 2 → 3 as configuration of one trainer, in one process
(:func:`train_curriculum`) or on Ray Train (:func:`train_curriculum_ray`).

Modules, one concern each: ``config`` (stage settings, the curriculum), ``data`` (shard discovery, reading,
per-step subsampling), ``state`` (checkpoints, initialisation, resume), ``epochs`` (the step code both
trainers run), ``self_training`` (stage-2 predictions as extra stage-3 labels), ``trainer`` (one
process), ``distributed`` and ``ray_shards`` (Ray Train), ``evaluate`` (predicting and scoring a
checkpoint).
"""

from tracklift.training.config import ModelOverrides, StageConfig, StageSettings, TrainConfig
from tracklift.training.data import load_stage_samples, stage_dir
from tracklift.training.distributed import RayTrainOptions, train_curriculum_ray, train_stage_ray
from tracklift.training.evaluate import Evaluation, evaluate_checkpoint, mean_sample_loss
from tracklift.training.self_training import add_pseudo_instances
from tracklift.training.state import checkpoint_url
from tracklift.training.trainer import train_curriculum, train_stage

__all__ = [
    "Evaluation",
    "ModelOverrides",
    "RayTrainOptions",
    "StageConfig",
    "StageSettings",
    "TrainConfig",
    "add_pseudo_instances",
    "checkpoint_url",
    "evaluate_checkpoint",
    "load_stage_samples",
    "mean_sample_loss",
    "stage_dir",
    "train_curriculum",
    "train_curriculum_ray",
    "train_stage",
    "train_stage_ray",
]
