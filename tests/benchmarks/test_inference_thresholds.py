"""benchmarks/inference_thresholds.py: one forward pass per room, then every grid point's post-processing."""

import dataclasses

import numpy as np
import torch

from tests.training.samples import make_sample
from tracklift.lifting import Sample
from tracklift.models import ModelConfig, Segmenter
from tracklift.training.evaluate import predict_sample

from . import load_benchmark


def test_grid_points_match_predicting_with_those_thresholds():
    bench = load_benchmark("inference_thresholds")
    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny")).eval()
    a = make_sample(3, 0, n_boxes=4, scene_id="a")
    b = make_sample(3, 1, n_boxes=3, scene_id="b")
    b = Sample(
        b.points, b.colors, np.where(np.arange(len(b)) % 7 == 0, -1, b.instance), "b", 3, ()
    )  # unscanned
    args = bench.parse_args(
        ["--work", "p=W", "--checkpoint", "p:x=U", "--score", "0,0.1", "--mask", "0.3,0.5", "--nms", "0.7"]
    )
    points = bench.grid(args)
    assert len(points) == 4
    own = model.inference
    got = bench.predictions_per_point(model, [a, b], points)
    assert model.inference is own  # the model's own thresholds are put back
    for p in points:
        for s in (a, b):
            pred, ref = got[bench.key(p)][s.scene_id], _predict(model, s, p)
            assert pred.masks.shape == (len(ref.scores), len(s))
            assert np.array_equal(pred.masks, ref.masks) and np.allclose(pred.scores, ref.scores)
    # the grid points differ (an untrained model's probabilities sit near 0.5: the mask threshold moves them)
    low, high = got["score0.0_mask0.3_nms0.7"]["a"], got["score0.0_mask0.5_nms0.7"]["a"]
    assert low.masks.shape != high.masks.shape or not np.array_equal(low.masks, high.masks)


def _predict(model, sample, point):
    base = model.inference
    model.inference = dataclasses.replace(base, **point)
    try:
        return predict_sample(model, sample)
    finally:
        model.inference = base
