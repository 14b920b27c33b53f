"""The geometric mask tracker and the colour/depth helpers it shares with the weightless generator
(camera geometry and normals: tests/geometry)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from tracklift.datasets.scene import Intrinsics
from tracklift.errors import ConfigError, DataError
from tracklift.tracking.base import MaskTracker
from tracklift.tracking.geometric import GeometricConfig, GeometricTracker
from tracklift.tracking.rgbd import check_rgbd, rgb_to_lab

MIN_PIXELS = 300
STRUCTURE = {1, 3, 41}  # wall, floor, ceiling label ids (ScanNet200)


def _is_thing(gt_id: int) -> bool:
    return gt_id // 1000 not in STRUCTURE


@functools.lru_cache(maxsize=1)
def _scene():
    from tracklift.datasets.synthetic import SynthConfig, generate_scene

    return generate_scene(seed=11, cfg=SynthConfig.classic(width=320, height=240, n_frames=8))


def _gt_masks(frame, min_pixels: int = MIN_PIXELS) -> dict[int, np.ndarray]:
    ids = [int(i) for i in np.unique(frame.instance) if i != 0]
    return {i: frame.instance == i for i in ids if (frame.instance == i).sum() >= min_pixels}


def _iou(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None:
        return 0.0
    return float((a & b).sum() / max((a | b).sum(), 1))


@functools.lru_cache(maxsize=1)
def _forward_run():
    """GT instance masks seeded on frame 0, propagated over the 8 frames (shared by several tests)."""
    scene = _scene()
    tracker = GeometricTracker()
    state = tracker.start(scene.frames, scene.intrinsics)
    seeds = _gt_masks(scene.frames[0])
    tracker.add_masks(state, 0, seeds)
    out = dict(tracker.propagate(state, start=0))
    tracker.close(state)
    return seeds, out


def test_is_a_mask_tracker():
    assert isinstance(GeometricTracker(), MaskTracker)


def test_reproduces_ground_truth_masks_five_frames_later():
    seeds, out = _forward_run()
    assert sorted(out) == list(range(8))
    gt5 = _scene().frames[5].instance
    ious = [_iou(out[5].get(i), gt5 == i) for i in seeds if (gt5 == i).sum() >= MIN_PIXELS]
    assert len(ious) >= 5
    # measured: median 0.88, mean 0.83 (walls lose some IoU to wall area first seen after frame 0)
    assert np.median(ious) > 0.8 and np.mean(ious) > 0.75
    # on the seed frame the seeds come back
    for i, m in seeds.items():
        assert np.array_equal(out[0][i], m) or _iou(out[0][i], m) > 0.95


def test_masks_of_different_objects_never_overlap():
    _, out = _forward_run()
    for pos, masks in out.items():
        if masks:
            count = np.sum([m.astype(np.int32) for m in masks.values()], axis=0)
            assert count.max() <= 1, f"overlap on frame {pos}"
        for m in masks.values():
            assert m.dtype == bool and m.shape == (240, 320)
            assert m.sum() >= GeometricConfig().min_visible_pixels


def test_reverse_propagation():
    scene = _scene()
    tracker = GeometricTracker()
    state = tracker.start(scene.frames[:6], scene.intrinsics)
    seeds = _gt_masks(scene.frames[5])
    tracker.add_masks(state, 5, seeds)
    out = list(tracker.propagate(state, start=5, reverse=True))
    assert [p for p, _ in out] == [5, 4, 3, 2, 1, 0]
    gt0 = scene.frames[0].instance
    ious = [_iou(out[-1][1].get(i), gt0 == i) for i in seeds if (gt0 == i).sum() >= MIN_PIXELS]
    assert len(ious) >= 5 and np.median(ious) > 0.8
    # partial range
    assert [p for p, _ in tracker.propagate(state, start=4, end=2, reverse=True)] == [4, 3, 2]


def _occluded(frame, region: np.ndarray):
    """A copy of ``frame`` with a flat grey board 40 % nearer than the scene over ``region``."""
    f = dataclasses.replace(frame, color=frame.color.copy(), depth=frame.depth.copy())
    f.depth[region] = np.where(f.depth[region] > 0, f.depth[region] * 0.6, 1.0)
    f.color[region] = (90, 90, 90)
    return f


def test_occluded_object_is_absent_but_stays_alive():
    scene = _scene()
    f0, f1, f2 = scene.frames[0], scene.frames[1], scene.frames[2]
    seeds = _gt_masks(f0, 1000)
    target = max((i for i in seeds if _is_thing(i)), key=lambda i: seeds[i].sum())
    ys, xs = np.nonzero(f1.instance == target)
    box = np.zeros(f1.depth.shape, bool)
    box[max(ys.min() - 3, 0) : ys.max() + 4, max(xs.min() - 3, 0) : xs.max() + 4] = True
    frames = [f0, _occluded(f1, box), f2]
    tracker = GeometricTracker()
    state = tracker.start(frames, scene.intrinsics)
    tracker.add_masks(state, 0, {target: seeds[target]})
    out = dict(tracker.propagate(state, start=0))
    assert target not in out[1], "an object hidden behind a nearer surface was reported visible"
    assert _iou(out[2].get(target), f2.instance == target) > 0.75, "the object did not come back"


def test_object_out_of_view_is_absent():
    scene = _scene()
    f0 = scene.frames[0]
    turned = dataclasses.replace(scene.frames[1], pose=scene.frames[1].pose.copy())
    turned.pose[:3, :3] = turned.pose[:3, :3] @ np.diag([-1.0, 1.0, -1.0])  # look backwards
    tracker = GeometricTracker()
    state = tracker.start([f0, turned], scene.intrinsics)
    seeds = _gt_masks(f0, 1000)
    small = {i: m for i, m in seeds.items() if _is_thing(i)}  # walls and floor may be behind the camera too
    tracker.add_masks(state, 0, small)
    out = dict(tracker.propagate(state, start=0))
    assert set(out[1]).isdisjoint(small)


def test_add_masks_corrects_a_known_object():
    scene = _scene()
    f0 = scene.frames[0]
    seeds = _gt_masks(f0, 1000)
    target = max(seeds, key=lambda i: seeds[i].sum())
    tracker = GeometricTracker(GeometricConfig(fill_radius=0))  # no growth: only the points count
    state = tracker.start(scene.frames[:2], scene.intrinsics)
    tracker.add_masks(state, 0, {target: seeds[target]})
    n_full = state.voxel_count(target)
    half = seeds[target].copy()
    half[:, : int(np.median(np.nonzero(half)[1]))] = False
    tracker.add_masks(state, 0, {target: half})
    n_half = state.voxel_count(target)
    assert n_half < 0.75 * n_full
    out = dict(tracker.propagate(state, start=0))
    assert out[1][target].sum() < 0.8 * (scene.frames[1].instance == target).sum()


def test_seeds_win_and_are_made_disjoint():
    scene = _scene()
    f0 = scene.frames[0]
    a = np.zeros(f0.depth.shape, bool)
    a[50:150, 50:150] = True
    b = np.zeros_like(a)
    b[100:120, 100:120] = True
    tracker = GeometricTracker()
    state = tracker.start(scene.frames[:2], scene.intrinsics)
    tracker.add_masks(state, 0, {1: a, 2: b})
    out = dict(tracker.propagate(state, start=0, end=0))
    assert (out[0][2] == b).all()  # the smaller mask keeps the overlap
    assert not (out[0][1] & out[0][2]).any()


def test_free_restricts_the_prediction_to_the_free_pixels():
    """``free`` (the backward pass fills only gaps): nothing outside it is labelled, and inside it the
    prediction agrees with the unrestricted one."""
    scene = _scene()
    seeds = _gt_masks(scene.frames[0])
    tracker = GeometricTracker(GeometricConfig(accumulate=False))
    state = tracker.start(scene.frames, scene.intrinsics)
    tracker.add_masks(state, 0, seeds)
    full = tracker.predict_ids(state, 3)
    free = np.zeros(full.shape, bool)
    free[:, : full.shape[1] // 2] = True
    part = tracker.predict_ids(state, 3, free=free)
    tracker.close(state)
    assert (full[free] > 0).mean() > 0.5  # the free half holds objects to predict
    assert not part[~free].any()
    inside = free & (full > 0)
    assert (part[inside] == full[inside]).mean() > 0.9


def test_revisited_frames_stay_cached():
    """``start(revisit=n)`` keeps the derived arrays of the last ``n`` frames: the consistent tracker's
    backward pass over a keyframe segment computes no frame twice; the earliest frames go first."""
    scene = _scene()
    tracker = GeometricTracker(GeometricConfig(cache_frames=2))
    state = tracker.start(scene.frames, scene.intrinsics, revisit=4)
    tracker.add_masks(state, 0, _gt_masks(scene.frames[0]))
    for pos in range(1, 8):
        tracker.predict_ids(state, pos)
    assert sorted(state.cache) == [4, 5, 6, 7]
    kept = {p: state.cache[p] for p in state.cache}
    for pos in (6, 5, 4):  # back over the segment: no recomputation
        tracker.predict_ids(state, pos)
    assert all(state.cache[p] is kept[p] for p in kept)
    assert tracker.start(scene.frames, scene.intrinsics).cache_frames == 2
    tracker.close(state)


def test_errors():
    scene = _scene()
    tracker = GeometricTracker()
    state = tracker.start(scene.frames[:2], scene.intrinsics)
    with pytest.raises(DataError, match="mask of object 3"):
        tracker.add_masks(state, 0, {3: np.ones((10, 10), bool)})
    with pytest.raises(IndexError):
        next(tracker.propagate(state, start=5))
    tracker.close(state)
    with pytest.raises(RuntimeError):
        tracker.add_masks(state, 0, {})
    small = Intrinsics(100.0, 100.0, 31.5, 23.5, 64, 48)
    with pytest.raises(DataError, match="do not match"):
        tracker.start(scene.frames[:1], small)
    with pytest.raises(ConfigError):
        GeometricConfig(voxel=0.0)


# -- geometry helpers ---------------------------------------------------------------------------------


def test_rgb_to_lab_reference_values():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)


def test_check_rgbd_cleans_depth():
    color = np.zeros((2, 2, 3), np.uint8)
    depth = np.array([[1.0, np.nan], [-1.0, np.inf]])
    _, d = check_rgbd(color, depth)
    assert d.dtype == np.float32 and d.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_strided_labels_come_back_along_the_depth_edge():
    """Labels computed on every 4th pixel return to full size along the full image's depth edge, not as
    4-pixel blocks (a near box whose edge falls between working pixels)."""
    from tracklift.tracking.label_kernels import upsample_labels

    h, w, st = 24, 32, 4
    depth = np.full((h, w), 3.0, np.float32)
    depth[:, 13:] = 1.5  # the edge at column 13 lies between working columns 12 and 16
    color = np.zeros((h, w, 3), np.uint8)
    color[:, 13:] = 200
    truth = np.where(depth < 2.0, 2, 1).astype(np.int32)
    label_w = np.ascontiguousarray(truth[::st, ::st])
    up = upsample_labels(label_w, depth[::st, ::st], color[::st, ::st], depth, color, st, 0.03, 20.0)
    assert (up == truth).all()
    nearest = np.repeat(np.repeat(label_w, st, 0), st, 1)
    assert (nearest != truth).any()  # what the blocks would have given
    depth[5, 20] = 0  # a pixel without depth takes its nearest working pixel's label
    up = upsample_labels(label_w, depth[::st, ::st], color[::st, ::st], depth, color, st, 0.03, 20.0)
    assert up[5, 20] == label_w[round(5 / st), round(20 / st)]
