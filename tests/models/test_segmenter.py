"""The Segmenter end to end: loss dict, training on tiny scenes, predict, inference post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tracklift.evaluation import APAccumulator
from tracklift.lifting.samples import Sample
from tracklift.models import ModelConfig, PointBatch, Segmenter, SegmenterOutput
from tracklift.models.config import InferenceConfig
from tracklift.models.inference import scene_instances


def tiny(**overrides) -> Segmenter:
    torch.manual_seed(0)
    return Segmenter.from_config(ModelConfig.preset("tiny", voxel_size=0.1, **overrides))


def best_ious(inst, ids) -> list[float]:
    out = []
    for g in np.unique(ids[ids != 0]):
        gt = ids == g
        inter = (inst.masks & gt).sum(1)
        union = (inst.masks | gt).sum(1)
        out.append(float((inter / np.maximum(union, 1)).max()) if len(inst) else 0.0)
    return out


def test_loss_dict_in_training_and_raw_output_in_eval():
    model = tiny()
    pts, cols, ids = boxes_scene(60)
    pts2, cols2, ids2 = boxes_scene(40, seed=1, centers=[(0, 0, 0), (2, 0, 0)])
    batch = PointBatch.collate(
        [Sample(pts, cols, ids, "a", 1), {"points": pts2, "colors": cols2, "instance": ids2}]
    )
    losses = model.train()(batch)
    stages = model.config.decoder.num_layers + 1
    names = {"loss_mask", "loss_dice", "loss_objectness"}
    expect = names | {f"{n}_{i}" for n in names for i in range(stages - 1)}
    assert set(losses) == expect
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.decoder.query_feat.weight.grad is not None
    assert model.backbone.stem.conv.weight.grad.abs().sum() > 0

    out = model.eval()(batch)
    assert isinstance(out, SegmenterOutput)
    q = model.config.decoder.num_queries
    assert out.decoder.num_stages == stages
    assert out.decoder.objectness[-1].shape == (2, q)
    vo = out.voxels.tensor.batch_offsets()
    for b in range(2):
        assert out.decoder.mask_logits[-1][b].shape == (q, int(vo[b + 1] - vo[b]))
        p2v = out.scene_point2voxel(b, batch)
        assert int(p2v.min()) >= 0 and int(p2v.max()) < int(vo[b + 1] - vo[b])


def test_loss_falls_over_30_adam_steps():
    model = tiny().train()
    pts, cols, ids = boxes_scene(80)
    ids[::7] = 0  # some unlabelled points
    batch = PointBatch.from_arrays(pts, cols, ids)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    history = []
    for _ in range(30):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert np.mean(history[-3:]) < 0.5 * np.mean(history[:3]), history


def test_overfit_separable_boxes_finds_every_instance():
    model = tiny().train()
    pts, cols, ids = boxes_scene(300)
    batch = PointBatch.from_arrays(pts, cols, ids)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    inst = model.predict(pts, cols)
    assert model.training  # predict restores the mode
    assert inst.num_points == len(pts) and inst.masks.dtype == bool
    assert np.all(np.diff(inst.scores) <= 0) and np.all((inst.scores >= 0) & (inst.scores <= 1))
    ious = best_ious(inst, ids)
    assert min(ious) > 0.5, ious
    assert len(inst) <= 6  # duplicates removed, no spray of extra masks
    # scored like a benchmark: the ScanNet protocol gives AP50 = 1.0 on this trivially separable scene
    acc = APAccumulator("all_annotated")
    acc.add("boxes", inst, np.where(ids > 0, 3000 + ids, 0))  # encode as ScanNet ids of one annotated class
    assert acc.result()["AP50"] == 1.0


def test_a_cloud_over_the_voxel_limit_is_refused_with_the_reason():
    model = tiny(inference=InferenceConfig(max_voxels=500))
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 20, size=(2000, 3))  # 0.1 m voxels: ~2000 distinct voxels
    with pytest.raises(ValueError, match=r"2000 points occupy \d+ voxels .*max_voxels=500; crop"):
        model.predict(pts, np.zeros((2000, 3), np.uint8))
    small = rng.uniform(0, 0.5, size=(2000, 3))  # 125 voxels at most: fine
    assert model.predict(small, np.zeros((2000, 3), np.uint8)).num_points == 2000


@pytest.mark.parametrize(
    "points, colors, match",
    [
        (np.zeros((0, 3)), np.zeros((0, 3), np.uint8), "at least 2 points"),
        (np.zeros((1, 3)), np.zeros((1, 3), np.uint8), "at least 2 points"),
        (np.array([[0, 0, 0], [np.nan, 1, 1], [1, 1, 1]]), np.zeros((3, 3), np.uint8), "NaN"),
        (np.array([[0, 0, 0], [np.inf, 1, 1]]), np.zeros((2, 3), np.uint8), "infinite"),
        (np.zeros((3, 3)), np.zeros((2, 3), np.uint8), "colors"),
        (np.zeros((2, 3)), np.full((2, 3), 200.0), r"\[0, 1\]"),
        (np.zeros((2, 2)), np.zeros((2, 3), np.uint8), r"\(N, 3\)"),
    ],
)
def test_predict_rejects_bad_input(points, colors, match):
    with pytest.raises(ValueError, match=match):
        tiny().predict(points, colors)


def test_collate_rejects_mixed_targets():
    pts, cols, ids = boxes_scene(10)
    with pytest.raises(ValueError, match="instance"):
        PointBatch.collate(
            [{"points": pts, "colors": cols, "instance": ids}, {"points": pts, "colors": cols}]
        )


def test_scene_instances_scores_thresholds_and_duplicates():
    # 3 voxels holding 1, 2 and 3 points; queries 0 and 1 predict the same mask, query 2 another.
    p2v = torch.tensor([0, 1, 1, 2, 2, 2])
    logits = torch.tensor([[5.0, 5.0, -5.0], [4.0, 4.0, -4.0], [-5.0, -5.0, 3.0], [-9.0, -9.0, -9.0]])
    obj = torch.tensor([3.0, 2.0, 1.0, 5.0])
    inst = scene_instances(logits, obj, p2v, InferenceConfig(score_threshold=0.05, nms_iou=0.5))
    assert len(inst) == 2  # the duplicate and the empty mask are gone
    assert inst.masks.tolist() == [[True, True, True, False, False, False], [False] * 3 + [True] * 3]
    want0 = torch.sigmoid(torch.tensor(3.0)) * torch.sigmoid(torch.tensor(5.0))
    np.testing.assert_allclose(inst.scores[0], float(want0), rtol=1e-5)
    none = scene_instances(logits, obj, p2v, InferenceConfig(score_threshold=0.99))
    assert len(none) == 0 and none.num_points == 6
    keep_all = scene_instances(logits, obj, p2v, InferenceConfig(score_threshold=0.0, nms_iou=1.0))
    assert len(keep_all) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_matches_cpu():
    model = tiny().eval()
    pts, cols, _ = boxes_scene(50)
    cpu = model.predict(pts, cols)
    gpu = model.to("cuda").predict(pts, cols)
    np.testing.assert_allclose(cpu.scores, gpu.scores, rtol=1e-3, atol=1e-4)


def test_training_on_a_two_point_cloud_works():
    # Both points in one voxel: every level has a single voxel, where batch statistics are undefined.
    model = tiny().train()
    batch = PointBatch.from_arrays(
        np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]]), np.zeros((2, 3), np.uint8), [1, 1]
    )
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    inst = model.predict(np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]]), np.zeros((2, 3), np.uint8))
    assert inst.num_points == 2
