"""Inference thresholds of the trained network: what the score threshold, the mask threshold and the duplicate
removal IoU (``InferenceConfig.score_threshold``, ``mask_threshold``, ``nms_iou``) do to AP.

Tuning benchmark, training side only: the checkpoints come from ``bench_recipe.py`` work folders (one per
2D prior, trained on training layouts 100+) and are scored on those folders' validation rooms (layout
seeds 500+), never on the held-out rooms of ``bench_curriculum.py``. The network runs once per room; every
grid point then re-runs only the post-processing (:meth:`Segmenter.postprocess`) on the same logits, so a
grid costs one forward pass per room and checkpoint.

    .venv/bin/python benchmarks/inference_thresholds.py \
        --checkpoint weightless:seed0=W/ckpt_cosine+lr_span_curriculum_seed0/stage3/last.pt ... \
        --work weightless=W ... --out benchmarks/results/inference_thresholds.json

``--checkpoint PRIOR:NAME=URL`` names a checkpoint and the prior whose work folder holds its validation
rooms (``--work PRIOR=FOLDER``). The JSON has, per grid point, AP / AP50 / AP25 per checkpoint, the mean
per prior and the mean over all checkpoints, and the instance count per room. ALL NUMBERS ARE SYNTHETIC.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_curriculum as bc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tracklift.lifting import scanned_part  # noqa: E402
from tracklift.models import PointBatch, Segmenter  # noqa: E402
from tracklift.training import load_stage_samples  # noqa: E402
from tracklift.training.evaluate import on_whole_sample  # noqa: E402

VAL_CORPUS = "val_corpus"  # bench_curriculum.prepare's folders for the validation split


def val_labels(work: str, prior: str) -> str:
    return os.path.join(work, f"val_labels_{prior}")


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def grid(args) -> list[dict]:
    return [
        {"score_threshold": s, "mask_threshold": m, "nms_iou": n}
        for s, m, n in itertools.product(args.score, args.mask, args.nms)
    ]


def key(point: dict) -> str:
    return f"score{point['score_threshold']}_mask{point['mask_threshold']}_nms{point['nms_iou']}"


@torch.inference_mode()
def predictions_per_point(model: Segmenter, samples, points: list[dict]) -> dict[str, dict]:
    """grid key → scene id → :class:`Instances` over the sample's points, one forward pass per sample."""
    base = model.inference
    out: dict[str, dict] = {key(p): {} for p in points}
    for sample in samples:
        part, index = scanned_part(sample)
        batch = PointBatch.from_arrays(part.points, part.colors).to(model.device)
        raw = model.run(batch, all_stages=False)
        for p in points:
            model.inference = dataclasses.replace(base, **p)
            pred = model.postprocess(raw, batch)[0]
            out[key(p)][sample.scene_id] = on_whole_sample(pred, index, len(sample))
    model.inference = base
    return out


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"--{what} wants NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


def run(args) -> dict:
    works = parse_pairs(args.work, "work")
    checkpoints = parse_pairs(args.checkpoint, "checkpoint")
    points = grid(args)
    split: dict[str, tuple] = {}
    for prior, work in works.items():
        labels = val_labels(work, prior)
        samples = load_stage_samples(labels, 3)
        split[prior] = (samples, bc.held_out_truth(os.path.join(work, VAL_CORPUS), labels, samples))
    per_ckpt: dict[str, dict] = {}
    t0 = time.perf_counter()
    for name, url in checkpoints.items():
        prior = name.split(":", 1)[0]
        if prior not in split:
            raise SystemExit(f"checkpoint {name}: no --work given for prior {prior!r}")
        samples, truth = split[prior]
        model = Segmenter.from_checkpoint(url)
        preds = predictions_per_point(model, samples, points)
        per_ckpt[name] = {
            k: {
                **bc.score(p, truth),
                "instances_per_room": float(np.mean([len(i.scores) for i in p.values()])),
            }
            for k, p in preds.items()
        }
        own = per_ckpt[name].get(key(current(model)))  # the thresholds it was saved with, if in the grid
        print(
            f"{name}: {len(points)} grid points"
            + (f"; its own thresholds: AP50 {own['AP50']:.3f}" if own else "")
        )
    priors = sorted({n.split(":", 1)[0] for n in per_ckpt})
    results = {}
    for p in points:
        k = key(p)
        rows = {n: {m: per_ckpt[n][k][m] for m in (*bc.KEYS, "instances_per_room")} for n in per_ckpt}
        by_prior = {
            prior: {
                m: float(np.mean([r[m] for n, r in rows.items() if n.startswith(prior + ":")]))
                for m in bc.KEYS
            }
            for prior in priors
        }
        results[k] = {
            **p,
            "mean": {
                m: float(np.mean([r[m] for r in rows.values()])) for m in (*bc.KEYS, "instances_per_room")
            },
            "per_prior": by_prior,
            "per_checkpoint": rows,
        }
    return {
        "grid": results,
        "meta": {
            "synthetic": True,
            "tuning_set": "validation rooms of the bench_recipe work folders (layout seeds 500+; training side)",
            "protocol": "ScanNet class-agnostic AP (all_annotated) over vertices seen >= 2 times",
            "checkpoints": checkpoints,
            "work": works,
            "command": "python " + " ".join(sys.argv),
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }


def current(model: Segmenter) -> dict:
    c = model.inference
    return {"score_threshold": c.score_threshold, "mask_threshold": c.mask_threshold, "nms_iou": c.nms_iou}


def print_table(results: dict) -> None:
    rows = sorted(results["grid"].values(), key=lambda r: -r["mean"]["AP50"])
    priors = sorted(next(iter(rows))["per_prior"]) if rows else []
    head = f"{'score':>6s} {'mask':>5s} {'nms':>5s} {'AP':>6s} {'AP50':>6s} {'AP25':>6s} {'inst':>5s}  "
    print(head + " ".join(f"{p[:15]:>15s}" for p in priors) + "   (AP50 per prior)")
    for r in rows:
        m = r["mean"]
        cells = " ".join(f"{100 * r['per_prior'][p]['AP50']:15.1f}" for p in priors)
        print(
            f"{r['score_threshold']:6.2f} {r['mask_threshold']:5.2f} {r['nms_iou']:5.2f} {100 * m['AP']:6.1f} "
            f"{100 * m['AP50']:6.1f} {100 * m['AP25']:6.1f} {m['instances_per_room']:5.1f}  {cells}"
        )


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", action="append", default=[], help="PRIOR=bench_recipe work folder (repeat)")
    ap.add_argument("--checkpoint", action="append", default=[], help="PRIOR:NAME=checkpoint URL (repeat)")
    ap.add_argument("--score", type=floats, default=floats("0.0,0.1"), help="score thresholds")
    ap.add_argument("--mask", type=floats, default=floats("0.3,0.4,0.5"), help="mask thresholds")
    ap.add_argument("--nms", type=floats, default=floats("0.5,0.7,0.9"), help="duplicate-removal IoUs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference_thresholds.json"))
    args = ap.parse_args(argv)
    if not args.work or not args.checkpoint:
        ap.error("give at least one --work and one --checkpoint")
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    print_table(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
