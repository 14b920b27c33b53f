"""Superpoint decoding: segmentator on clouds, batch numbering, pooling, the decoder, the whole segmenter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tracklift.evaluation import APAccumulator
from tracklift.models import ModelConfig, PointBatch, Segmenter
from tracklift.models.config import SuperpointConfig
from tracklift.models.superpoint_decoder import SuperpointDecoder, farthest_point_order
from tracklift.models.superpoints import batch_superpoints, cloud_superpoints, input_stats, pool_superpoints


def tiny_sp(**overrides) -> Segmenter:
    torch.manual_seed(0)
    return Segmenter.from_config(
        ModelConfig.preset("tiny", voxel_size=0.1, decoder_level="superpoint", **overrides)
    )


def two_planes(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A floor (z = 0) and a wall (x = 0) meeting at 90°, 1.5 m each; label 0 floor, 1 wall."""
    rng = np.random.default_rng(seed)
    floor = np.column_stack([rng.uniform(0.05, 1.5, n), rng.uniform(0, 1.5, n), np.zeros(n)])
    wall = np.column_stack([np.zeros(n), rng.uniform(0, 1.5, n), rng.uniform(0.05, 1.5, n)])
    return np.concatenate([floor, wall]).astype(np.float32), np.repeat([0, 1], n)


def test_cloud_superpoints_split_perpendicular_planes():
    pts, side = two_planes()
    sp = cloud_superpoints(pts, SuperpointConfig(voxel_size=0.05))
    assert sp.shape == (len(pts),) and sp.dtype == np.int64 and sp.min() == 0
    assert len(np.unique(sp)) >= 2
    # Superpoints do not straddle the crease: each is (almost) all floor or all wall.
    for s in np.unique(sp):
        share = side[sp == s].mean()
        assert min(share, 1 - share) < 0.05, (s, share)


def test_batch_superpoints_numbers_scenes_and_computes_missing_ones():
    pts, _ = two_planes(400)
    coord = torch.as_tensor(np.concatenate([pts, pts + 5.0]))
    n = len(pts)
    given = torch.cat([torch.as_tensor(np.repeat([7, 3, 9, 3], n // 4)), torch.full((n,), -1)])
    sp = batch_superpoints(coord, [slice(0, n), slice(n, 2 * n)], given, SuperpointConfig(voxel_size=0.05))
    k0 = int(sp.offsets[1])
    assert k0 == 3  # ids 3, 7, 9 renumbered 0..2 in increasing order
    assert sp.ids[: n // 4].unique().tolist() == [1] and sp.ids[n // 4 : n // 2].unique().tolist() == [0]
    second = sp.scene_ids(1, slice(n, 2 * n))
    assert int(second.min()) == 0 and int(sp.offsets[2]) == k0 + int(second.max()) + 1
    assert sp.positions.shape == (sp.num_superpoints, 3)
    assert float(sp.positions.min()) >= 0.0 and float(sp.positions.max()) <= 1.0
    assert int(sp.counts().sum()) == 2 * n


def test_pool_is_mean_and_max_per_superpoint():
    coord = torch.rand(50, 3)
    ids = torch.randint(0, 6, (50,))
    ids[:6] = torch.arange(6)  # every id present
    sp = batch_superpoints(coord, [slice(0, 50)], ids, SuperpointConfig())
    feats = torch.randn(50, 4)
    pooled = pool_superpoints(feats, sp)
    for s in range(6):
        rows = feats[sp.ids == s]
        torch.testing.assert_close(pooled[s], torch.cat([rows.mean(0), rows.amax(0)]))


def test_input_stats_are_mean_and_std_per_superpoint():
    coord = torch.rand(50, 3)
    ids = torch.randint(0, 6, (50,))
    ids[:6] = torch.arange(6)
    ids[6] = 5
    sp = batch_superpoints(coord, [slice(0, 50)], ids, SuperpointConfig())
    feats = torch.randn(50, 6, dtype=torch.float64)
    stats = input_stats(feats, sp)
    assert stats.shape == (6, 12)
    for s in range(6):
        rows = feats[sp.ids == s]
        torch.testing.assert_close(stats[s], torch.cat([rows.mean(0), rows.std(0, unbiased=False)]))


def test_superpoint_stats_tell_apart_superpoints_that_share_voxels():
    """Two interleaved superpoints in the same voxels (a small object against its neighbour at 8 cm) pool
    the same backbone features; with ``superpoint_stats`` their colours still tell them apart."""
    from tracklift.errors import DataError
    from tracklift.models.checkpoint import load_weights, read_checkpoint, save_checkpoint

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 0.3, (400, 3)).astype(np.float32)
    sp = np.arange(400) % 2  # interleaved: every voxel holds both
    cols = np.where(sp[:, None] == 0, [0.9, 0.1, 0.1], [0.1, 0.1, 0.9]).astype(np.float32)
    batch = PointBatch.from_arrays(pts, cols, superpoints=sp)

    def pooled(model):
        with torch.no_grad():
            vox = model.voxelize(batch)
            return model.pool(model.backbone(vox.tensor), vox)

    plain, stats = tiny_sp(), tiny_sp(superpoint_stats=True)
    a, b = pooled(plain.eval()), pooled(stats.eval())
    assert b.shape[1] == a.shape[1] + 2 * plain.config.in_channels
    assert stats.decoder.input_proj[0].in_features == b.shape[1]
    width = a.shape[1]
    # the mean of the backbone features differs by little (the points' voxel shares), the colour a lot
    assert float((b[0, width:] - b[1, width:]).abs().max()) > 1.0
    assert float((a[0, : width // 2] - a[1, : width // 2]).abs().max()) < 0.5 * float(
        (b[0, width:] - b[1, width:]).abs().max()
    )
    # it trains end to end and its checkpoint loads back; a model without the statistics is refused
    losses = stats.train()(PointBatch.from_arrays(pts, cols, sp + 1, superpoints=sp))
    sum(losses.values()).backward()
    assert stats.decoder.input_proj[0].weight.grad[:, width:].abs().sum() > 0
    save_checkpoint(stats, "memory://sp_stats.pt")
    assert read_checkpoint("memory://sp_stats.pt")[1].superpoint_stats
    load_weights(tiny_sp(superpoint_stats=True), "memory://sp_stats.pt")
    with pytest.raises(DataError, match="superpoint_stats"):
        load_weights(tiny_sp(), "memory://sp_stats.pt")
    # the point decoder ignores it: a preset that sets it can switch to point decoding
    point = Segmenter.from_config(ModelConfig.preset("default", decoder_level="point"))
    assert not point.superpoint_stats and point.predict(pts, cols).num_points == len(pts)


def test_farthest_point_order_spreads_and_caps():
    xyz = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0], [0.5, 0, 0]])
    assert farthest_point_order(xyz, 3).tolist() == [0, 2, 3]
    assert farthest_point_order(xyz, 10).numel() == 4


def test_decoder_shapes_fewer_superpoints_than_queries_and_eval_determinism():
    torch.manual_seed(0)
    dec = SuperpointDecoder(8, hidden_dim=16, num_queries=6, num_heads=2, ffn_dim=32, num_layers=2)
    coord = torch.rand(300, 3)
    ids = torch.cat([torch.randint(0, 4, (100,)), torch.randint(0, 20, (200,))])  # 4 and 20 superpoints
    ids[:4] = torch.arange(4)
    ids[100:120] = torch.arange(20)
    sp = batch_superpoints(coord, [slice(0, 100), slice(100, 300)], ids, SuperpointConfig())
    pooled = torch.randn(sp.num_superpoints, 16)
    out = dec(pooled, sp)
    assert out.num_stages == 3 and out.objectness[-1].shape == (2, 6)
    assert [m.shape for m in out.mask_logits[-1]] == [(6, 4), (6, 20)]
    dec.eval()
    a, b = dec(pooled, sp, all_stages=False), dec(pooled, sp, all_stages=False)
    assert a.num_stages == 1 and torch.equal(a.objectness[0], b.objectness[0])
    # The copies of a superpoint seeding several queries differ through the per-slot embedding.
    assert len(torch.unique(a.objectness[0][0])) == 6


def test_training_output_and_masks_constant_on_superpoints():
    model = tiny_sp()
    pts, cols, ids = boxes_scene(60)
    sp = np.arange(len(pts)) // 20  # given superpoints: 12 per box, none crossing a box
    batch = PointBatch.from_arrays(pts, cols, ids, superpoints=sp)
    losses = model.train()(batch)
    stages = model.config.decoder.num_layers + 1
    names = {"loss_mask", "loss_dice", "loss_objectness"}
    assert set(losses) == names | {f"{n}_{i}" for n in names for i in range(stages - 1)}
    sum(losses.values()).backward()
    assert model.backbone.stem.conv.weight.grad.abs().sum() > 0
    out = model.eval()(batch)
    assert out.decoder.mask_logits[-1][0].shape == (8, len(np.unique(sp)))
    inst = model.predict(pts, cols, superpoints=sp)
    for s in np.unique(sp):  # a superpoint is wholly in or out of each mask
        col = inst.masks[:, sp == s]
        assert np.all(col.all(1) | ~col.any(1))
    # Without superpoints the segmentator supplies them inside predict.
    assert model.predict(pts, cols).num_points == len(pts)
    with pytest.raises(ValueError, match="superpoint"):
        model.predict(pts, cols, superpoints=sp[:-1])
    with pytest.raises(ValueError, match="negative"):
        model.predict(pts, cols, superpoints=np.where(sp == 3, -2, sp))


def test_equal_unit_weights_reach_the_mask_losses():
    """``LossConfig.mask_unit_weight="equal"`` reaches the losses: the same weights and batch give another
    mask BCE when the superpoints differ in size (each weighs the same instead of its point count)."""
    from tracklift.models.config import LossConfig

    pts, cols, ids = boxes_scene(60)
    sp = np.arange(len(pts)) // 20
    sp[: len(pts) // 2] = sp[: len(pts) // 2] // 6 * 6  # superpoints of very different sizes
    batch = PointBatch.from_arrays(pts, cols, ids, superpoints=sp)
    points, equal = tiny_sp(), tiny_sp(loss=LossConfig(mask_unit_weight="equal"))
    equal.load_state_dict(points.state_dict())
    torch.manual_seed(1)
    by_points = {k: float(v) for k, v in points.eval().losses(points.run(batch), batch).items()}
    torch.manual_seed(1)
    by_units = {k: float(v) for k, v in equal.eval().losses(equal.run(batch), batch).items()}
    assert by_points.keys() == by_units.keys()
    assert abs(by_points["loss_mask"] - by_units["loss_mask"]) > 1e-4
    with pytest.raises(ValueError, match="mask_unit_weight"):
        tiny_sp(loss=LossConfig(mask_unit_weight="voxels"))


def test_collate_mixes_clouds_with_and_without_superpoints():
    pts, cols, _ = boxes_scene(10)
    batch = PointBatch.collate(
        [{"points": pts, "colors": cols, "superpoints": np.arange(len(pts))}, {"points": pts, "colors": cols}]
    )
    assert batch.superpoints[: len(pts)].tolist() == list(range(len(pts)))
    assert bool((batch.superpoints[len(pts) :] == -1).all())
    out = tiny_sp().eval()(batch)
    assert out.decoder.mask_logits[-1][0].shape[1] == len(pts)


def test_overfit_separable_boxes_with_superpoint_decoding():
    model = tiny_sp().train()
    pts, cols, ids = boxes_scene(300)
    sp = cloud_superpoints(pts)
    batch = PointBatch.from_arrays(pts, cols, ids, superpoints=sp)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(80):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert np.mean(history[-3:]) < 0.2 * np.mean(history[:3]), history
    inst = model.predict(pts, cols)  # superpoints from the segmentator, as a user's cloud gets them
    assert model.training
    assert len(inst) <= 6
    acc = APAccumulator("all_annotated")
    acc.add("boxes", inst, np.where(ids > 0, 3000 + ids, 0))
    assert acc.result()["AP50"] == 1.0


def test_default_preset_is_superpoint_level_and_small_stays_point_level():
    assert ModelConfig.preset("default").decoder_level == "superpoint"
    assert ModelConfig.preset("small").decoder_level == "point"
    with pytest.raises(ValueError, match="decoder_level"):
        ModelConfig.preset("tiny", decoder_level="voxel")


def test_public_phases_give_what_predict_gives():
    """Serving runs voxelize → forward_voxels → postprocess itself: the superpoints travel with the
    voxelization, so the phases and predict agree."""
    from tracklift.models import SegmenterOutput

    model = tiny_sp().eval()
    pts, cols, _ = boxes_scene(60)
    direct = model.predict(pts, cols)
    with torch.no_grad():
        batch = PointBatch.from_arrays(pts, cols)
        vox = model.voxelize(batch)
        assert vox.superpoints is not None
        phased = model.postprocess(SegmenterOutput(model.forward_voxels(vox, all_stages=False), vox), batch)[
            0
        ]
    assert np.array_equal(direct.masks, phased.masks) and np.allclose(direct.scores, phased.scores)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_superpoint_predict_on_cuda_matches_cpu():
    model = tiny_sp().eval()
    pts, cols, _ = boxes_scene(50)
    cpu = model.predict(pts, cols)
    gpu = model.to("cuda").predict(pts, cols)
    np.testing.assert_allclose(cpu.scores, gpu.scores, rtol=1e-3, atol=1e-4)


def test_two_point_clouds_train_and_predict_at_superpoint_level():
    model = tiny_sp().train()
    near = np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]])  # one voxel, one superpoint
    losses = model(PointBatch.from_arrays(near, np.zeros((2, 3), np.uint8), [1, 1]))
    assert all(torch.isfinite(v) for v in losses.values())
    far = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    assert model.predict(far, np.zeros((2, 3), np.uint8)).num_points == 2
