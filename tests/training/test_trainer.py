"""The one-process curriculum trainer on tiny synthetic shards: chaining, loss, resume, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.training.samples import config, distance, state, write_shards
from tracklift import storage
from tracklift.errors import ConfigError, DataError
from tracklift.models import ModelConfig, Segmenter, read_checkpoint
from tracklift.training import StageConfig, checkpoint_url, train_curriculum, train_stage

torch.set_num_threads(1)


def test_curriculum_chains_three_stages(tmp_path):
    write_shards(str(tmp_path / "labels"))
    # Different seeds per stage: a stage that ignored its init would land near its own fresh init.
    stages = [StageConfig(stage=s, epochs=1, lr=1e-3, batch_size=2, seed=10 * s) for s in (1, 2, 3)]
    cfg = config(tmp_path)
    urls = train_curriculum(cfg, stages)
    assert urls == {s: checkpoint_url(cfg.out, s) for s in (1, 2, 3)}
    for s in (1, 2, 3):
        extra = read_checkpoint(urls[s])[0]["extra"]
        assert extra["stage"] == s and extra["epoch"] == 1 and len(extra["history"]) == 1
        assert extra["init"] == (urls[s - 1] if s > 1 else None)
    for s in (2, 3):
        torch.manual_seed(10 * s)
        fresh = Segmenter.from_config(ModelConfig.preset("tiny", voxel_size=0.1)).state_dict()
        mine, prev = state(urls[s]), state(urls[s - 1])
        assert distance(mine, prev) < 0.1 * distance(mine, fresh)


def test_a_stage_of_zero_epochs_is_skipped_and_the_next_starts_from_the_last_trained(tmp_path):
    write_shards(str(tmp_path / "labels"))
    cfg = config(tmp_path)
    stages = [StageConfig(stage=s, epochs=e, lr=1e-3, batch_size=2) for s, e in ((1, 1), (2, 0), (3, 1))]
    urls = train_curriculum(cfg, stages)
    assert urls == {1: checkpoint_url(cfg.out, 1), 3: checkpoint_url(cfg.out, 3)}
    assert not storage.exists(checkpoint_url(cfg.out, 2))
    assert read_checkpoint(urls[3])[0]["extra"]["init"] == urls[1]
    # without a first stage the second starts fresh
    cfg = config(tmp_path / "b")
    write_shards(str(tmp_path / "b" / "labels"))
    urls = train_curriculum(
        cfg, [StageConfig(stage=1, epochs=0), StageConfig(stage=2, epochs=1, batch_size=2)]
    )
    assert list(urls) == [2] and read_checkpoint(urls[2])[0]["extra"]["init"] is None
    # trained on its own, such a stage is refused before it hands on a checkpoint it never wrote
    with pytest.raises(ConfigError, match="stage 2 has 0 epochs"):
        train_stage(cfg, StageConfig(stage=2, epochs=0), urls[2])


def test_loss_falls_within_a_stage(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    cfg = config(tmp_path)
    url = train_stage(cfg, StageConfig(stage=1, epochs=6, lr=2e-3, batch_size=2), None)
    losses = [h["loss"] for h in read_checkpoint(url)[0]["extra"]["history"]]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_continues_an_interrupted_stage_and_skips_a_finished_one(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    one = StageConfig(stage=1, epochs=1, lr=1e-3, batch_size=3, max_points=120)
    two = dataclasses.replace(one, epochs=2)
    cfg = config(tmp_path)
    url = train_stage(cfg, one)
    first = read_checkpoint(url)[0]["extra"]["history"]
    assert [h["epoch"] for h in first] == [1]

    assert train_stage(cfg, two) == url  # "interrupted" after epoch 1 of 2: resumes at epoch 2
    extra = read_checkpoint(url)[0]["extra"]
    assert extra["epoch"] == 2 and [h["epoch"] for h in extra["history"]] == [1, 2]
    assert extra["history"][0] == first[0]

    # Same result as an uninterrupted two-epoch run (optimizer state and RNG streams are resumed).
    straight = train_stage(config(tmp_path, out="straight"), two)
    a, b = state(url), state(straight)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)

    before = storage.read_bytes(url)
    train_stage(cfg, two)  # finished: skipped, checkpoint untouched
    assert storage.read_bytes(url) == before


def test_missing_stage_folder_is_a_data_error(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    cfg = config(tmp_path)
    with pytest.raises(DataError, match="stage2") as e:
        train_stage(cfg, StageConfig(stage=2, epochs=1))
    assert "shard folder" in str(e.value)


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1, 2))
    cfg = config(tmp_path)
    url = train_stage(cfg, StageConfig(stage=1, epochs=1))
    storage.write_bytes(checkpoint_url(cfg.out, 2), storage.read_bytes(url))
    with pytest.raises(DataError, match="stage 1"):
        train_stage(cfg, StageConfig(stage=2, epochs=1))
