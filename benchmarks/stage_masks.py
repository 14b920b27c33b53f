"""What each curriculum stage's network predicts: instances per sample and how much of the cloud a mask covers.

Diagnostic for the curriculum benchmark: stage 1 scores 0 AP on whole rooms. Is that a gap between single
views and rooms, or has stage 1 not learned to split a cloud at all? Each stage's checkpoint of one
``bench_curriculum.py`` work folder predicts on the held-out rooms (stage-3 samples) and on held-out single
views (stage-1 samples); the table gives, per stage and split, the mean number of predicted instances per
sample beside the pseudo-labels' count, the median and largest share of a sample's points one predicted
mask covers, and the median score.

    .venv/bin/python benchmarks/stage_masks.py --work W --prior controlled-low [--seed 0] [--samples 8]
        [--out benchmarks/results/stage_masks.json]

ALL NUMBERS ARE SYNTHETIC (procedural rooms, CPU-sized training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from tracklift.training import evaluate_checkpoint, load_stage_samples

SPLITS = {"rooms": 3, "single_views": 1}


def mask_stats(url: str, samples) -> dict:
    """Instances per sample (predicted and labelled), mask shares of the sample's points and scores."""
    ev = evaluate_checkpoint(url, samples)
    counts, shares, scores = [], [], []
    for pred in ev.predictions.values():
        masks = np.asarray(pred.masks, dtype=bool)
        counts.append(len(masks))
        shares.extend(masks.sum(axis=1) / max(masks.shape[1], 1))
        scores.extend(np.asarray(pred.scores, dtype=float))
    labelled = [len(np.unique(s.instance[s.instance >= 0])) for s in samples]
    return {
        "samples": len(samples),
        "mean_points": float(np.mean([len(s) for s in samples])),
        "instances_per_sample": float(np.mean(counts)),
        "label_instances_per_sample": float(np.mean(labelled)),
        "median_mask_share": float(np.median(shares)) if shares else 0.0,
        "max_mask_share": float(np.max(shares)) if shares else 0.0,
        "median_score": float(np.median(scores)) if scores else 0.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="a finished bench_curriculum.py --work folder")
    ap.add_argument("--prior", required=True)
    ap.add_argument("--seed", type=int, default=0, help="training seed of the checkpoints")
    ap.add_argument("--samples", type=int, default=8, help="held-out samples per split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stage_masks.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels = os.path.join(args.work, f"heldout_labels_{args.prior}")
    ckpts = os.path.join(args.work, f"ckpt_{args.prior}_seed{args.seed}", "curriculum")
    rows: dict = {}
    print(
        f"{'stage':7s} {'split':13s} {'points':>7s} {'inst':>6s} {'labels':>6s} {'median share':>12s} "
        f"{'max share':>9s} {'score':>6s}"
    )
    for stage in (1, 2, 3):
        url = os.path.join(ckpts, f"stage{stage}", "last.pt")
        for split, shard_stage in SPLITS.items():
            r = mask_stats(url, load_stage_samples(labels, shard_stage)[: args.samples])
            rows.setdefault(f"stage{stage}", {})[split] = r
            print(
                f"{stage:<7d} {split:13s} {r['mean_points']:7.0f} {r['instances_per_sample']:6.1f} "
                f"{r['label_instances_per_sample']:6.1f} {r['median_mask_share']:12.3f} "
                f"{r['max_mask_share']:9.3f} {r['median_score']:6.2f}",
                flush=True,
            )
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result[args.prior] = rows
    result.setdefault("meta", {"synthetic": True, "command": {}})["command"][args.prior] = (
        "python " + " ".join(sys.argv)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
