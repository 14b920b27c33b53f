"""Lifting the GT instance maps of synthetic scans must give back the per-vertex GT.

The synthetic meshes are CAD-like: objects touch (books side by side, a bookshelf against a wall), and a
surface hidden in contact with a visible one passes any depth test within its tolerance, so every error
sits within the tolerance of another object. The tests check that (errors vanish further than 5 cm from
other objects) and the overall accuracy with the default and with a tight tolerance.
"""

import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tests.lifting.test_lift import best_match_accuracy, permute_per_frame
from tracklift.lifting import LiftConfig, LiftStats, VisibilityConfig, lift_independent, lift_tracked

synthetic = pytest.importorskip("tracklift.datasets.synthetic")
instance_ap = pytest.importorskip("tracklift.evaluation.instance_ap")

TIGHT = LiftConfig(visibility=VisibilityConfig(depth_abs_tol=0.02, depth_rel_tol=0.01))


def near_other_objects(data, radius: float) -> np.ndarray:
    """(N,) bool: vertices within ``radius`` metres of a vertex of another GT instance."""
    gt = data.gt_instance
    pairs = cKDTree(data.mesh.vertices).query_pairs(radius, output_type="ndarray")
    pairs = pairs[gt[pairs[:, 0]] != gt[pairs[:, 1]]]
    near = np.zeros(len(gt), bool)
    near[pairs.ravel()] = True
    return near


def ap50(labels, gt, min_votes=2) -> float:
    """Class-agnostic AP50 over the vertices seen at least ``min_votes`` times (the rest cannot be labelled)."""
    res = instance_ap.evaluate(
        {"s": labels.to_instances(100)}, {"s": gt}, ignore={"s": labels.seen < min_votes}
    )
    return res["AP50"]


@pytest.fixture(scope="module")
def scan():
    return synthetic.generate_scene(0, synthetic.SynthConfig.classic(width=160, height=120, n_frames=30))


def test_tracked_gt_maps_default_tolerance(scan):
    lab = lift_tracked(scan.as_scene(), [f.instance for f in scan.frames])
    gt = scan.gt_instance
    seen = (lab.seen >= 2) & (gt != 0)
    far = seen & ~near_other_objects(scan, 0.05)
    assert seen.sum() > 5000 and far.sum() > 0.5 * seen.sum()
    assert (lab.ids[far] == gt[far]).mean() >= 0.97
    assert (lab.ids[seen] == gt[seen]).mean() >= 0.85


def test_tracked_gt_maps_tight_tolerance(scan):
    lab = lift_tracked(scan.as_scene(), [f.instance for f in scan.frames], TIGHT)
    gt = scan.gt_instance
    seen = (lab.seen >= 2) & (gt != 0)
    assert (lab.ids[seen] == gt[seen]).mean() >= 0.93
    assert ap50(lab, gt) >= 0.85


def test_independent_permuted_gt_maps(scan):
    maps = permute_per_frame([f.instance for f in scan.frames], seed=5)
    lab = lift_independent(scan.as_scene(), maps, TIGHT)
    gt = scan.gt_instance
    assert best_match_accuracy(lab.filtered_ids(100), gt, lab.seen >= 2) >= 0.85
    assert ap50(lab, gt) >= 0.8


@pytest.mark.slow
def test_synthetic_60_frames_320x240():
    data = synthetic.generate_scene(0, synthetic.SynthConfig.classic(width=320, height=240, n_frames=60))
    scene, maps, gt = data.as_scene(), [f.instance for f in data.frames], data.gt_instance
    stats = LiftStats()
    lab = lift_tracked(scene, maps, TIGHT, stats)
    seen = (lab.seen >= 2) & (gt != 0)
    t0 = time.perf_counter()
    lift_tracked(scene, maps)
    t_default = time.perf_counter() - t0
    print(
        f"{len(data.mesh.vertices)} vertices, {stats.frames} frames: tracked {stats.seconds:.2f} s "
        f"(default tolerance {t_default:.2f} s), accuracy {(lab.ids[seen] == gt[seen]).mean():.3f}, "
        f"AP50 {ap50(lab, gt):.2f}"
    )
    assert (lab.ids[seen] == gt[seen]).mean() >= 0.95
    assert ap50(lab, gt) >= 0.85
