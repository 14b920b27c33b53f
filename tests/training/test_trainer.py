"""The curriculum trainer on tiny synthetic shards: chaining, loss, resume, errors, self-training, eval."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting import Sample, write_samples
from tracklift.models import ModelConfig, Segmenter, load_checkpoint, read_checkpoint, save_checkpoint
from tracklift.structures import Instances
from tracklift.training import (
    StageConfig,
    TrainConfig,
    add_pseudo_instances,
    checkpoint_url,
    evaluate_checkpoint,
    train_curriculum,
    train_stage,
)
from tracklift.training.trainer import init_from

torch.set_num_threads(1)

CENTERS = [(0.0, 0.0, 0.0), (1.6, 0.0, 0.0), (0.0, 1.6, 0.0), (1.6, 1.6, 0.6)]


def make_sample(stage: int, seed: int, n_boxes: int = 3, scene_id: str = "s0") -> Sample:
    pts, cols, ids = boxes_scene(50, seed=seed, centers=CENTERS[:n_boxes])
    return Sample(pts, cols, ids, scene_id, stage, (seed,) if stage < 3 else ())


def write_shards(labels: str, stages=(1, 2, 3)) -> None:
    for stage in stages:
        samples = [make_sample(stage, seed, n_boxes=2 + seed % 3) for seed in range(4 if stage < 3 else 1)]
        write_samples(storage.join(labels, "shards", f"stage{stage}", "s0.npz"), samples)


def config(tmp_path, stages, **kw) -> TrainConfig:
    return TrainConfig(
        labels=str(tmp_path / "labels"),
        out=str(tmp_path / kw.pop("out", "out")),
        model="tiny",
        model_overrides={"voxel_size": 0.1},
        stages=stages,
        log_every=0,
        **kw,
    )


def state(url: str) -> dict[str, torch.Tensor]:
    return read_checkpoint(url)[0]["state_dict"]


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a if a[k].is_floating_point()))


def test_curriculum_chains_three_stages(tmp_path):
    write_shards(str(tmp_path / "labels"))
    # Different seeds per stage: a stage that ignored its init would land near its own fresh init.
    stages = [StageConfig(stage=s, epochs=1, lr=1e-3, batch_size=2, seed=10 * s) for s in (1, 2, 3)]
    cfg = config(tmp_path, stages)
    urls = train_curriculum(cfg)
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


def test_loss_falls_within_a_stage(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    cfg = config(tmp_path, [StageConfig(stage=1, epochs=6, lr=2e-3, batch_size=2)])
    url = train_stage(cfg, cfg.stages[0], None)
    losses = [h["loss"] for h in read_checkpoint(url)[0]["extra"]["history"]]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_continues_an_interrupted_stage_and_skips_a_finished_one(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    one = StageConfig(stage=1, epochs=1, lr=1e-3, batch_size=3, max_points=120)
    two = dataclasses.replace(one, epochs=2)
    cfg = config(tmp_path, [one])
    url = train_stage(cfg, one)
    first = read_checkpoint(url)[0]["extra"]["history"]
    assert [h["epoch"] for h in first] == [1]

    assert train_stage(cfg, two) == url  # "interrupted" after epoch 1 of 2: resumes at epoch 2
    extra = read_checkpoint(url)[0]["extra"]
    assert extra["epoch"] == 2 and [h["epoch"] for h in extra["history"]] == [1, 2]
    assert extra["history"][0] == first[0]

    # Same result as an uninterrupted two-epoch run (optimizer state and RNG streams are resumed).
    straight = train_stage(config(tmp_path, [two], out="straight"), two)
    a, b = state(url), state(straight)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)

    before = storage.read_bytes(url)
    train_stage(cfg, two)  # finished: skipped, checkpoint untouched
    assert storage.read_bytes(url) == before


def test_missing_stage_folder_is_a_data_error(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    cfg = config(tmp_path, [StageConfig(stage=1, epochs=1), StageConfig(stage=2, epochs=1)])
    with pytest.raises(DataError, match="stage2") as e:
        train_stage(cfg, cfg.stages[1])
    assert "shard folder" in str(e.value)


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1, 2))
    cfg = config(tmp_path, [StageConfig(stage=1, epochs=1)])
    url = train_stage(cfg, cfg.stages[0])
    storage.write_bytes(checkpoint_url(cfg.out, 2), storage.read_bytes(url))
    with pytest.raises(DataError, match="stage 1"):
        train_stage(cfg, StageConfig(stage=2, epochs=1))


def test_init_from_copies_shared_queries_when_the_count_changes(tmp_path):
    torch.manual_seed(0)
    old = Segmenter.from_config(ModelConfig.preset("tiny"))
    url = str(tmp_path / "old.pt")
    save_checkpoint(old, url)
    cfg = ModelConfig.preset("tiny")
    new = Segmenter.from_config(
        dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, num_queries=5))
    )
    init_from(new, url)
    assert torch.equal(new.decoder.query_feat.weight, old.decoder.query_feat.weight[:5])
    assert torch.equal(new.backbone.stem.conv.weight, old.backbone.stem.conv.weight)
    wider = Segmenter.from_config(ModelConfig.preset("small"))
    with pytest.raises(DataError, match="another architecture"):
        init_from(wider, url)


class FixedPredictor:
    """Stands in for a model: returns the same predictions for every cloud."""

    def __init__(self, masks, scores):
        self.inst = Instances(np.asarray(masks, bool), np.asarray(scores, float))

    def predict(self, points, colors):
        return self.inst


def test_self_training_adds_confident_masks_on_unlabelled_points():
    ids = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = Sample(np.random.default_rng(0).random((8, 3)), np.zeros((8, 3)), ids, "a", 3)
    masks = [
        [0, 0, 0, 1, 1, 0, 0, 0],  # unlabelled, confident: added as id 2
        [1, 1, 1, 0, 0, 0, 0, 0],  # re-describes instance 1: not added
        [0, 0, 0, 0, 1, 1, 1, 0],  # mostly unlabelled: added on points 5, 6 (4 went to the better mask)
        [0, 0, 0, 0, 0, 0, 0, 1],  # below the threshold
    ]
    model = FixedPredictor(masks, [0.9, 0.95, 0.7, 0.5])
    (out,), added = add_pseudo_instances(model, [s], threshold=0.6, max_pseudo=150, min_unlabelled=0.5)
    assert added == 2
    assert out.instance.tolist() == [1, 1, 1, 2, 2, 3, 3, 0]
    assert s.instance.tolist() == ids.tolist()  # the input sample is not modified
    (capped,), added = add_pseudo_instances(model, [s], threshold=0.6, max_pseudo=1, min_unlabelled=0.5)
    assert added == 1 and capped.instance.tolist() == [1, 1, 1, 2, 2, 0, 0, 0]


def test_self_training_stage_uses_the_stage_2_teacher(tmp_path):
    labels = str(tmp_path / "labels")
    write_shards(labels, stages=(2,))
    unlabelled = make_sample(3, 5, n_boxes=4)
    unlabelled.instance[unlabelled.instance >= 3] = 0  # two boxes the lifting missed
    write_samples(storage.join(labels, "shards", "stage3", "s0.npz"), [unlabelled])
    stages = [StageConfig(stage=2, epochs=1, lr=1e-3), StageConfig(stage=3, epochs=1, lr=1e-3)]
    cfg = config(tmp_path, stages, self_train=True, self_train_threshold=0.0)
    urls = train_curriculum(cfg)
    history = read_checkpoint(urls[3])[0]["extra"]["history"]
    teacher = load_checkpoint(urls[2])
    _, expected = add_pseudo_instances(teacher, [unlabelled], 0.0, 150, cfg.self_train_unlabelled)
    assert expected > 0 and history[0]["pseudo_instances"] == expected
    assert np.isfinite(history[0]["loss"])


def test_evaluate_checkpoint_scores_against_gt(tmp_path):
    labels = str(tmp_path / "labels")
    pts, cols, ids = boxes_scene(120, centers=CENTERS[:2])  # GT instances need >= 100 points to count
    sample = Sample(pts, cols, ids, "s0", 3)
    write_samples(storage.join(labels, "shards", "stage3", "s0.npz"), [sample])
    cfg = config(tmp_path, [StageConfig(stage=3, epochs=1)])
    url = train_stage(cfg, cfg.stages[0])
    gt = np.where(ids > 0, 1000 + ids, 0)  # ScanNet encoding label * 1000 + inst
    result = evaluate_checkpoint(url, labels, gt={"s0": gt})
    assert set(result.predictions) == {"s0"} and result.predictions["s0"].num_points == len(sample)
    assert result.metrics["num_gt"] == 2 and 0.0 <= result.metrics["AP25"] <= 1.0
    assert evaluate_checkpoint(url, [sample]).metrics is None
    with pytest.raises(DataError, match="s0"):
        evaluate_checkpoint(url, [sample], gt={"s0": gt[:-1]})


def test_points_outside_the_scan_are_neither_trained_on_nor_predicted():
    """Stage-3 vertices marked -1 (never seen by the scan) are cropped away before the network sees them."""
    from tracklift.training.trainer import predict_sample, subsample

    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny", voxel_size=0.1)).eval()
    s = make_sample(3, seed=1, n_boxes=3)
    outside = np.zeros(len(s), dtype=bool)
    outside[::3] = True
    ids = np.where(outside, -1, s.instance)
    marked = Sample(s.points, s.colors, ids, s.scene_id, 3, ())
    pred = predict_sample(model, marked)
    assert pred.masks.shape[1] == len(s)
    assert not pred.masks[:, outside].any()
    inside = model.predict(s.points[~outside], s.colors[~outside])
    np.testing.assert_array_equal(pred.masks[:, ~outside], inside.masks)
    np.testing.assert_array_equal(pred.scores, inside.scores)
    # training never sees a -1 point, subsampled or not
    rng = np.random.default_rng(0)
    for max_points in (None, 50):
        part = subsample(marked, max_points, rng)
        assert (part.instance >= 0).all() and len(part) == min(int((~outside).sum()), max_points or len(s))
