"""The curriculum config: stages from epochs and shared settings, YAML sections, one flag per field."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from tracklift.cli import TrainCommandConfig, build_parser
from tracklift.config import from_args
from tracklift.errors import ConfigError
from tracklift.models import ModelConfig
from tracklift.training import ModelOverrides, RayTrainOptions, StageConfig, StageSettings, TrainConfig
from tracklift.training.config import stage_model_config


def test_stages_take_their_epochs_and_the_shared_settings():
    cfg = TrainConfig(epochs=[3, 3, 6], lr=1e-3, max_points=5000, seed=7)
    assert [(s.stage, s.epochs) for s in cfg.stages] == [(1, 3), (2, 3), (3, 6)]
    assert all((s.lr, s.max_points, s.seed, s.batch_size) == (1e-3, 5000, 7, 2) for s in cfg.stages)
    # the defaults are StageSettings' own, stated once
    assert cfg.settings() == dataclasses.replace(StageSettings(), lr=1e-3, max_points=5000, seed=7)
    with pytest.raises(ValueError, match="three numbers"):
        TrainConfig(epochs=[1, 1])
    with pytest.raises(ValueError, match="max_points"):
        TrainConfig(max_points=1)
    with pytest.raises(ValueError, match="must be 1, 2 or 3"):
        StageConfig(stage=4, epochs=1)


def test_stage_lrs_and_the_recipe_sections_reach_every_stage():
    cfg = TrainConfig(
        stage_lrs=[1e-3, 5e-4, 2e-4],
        lr_schedule="cosine",
        warmup=0.1,
        handoff="backbone",
        augment={"enabled": True, "crop": True},
    )
    assert [s.lr for s in cfg.stages] == [1e-3, 5e-4, 2e-4]
    assert all(s.lr_schedule == "cosine" and s.warmup == 0.1 and s.handoff == "backbone" for s in cfg.stages)
    assert all(s.augment.enabled and s.augment.crop for s in cfg.stages)
    assert [s.lr for s in TrainConfig(lr=3e-4).stages] == [3e-4] * 3
    with pytest.raises(ValueError, match="stage_lrs"):
        TrainConfig(stage_lrs=[1e-3])
    with pytest.raises(ValueError, match="self_train_mode"):
        TrainConfig(self_train_mode="merge")


def test_decoder_level_override_needs_a_model_that_has_it():
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = TrainConfig(model="tiny", model_overrides={"decoder_level": "point"})
    if "decoder_level" in fields:
        assert stage_model_config(cfg, cfg.stages[0]).decoder_level == "point"
    else:
        with pytest.raises(ConfigError, match="decoder_level"):
            stage_model_config(cfg, cfg.stages[0])


def test_model_overrides_replace_only_what_they_set():
    cfg = TrainConfig(model="tiny", model_overrides={"voxel_size": 0.1}, num_queries=5)
    assert cfg.model_overrides == ModelOverrides(voxel_size=0.1)
    mcfg = stage_model_config(cfg, cfg.stages[0])
    assert mcfg == dataclasses.replace(
        ModelConfig.preset("tiny", voxel_size=0.1),
        decoder=dataclasses.replace(ModelConfig.preset("tiny").decoder, num_queries=5),
    )


def test_train_command_reads_nested_yaml_and_flags(tmp_path):
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text(
        "train:\n  labels: s3://b/labels\n  epochs: [3, 3, 6]\n  model_overrides: {voxel_size: 0.05}\n"
        "ray:\n  num_workers: 4\n  storage_path: s3://b/runs\nstage: '2'\n"
    )
    args = build_parser().parse_args(
        ["train", "--config", str(yaml_file), "--train.lr", "0.001", "--ray.use-gpu", "true"]
    )
    cfg = from_args(TrainCommandConfig, args)
    assert cfg.train.labels == "s3://b/labels" and cfg.train.epochs == [3, 3, 6] and cfg.train.lr == 0.001
    assert cfg.train.model_overrides.voxel_size == 0.05 and cfg.train.out == TrainConfig().out
    assert (cfg.ray.num_workers, cfg.ray.storage_path, cfg.ray.use_gpu) == (4, "s3://b/runs", True)
    assert cfg.stage == "2"


def _leaves(cls, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        out += _leaves(tp, f"{prefix}{f.name}.") if dataclasses.is_dataclass(tp) else [prefix + f.name]
    return out


def test_every_field_is_a_flag():
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in sub._actions for opt in action.option_strings}
    wanted = _leaves(TrainConfig, "train.") + _leaves(RayTrainOptions, "ray.") + ["stage", "runner"]
    missing = [w for w in wanted if "--" + w.replace("_", "-") not in flags]
    assert not missing and len(wanted) == 60
