"""benchmarks/network_fit.py: recall against GT and the superpoint / voxel oracles."""

import numpy as np

from . import load_benchmark

fit = load_benchmark("network_fit")


def _object(n_vertices: int, start: int, length: int) -> np.ndarray:
    m = np.zeros(n_vertices, bool)
    m[start : start + length] = True
    return m


def test_recall_counts_objects_some_mask_covers_whatever_its_score():
    n = 1000
    gt = np.zeros(n, np.int64)
    gt[0:300], gt[300:600], gt[600:650] = 1001, 1002, 1003  # the third object is under 100 vertices
    seen = np.full(n, 3)
    masks = np.stack(
        [
            _object(n, 0, 280),  # object 1 at IoU 0.93
            _object(n, 300, 100),  # object 2 at IoU 0.33: counts at 0.25 only
        ]
    )
    r = fit.recall({"s": masks}, {"s": (gt, seen)})
    assert r == {"recall50": 0.5, "recall25": 1.0, "gt_objects": 2}
    # vertices seen fewer than twice do not count: object 2 then lies mostly outside
    seen[330:600] = 1
    r = fit.recall({"s": masks}, {"s": (gt, seen)})
    assert r["recall50"] == 1.0 and r["gt_objects"] == 1  # object 2 keeps 30 seen vertices: too small
    assert fit.recall({"s": np.zeros((0, n), bool)}, {"s": (gt, np.full(n, 3))})["recall50"] == 0.0


def test_oracle_takes_the_units_an_object_holds_the_majority_of():
    gt = np.array([1, 1, 1, 2, 2, 2, 2, 0])
    seen = np.full(8, 2)
    groups = np.array(
        [0, 0, 1, 1, 1, 2, 2, 2]
    )  # unit 1 straddles both objects, unit 2 holds object 2 + a hole
    masks = fit.oracle_masks(groups, gt, seen)
    np.testing.assert_array_equal(masks[0], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks[1], [0, 0, 1, 1, 1, 1, 1, 1])
    assert fit.recall({"s": masks}, {"s": (gt, seen)})["gt_objects"] == 0  # all under 100
    pts = np.array([[0.01, 0, 0], [0.05, 0, 0], [0.09, 0, 0]])
    assert fit.voxel_index(pts, 0.08)[0].tolist() == [0, 0, 1]  # the voxel oracle's units


def test_misses_sorts_the_objects_the_labels_find_by_what_the_network_does_with_them():
    n = 1000
    gt = np.zeros(n, np.int64)
    gt[0:200], gt[200:400], gt[400:600], gt[600:800] = 1001, 1002, 1003, 1004
    seen = np.full(n, 3)
    labels = np.stack([_object(n, 0, 200), _object(n, 200, 200), _object(n, 400, 200)])
    net = np.stack(
        [
            _object(n, 0, 190),  # object 1: found by both
            _object(n, 200, 400),  # objects 2 and 3 joined: IoU 0.5 each, covers all of both
            _object(n, 600, 180),  # object 4: the network alone
        ]
    )
    r = fit.misses({"s": net}, {"s": labels}, {"s": (gt, seen)})
    assert (r["both"], r["labels_only"], r["network_only"], r["neither"]) == (1, 2, 1, 0)
    assert r["labels_only_by_network_mask"] == {"merged": 2, "split": 0, "other": 0}
    assert r["median_vertices_both"] == 200.0
    # the network keeps half of object 2 (all inside it) and has no mask on object 3
    net[1] = _object(n, 200, 99)
    r = fit.misses({"s": net}, {"s": labels}, {"s": (gt, seen)})
    assert r["labels_only_by_network_mask"] == {"merged": 0, "split": 1, "other": 1}
    assert fit.misses({"s": np.zeros((0, n), bool)}, {"s": labels}, {"s": (gt, seen)})["labels_only"] == 3
