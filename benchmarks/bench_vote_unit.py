"""Pseudo-labels voted per vertex vs per superpoint (``LiftConfig.vote_unit``), on the same tracked id maps.

For each scene and 2D prior, the granularity-consistent tracker runs once; its id maps are lifted twice,
once resolving each vertex's votes alone and once pooling votes per superpoint (``Scene.superpoints``:
ScanNet's segmentator on the mesh). Both are scored with the ScanNet protocol (class-agnostic,
``all_annotated``) over the vertices the scan saw at least twice, as bench_pseudo_labels does.

    .venv/bin/python benchmarks/bench_vote_unit.py [--scans fused|classic] [--scenes 3] [--seed 300]

Default seeds 300+ are training-side seeds (the choice of vote unit is made here, so no held-out seeds).
Writes benchmarks/results/vote_unit.json. ALL NUMBERS ARE SYNTHETIC.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controlled_prior import LEVELS, ControlledPrior  # noqa: E402

from tracklift.datasets.synthetic import SynthConfig, generate_scene  # noqa: E402
from tracklift.evaluation import APAccumulator  # noqa: E402
from tracklift.labeling import LabelConfig, label_scene  # noqa: E402
from tracklift.lifting import LiftConfig, VisibilityConfig, lift_tracked  # noqa: E402
from tracklift.tracking.geometric import GeometricTracker  # noqa: E402
from tracklift.tracking.weightless import WeightlessMaskGenerator  # noqa: E402

UNITS = ("vertex", "superpoint")


def synth_config(scans: str, width: int, height: int, frames: int | None) -> SynthConfig:
    """Classic scans (piecewise mesh, wandering walk) or fused whole-room scans (the generator's default)."""
    if scans == "classic":
        return SynthConfig.classic(width=width, height=height, n_frames=frames or 30)
    return SynthConfig(width=width, height=height, n_frames=frames)


def run(args) -> dict:
    scfg = synth_config(args.scans, args.width, args.height, args.frames)
    vis = VisibilityConfig(depth_abs_tol=args.depth_abs_tol, depth_rel_tol=args.depth_rel_tol)
    priors = ["weightless", *LEVELS]
    accs = {(p, u): APAccumulator("all_annotated") for p in priors for u in UNITS}
    lift_s = {u: 0.0 for u in UNITS}
    purity = []
    for i in range(args.scenes):
        seed = args.seed + i
        data = generate_scene(seed, scfg)
        scene = data.as_scene()
        gt = data.gt_instance
        sp = scene.superpoints
        inst = gt >= 1000
        # purity: share of annotated vertices whose superpoint's majority GT instance is their own
        pure = 0
        for s in np.unique(sp[inst]):
            vals = gt[inst & (sp == s)]
            pure += np.bincount(np.unique(vals, return_inverse=True)[1]).max()
        purity.append(pure / max(inst.sum(), 1))
        gt_maps = {k: f.instance for k, f in enumerate(data.frames)}
        evaluated = lift_tracked(scene, gt_maps, LiftConfig(visibility=vis)).seen >= 2
        for prior in priors:
            if prior == "weightless":
                generator = WeightlessMaskGenerator(intrinsics=scene.intrinsics)
            else:
                generator = ControlledPrior(replace(LEVELS[prior], seed=seed))
            res = label_scene(
                scene, LabelConfig(lift=LiftConfig(visibility=vis)), generator, GeometricTracker()
            )
            for unit in UNITS:
                t0 = time.perf_counter()
                labels = lift_tracked(scene, res.tracked_maps, LiftConfig(visibility=vis, vote_unit=unit))
                lift_s[unit] += time.perf_counter() - t0
                accs[(prior, unit)].add(scene.scene_id, labels.to_instances(100), gt, ignore=~evaluated)
            r = {u: accs[(prior, u)].result()["AP50"] for u in UNITS}
            print(
                f"scene {seed} {prior:16s} running AP50 vertex {r['vertex']:.3f} superpoint {r['superpoint']:.3f}"
            )
    out: dict = {}
    for (p, u), acc in accs.items():
        r = acc.result()
        out.setdefault(p, {})[u] = {k: float(r[k]) for k in ("AP", "AP50", "AP25")}
    out["meta"] = {
        "synthetic": True,
        "scans": args.scans,
        "seeds": list(range(args.seed, args.seed + args.scenes)),
        "superpoint_purity_mean": float(np.mean(purity)),
        "lift_seconds_total": {u: round(v, 2) for u, v in lift_s.items()},
        "protocol": "ScanNet class-agnostic AP (all_annotated), vertices seen in >= 2 frames",
        "command": "python " + " ".join(sys.argv),
        "nproc": os.cpu_count(),
        "note": "shared 2-core machine; tracked ids lifted twice from the same id maps",
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scans", choices=("classic", "fused"), default="fused")
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=300, help="first seed (training side)")
    ap.add_argument("--frames", type=int, default=None, help="kept frames (default: classic 30, fused auto)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--depth-abs-tol", type=float, default=0.02)
    ap.add_argument("--depth-rel-tol", type=float, default=0.01)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vote_unit.json"))
    args = ap.parse_args()
    res = run(args)
    print(f"\n{'prior':18s} {'unit':11s} {'AP':>6s} {'AP50':>6s} {'AP25':>6s}")
    for p, by in res.items():
        if p == "meta":
            continue
        for u, r in by.items():
            print(f"{p:18s} {u:11s} {100 * r['AP']:6.1f} {100 * r['AP50']:6.1f} {100 * r['AP25']:6.1f}")
    print("superpoint purity", res["meta"]["superpoint_purity_mean"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
