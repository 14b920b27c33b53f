"""What kind of errors pseudo-labels make: per GT object, matched / split / merged / missed; per label,
true positive / fragment / union.

AP says how good labels are; this says why not better. For each GT instance (at least 100 seen vertices)
the label sharing most vertices with it decides:

  - ``matched``: IoU > 0.5 (strict, as AP50 counts);
  - ``merged``: that label covers at least half of the object but IoU <= 0.5, so it is much larger
    (under-segmentation: e.g. one track over the floor and the furniture on it);
  - ``split``: it covers 25-50 % of the object (the object is in several labels);
  - ``missed``: it covers under 25 %, or no label touches the object.

And for each label (at least 100 vertices), by the GT object it overlaps most: ``tp`` (IoU > 0.5),
``fragment`` (at least 60 % of it lies in that one object) or ``union`` (it spans several objects).
Only vertices the scan saw at least twice count, as in ``bench_pseudo_labels.py``.

    .venv/bin/python benchmarks/label_errors.py [--seeds 10,11,12] [--style-seed 1010] [--prior weightless]
        [--methods independent,tracked] [any tracklift label flag: --consistency.new-order area ...]

Defaults are training-side scans (layout seeds 10-12, styles 1010-1012): use it to tune, not to report.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pseudo_labels import make_scene  # noqa: E402
from controlled_prior import LEVELS, ControlledPrior  # noqa: E402

from tracklift import config as config_lib  # noqa: E402
from tracklift.evaluation import APAccumulator  # noqa: E402
from tracklift.labeling import LabelConfig, label_scene  # noqa: E402
from tracklift.lifting import LiftConfig, VisibilityConfig, lift_independent, lift_tracked  # noqa: E402
from tracklift.lifting.lift import VOTE_UNITS  # noqa: E402
from tracklift.tracking.geometric import GeometricTracker  # noqa: E402
from tracklift.tracking.weightless import WeightlessMaskGenerator  # noqa: E402

GT_KINDS = ("matched", "split", "merged", "missed")
LABEL_KINDS = ("tp", "fragment", "union")


def error_counts(labels: np.ndarray, gt: np.ndarray, counted: np.ndarray, min_vertices: int = 100) -> dict:
    """Counts of :data:`GT_KINDS` and :data:`LABEL_KINDS` (module docstring).

    Args:
        labels: (N,) int label per vertex (0 = none).
        gt: (N,) int GT instance per vertex (0 = none).
        counted: (N,) bool vertices that count (the others are set to 0 on both sides).
        min_vertices: smaller GT objects and labels are left out.
    """
    g = np.where(counted, gt, 0).astype(np.int64)
    p = np.where(counted, labels, 0).astype(np.int64)
    out = dict.fromkeys(GT_KINDS + LABEL_KINDS, 0)
    for n, inter, iou in _best_partners(g, p, min_vertices):
        cover = inter / n  # 0 when no label touches the object: missed
        out[
            "matched" if iou > 0.5 else "merged" if cover >= 0.5 else "split" if cover >= 0.25 else "missed"
        ] += 1
    for n, inter, iou in _best_partners(p, g, min_vertices):
        out["tp" if iou > 0.5 else "fragment" if inter / n >= 0.6 else "union"] += 1
    return out


def _best_partners(a: np.ndarray, b: np.ndarray, min_vertices: int):
    """For each id of ``a`` (not 0, at least ``min_vertices``): ``(its size, its intersection with the id of
    ``b`` it shares most vertices with, their IoU)``; intersection and IoU are 0 when it meets only 0s."""
    b_ids, b_size = np.unique(b, return_counts=True)
    size_of_b = dict(zip(b_ids.tolist(), b_size.tolist()))
    a_ids, a_size = np.unique(a, return_counts=True)
    for ai, n in zip(a_ids.tolist(), a_size.tolist()):
        if ai == 0 or n < min_vertices:
            continue
        inter = np.bincount(b[a == ai], minlength=b.max() + 1)
        inter[0] = 0
        best = int(inter.argmax())
        shared = int(inter[best])
        yield n, shared, (shared / (n + size_of_b[best] - shared) if shared else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="10,11,12", help="layout seeds, comma-separated")
    ap.add_argument("--style-seed", type=int, default=1010, help="appearance seed of the first layout seed")
    ap.add_argument("--prior", choices=("weightless", *LEVELS), default="weightless")
    ap.add_argument("--methods", default="independent,tracked")
    # the label command's own flags (--consistency.new-order area, --geometric.stride 1, ...)
    config_lib.add_arguments(ap, LabelConfig)
    ap.add_argument("--cache", default=None, help="folder caching the generated scans (pickles)")
    args = ap.parse_args()
    base = config_lib.from_args(LabelConfig, args)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    scan_args = argparse.Namespace(
        scans="fused",
        width=320,
        height=240,
        frames=None,
        style_seed=args.style_seed,
        seed=seeds[0],
        cache=args.cache,
    )
    totals = {(m, u): dict.fromkeys(GT_KINDS + LABEL_KINDS, 0) for m in methods for u in VOTE_UNITS}
    accs = {key: APAccumulator("all_annotated") for key in totals}
    vis = VisibilityConfig(depth_abs_tol=0.02, depth_rel_tol=0.01)
    for seed in seeds:
        data = make_scene(seed, scan_args)
        scene, gt = data.as_scene(), data.gt_instance
        gt_maps = {k: f.instance for k, f in enumerate(data.frames)}
        counted = lift_tracked(scene, gt_maps, LiftConfig(visibility=vis)).seen >= 2
        if args.prior == "weightless":
            generator = WeightlessMaskGenerator(base.weightless, intrinsics=scene.intrinsics)
        else:
            generator = ControlledPrior(dataclasses.replace(LEVELS[args.prior], seed=seed))
        for method in methods:
            lift = dataclasses.replace(base.lift, visibility=vis)
            cfg = dataclasses.replace(base, method=method, lift=lift, pictures=False, write_shards=False)
            t0 = time.perf_counter()
            tracker = GeometricTracker(cfg.geometric) if method == "tracked" else None
            res = label_scene(scene, cfg, generator, tracker)
            seconds = time.perf_counter() - t0
            for unit in VOTE_UNITS:
                lift = dataclasses.replace(cfg.lift, vote_unit=unit)
                labels = (
                    lift_tracked(scene, res.tracked_maps, lift)
                    if method == "tracked"
                    else lift_independent(scene, res.single_maps, lift)
                )
                accs[(method, unit)].add(scene.scene_id, labels.to_instances(100), gt, ignore=~counted)
                counts = error_counts(labels.ids, gt, counted)
                for k, v in counts.items():
                    totals[(method, unit)][k] += v
                print(f"seed {seed} {method:11s} {unit:10s} {seconds:5.0f} s  {counts}", flush=True)
    print(
        f"\n{'method':11s} {'unit':10s} {'AP50':>5s}  " + " ".join(f"{k:>8s}" for k in GT_KINDS + LABEL_KINDS)
    )
    for (method, unit), counts in totals.items():
        ap50 = 100 * accs[(method, unit)].result()["AP50"]
        print(
            f"{method:11s} {unit:10s} {ap50:5.1f}  "
            + " ".join(f"{counts[k]:8d}" for k in GT_KINDS + LABEL_KINDS)
        )


if __name__ == "__main__":
    main()
