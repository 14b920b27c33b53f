"""Predicting with and scoring a checkpoint on stage-3 samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tests.training.samples import CENTERS, config, make_sample
from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting import Sample, write_samples
from tracklift.models import ModelConfig, Segmenter
from tracklift.training import StageConfig, evaluate_checkpoint, train_stage
from tracklift.training.data import subsample
from tracklift.training.evaluate import predict_sample

torch.set_num_threads(1)


def test_evaluate_checkpoint_scores_against_gt(tmp_path):
    labels = str(tmp_path / "labels")
    pts, cols, ids = boxes_scene(120, centers=CENTERS[:2])  # GT instances need >= 100 points to count
    sample = Sample(pts, cols, ids, "s0", 3)
    write_samples(storage.join(labels, "shards", "stage3", "s0.npz"), [sample])
    cfg = config(tmp_path)
    url = train_stage(cfg, StageConfig(stage=3, epochs=1))
    gt = np.where(ids > 0, 1000 + ids, 0)  # ScanNet encoding label * 1000 + inst
    result = evaluate_checkpoint(url, labels, gt={"s0": gt})
    assert set(result.predictions) == {"s0"} and result.predictions["s0"].num_points == len(sample)
    assert result.metrics["num_gt"] == 2 and 0.0 <= result.metrics["AP25"] <= 1.0
    assert evaluate_checkpoint(url, [sample]).metrics is None
    with pytest.raises(DataError, match="s0"):
        evaluate_checkpoint(url, [sample], gt={"s0": gt[:-1]})


def test_points_outside_the_scan_are_neither_trained_on_nor_predicted():
    """Stage-3 vertices marked -1 (never seen by the scan) are cropped away before the network sees them."""
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
