"""Tiny synthetic shards and configs shared by the training tests."""

from __future__ import annotations

import torch

from tests.models.scenes import boxes_scene
from tracklift import storage
from tracklift.lifting import Sample, write_samples
from tracklift.models import read_checkpoint
from tracklift.training import TrainConfig

CENTERS = [(0.0, 0.0, 0.0), (1.6, 0.0, 0.0), (0.0, 1.6, 0.0), (1.6, 1.6, 0.6)]


def make_sample(stage: int, seed: int, n_boxes: int = 3, scene_id: str = "s0") -> Sample:
    pts, cols, ids = boxes_scene(50, seed=seed, centers=CENTERS[:n_boxes])
    return Sample(pts, cols, ids, scene_id, stage, (seed,) if stage < 3 else ())


def write_shards(labels: str, stages=(1, 2, 3)) -> None:
    for stage in stages:
        samples = [make_sample(stage, seed, n_boxes=2 + seed % 3) for seed in range(4 if stage < 3 else 1)]
        write_samples(storage.join(labels, "shards", f"stage{stage}", "s0.npz"), samples)


def config(tmp_path, **kw) -> TrainConfig:
    """The tiny preset at 10 cm voxels on ``<tmp_path>/labels``, checkpoints in ``<tmp_path>/<out>``."""
    return TrainConfig(
        labels=str(tmp_path / "labels"),
        out=str(tmp_path / kw.pop("out", "out")),
        model="tiny",
        model_overrides={"voxel_size": 0.1},
        log_every=0,
        **kw,
    )


def state(url: str) -> dict[str, torch.Tensor]:
    return read_checkpoint(url)[0]["state_dict"]


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a if a[k].is_floating_point()))
