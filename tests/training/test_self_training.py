"""Self-training: confident stage-2 predictions on unlabelled points become stage-3 instances."""

from __future__ import annotations

import numpy as np
import torch

from tests.training.samples import config, make_sample, write_shards
from tracklift import storage
from tracklift.lifting import Sample, write_samples
from tracklift.models import load_checkpoint, read_checkpoint
from tracklift.structures import Instances
from tracklift.training import StageConfig, add_pseudo_instances, train_curriculum
from tracklift.training.self_training import replace_with_predictions

torch.set_num_threads(1)


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
    cfg = config(tmp_path, self_train=True, self_train_threshold=0.0)
    urls = train_curriculum(cfg, stages)
    history = read_checkpoint(urls[3])[0]["extra"]["history"]
    teacher = load_checkpoint(urls[2])
    _, expected = add_pseudo_instances(teacher, [unlabelled], 0.0, 150, cfg.self_train_unlabelled)
    assert expected > 0 and history[0]["pseudo_instances"] == expected
    assert np.isfinite(history[0]["loss"])


def test_replace_mode_makes_confident_predictions_the_labels():
    ids = np.array([1, 1, 1, 0, 0, 0, -1, -1])
    s = Sample(np.random.default_rng(0).random((8, 3)), np.zeros((8, 3)), ids, "a", 3)
    masks = [  # over the 6 scanned points (the model never sees the points outside the scan)
        [0, 0, 0, 1, 1, 0],
        [1, 1, 1, 1, 0, 0],  # overlaps the best one on point 3: that point stays with the best
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],  # empty: no id
        [1, 1, 0, 0, 0, 0],  # below the threshold
    ]
    model = FixedPredictor(masks, [0.9, 0.8, 0.7, 0.65, 0.5])
    (out,), kept = replace_with_predictions(model, [s], threshold=0.6, max_pseudo=150)
    assert kept == 3
    assert out.instance.tolist() == [2, 2, 2, 1, 1, 3, -1, -1]
    (capped,), kept = replace_with_predictions(model, [s], threshold=0.6, max_pseudo=1)
    assert kept == 1 and capped.instance.tolist() == [0, 0, 0, 1, 1, 0, -1, -1]
