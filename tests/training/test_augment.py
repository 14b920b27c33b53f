"""Training augmentations: what each keeps (ids, distances, heights) and what it changes."""

import numpy as np
import pytest

from tracklift.training.augment import (
    AugmentConfig,
    augment,
    auto_contrast,
    color_jitter,
    elastic_distortion,
    random_crop,
    random_flip,
    random_rotate_z,
    random_scale,
)


def _cloud(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.uniform([0, 0, 0], [4, 3, 2], size=(n, 3)).astype(np.float32)
    colors = rng.integers(40, 200, size=(n, 3)).astype(np.uint8)
    # instances: x bands of 1 m (ids 1..4), a few unlabelled and outside-the-scan points
    labels = np.floor(points[:, 0]).astype(np.int64) + 1
    labels[:50], labels[50:80] = 0, -1
    superpoints = np.floor(points[:, 0] * 2).astype(np.int64) * 10 + np.floor(points[:, 1]).astype(np.int64)
    return points, colors, labels, superpoints


def test_rotation_keeps_heights_and_pairwise_distances():
    p, *_ = _cloud()
    q = random_rotate_z(p, np.random.default_rng(1), 180.0)
    assert np.allclose(q[:, 2], p[:, 2], atol=1e-5)
    i, j = np.arange(0, 100), np.arange(100, 200)
    assert np.allclose(np.linalg.norm(q[i] - q[j], axis=1), np.linalg.norm(p[i] - p[j], axis=1), atol=1e-4)
    assert not np.allclose(q, p, atol=1e-2)


def test_flip_mirrors_within_the_bounding_box():
    p, *_ = _cloud()
    rng = np.random.default_rng(3)
    flipped = [random_flip(p, rng) for _ in range(8)]
    assert any(not np.allclose(f, p) for f in flipped)
    for f in flipped:
        assert np.allclose(f.min(0), p.min(0), atol=1e-5) and np.allclose(f.max(0), p.max(0), atol=1e-5)
        assert np.allclose(f[:, 2], p[:, 2])


def test_scale_is_one_factor_in_range():
    p, *_ = _cloud()
    q = random_scale(p, np.random.default_rng(2), (0.8, 1.2))
    ratio = np.ptp(q, axis=0) / np.ptp(p, axis=0)
    assert np.allclose(ratio, ratio[0], atol=1e-4) and 0.8 <= ratio[0] <= 1.2


def test_elastic_distortion_is_smooth_and_bounded():
    p, *_ = _cloud(4000)
    q = elastic_distortion(p, np.random.default_rng(4), granularity=0.2, magnitude=0.4)
    shift = q - p
    assert np.abs(shift).max() > 1e-3  # it moves points ...
    assert np.abs(shift).max() < 0.4  # ... by less than its magnitude (the noise is smoothed)
    # smooth: close points move alike, far points independently
    d = np.linalg.norm(p[:, None] - p[None, :300], axis=2)
    near = (d < 0.05) & (d > 0)
    a, b = np.nonzero(near)
    assert len(a) > 10
    near_diff = np.linalg.norm(shift[a] - shift[b], axis=1).mean()
    far_diff = np.linalg.norm(shift[:1000] - shift[1000:2000], axis=1).mean()
    assert near_diff < 0.3 * far_diff


def test_colour_transforms_stay_uint8_and_change_colours():
    _, c, _, _ = _cloud()
    j = color_jitter(c, np.random.default_rng(5), 0.05)
    assert j.dtype == np.uint8 and 3 < np.abs(j.astype(int) - c).mean() < 30
    a = auto_contrast(c, np.random.default_rng(6))
    assert a.dtype == np.uint8 and a.shape == c.shape


def test_crop_keeps_labels_consistent_and_unlabels_slivers():
    p, _, labels, _ = _cloud(5000)
    rng = np.random.default_rng(7)
    for _ in range(10):
        index, kept = random_crop(p, labels, rng, share=(0.3, 0.6), min_instance_share=0.4)
        assert np.all(np.diff(index) > 0)
        orig = labels[index]
        # every kept id is the point's own id or 0 (an unlabelled sliver); -1 and 0 never change
        assert np.all((kept == orig) | ((kept == 0) & (orig > 0)))
        for i in np.unique(orig[orig > 0]):
            share = (orig == i).sum() / (labels == i).sum()
            if share < 0.4:
                assert not np.any(kept[orig == i])
            else:
                assert np.all(kept[orig == i] == i)


def test_augment_composes_and_crops_superpoints_with_points():
    p, c, labels, sp = _cloud(3000)
    cfg = AugmentConfig(enabled=True, crop=True, crop_p=1.0, crop_share=(0.5, 0.5))
    q, qc, ql, qsp = augment(p, c, labels, np.random.default_rng(8), cfg, sp)
    assert len(q) < len(p) and len(q) == len(qc) == len(ql) == len(qsp)
    # the kept points are a subset: their superpoint ids and (uncut) labels come from the same points
    assert set(np.unique(qsp)) <= set(np.unique(sp))
    assert q.dtype == np.float32 and qc.dtype == np.uint8 and ql.dtype == np.int64
    # the inputs are not modified
    assert np.array_equal(p, _cloud(3000)[0])


def test_augment_off_returns_the_inputs_and_same_seed_same_result():
    p, c, labels, sp = _cloud()
    q, qc, ql, qsp = augment(p, c, labels, np.random.default_rng(0), AugmentConfig(), sp)
    assert q is p and qc is c and ql is labels and qsp is sp
    on = AugmentConfig(enabled=True, crop=True)
    a = augment(p, c, labels, np.random.default_rng(9), on, sp)
    b = augment(p, c, labels, np.random.default_rng(9), on, sp)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "bad",
    [
        {"scale_range": (1.2, 0.8)},
        {"crop_share": (0.5, 1.5)},
        {"crop_p": 2.0},
        {"elastic_granularity": (0.2,), "elastic_magnitude": (0.4, 1.6)},
    ],
)
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)
