"""Speed of the ScanNet-protocol evaluator (``tracklift.evaluation.evaluate``).

Random but realistic scenes: GT instances are contiguous vertex blocks (mesh vertices of one object are
mostly contiguous in ScanNet files) with unannotated stretches, ignored groups and a few tiny instances;
predictions are noisy copies of GT instances (shifted boundaries, flipped vertices, some merged with a
neighbour, some duplicated) plus false positives (random blocks). Scenes are built first; only the
evaluator is timed. Prints a table and writes ``benchmarks/results/eval_speed.json``.

    .venv/bin/python benchmarks/bench_eval_speed.py [--scenes 100] [--vertices 50000] [--preds 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tracklift.evaluation import evaluate, evaluate_dirs, write_gt, write_predictions
from tracklift.structures import Instances

RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.json"


def make_scene(rng: np.random.Generator, n: int, n_preds: int) -> tuple[np.ndarray, Instances]:
    """(N,) GT ids and ``n_preds`` predictions over N vertices."""
    n_blocks = int(rng.integers(40, 80))
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_blocks - 1, replace=False))
    starts, stops = np.r_[0, cuts], np.r_[cuts, n]
    gt = np.zeros(n, dtype=np.int64)
    for k, (a, b) in enumerate(zip(starts, stops)):
        r = rng.random()
        if r < 0.1:
            continue  # unannotated
        gt[a:b] = int(rng.integers(1, 1000)) if r < 0.15 else int(rng.integers(1, 40)) * 1000 + k + 1
    for _ in range(3):  # tiny instances under the 100-vertex limit
        a = int(rng.integers(0, n - 60))
        gt[a : a + int(rng.integers(10, 60))] = 39000 + int(rng.integers(900, 999))
    ids = np.array([i for i in np.unique(gt) if i >= 1000])

    masks = np.zeros((n_preds, n), dtype=bool)
    n_true = min(len(ids), int(0.7 * n_preds))
    for k in range(n_preds):
        if k < n_true:
            idx = np.flatnonzero(gt == ids[rng.integers(len(ids))])
            a, b = idx[0], idx[-1] + 1
            shift = int(0.1 * (b - a))
            a = max(0, a + int(rng.integers(-shift, shift + 1)))
            b = min(n, b + int(rng.integers(-shift, shift + 1)))
            if rng.random() < 0.15:  # merged with the neighbour
                b = min(n, b + int(rng.integers(50, 2000)))
            masks[k, a:b] = True
            flip = rng.integers(a, max(a + 1, b), size=max(1, (b - a) // 20))
            masks[k, flip] = False
        else:  # false positive somewhere
            a = int(rng.integers(0, n - 100))
            masks[k, a : a + int(rng.integers(50, 3000))] = True
    order = rng.permutation(n_preds)  # file order is not score order
    return gt, Instances(masks[order], rng.random(n_preds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--vertices", type=int, default=50_000)
    ap.add_argument("--preds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--io-scenes", type=int, default=10, help="scenes also written to files for evaluate_dirs"
    )
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    gts, preds = {}, {}
    for s in range(args.scenes):
        gts[f"scene{s:04d}_00"], preds[f"scene{s:04d}_00"] = make_scene(rng, args.vertices, args.preds)
    t_make = time.perf_counter() - t0

    rows = []
    for preset in ("all_annotated", "scannet200_198"):
        times, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            result = evaluate(preds, gts, preset=preset)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        best = min(times)
        rows.append(
            {
                "preset": preset,
                "total_s": round(best, 3),
                "per_scene_ms": round(1000 * best / args.scenes, 2),
                "all_runs_s": [round(t, 3) for t in times],
                "cpu_s": round(min(cpu), 3),
                "AP": round(result["AP"], 4),
                "AP50": round(result["AP50"], 4),
                "AP25": round(result["AP25"], 4),
                "num_gt": result["num_gt"],
                "num_pred": result["num_pred"],
            }
        )

    io = None
    if args.io_scenes > 0:
        names = sorted(gts)[: args.io_scenes]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            for name in names:
                write_gt(f"{tmp}/gt/{name}.txt", gts[name])
                write_predictions(f"{tmp}/pred", name, preds[name])
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            from_files = evaluate_dirs(f"{tmp}/pred", f"{tmp}/gt")
            t_read = time.perf_counter() - t0
        assert from_files == evaluate({k: preds[k] for k in names}, {k: gts[k] for k in names})
        io = {
            "scenes": len(names),
            "write_predictions_per_scene_s": round(t_write / len(names), 3),
            "evaluate_dirs_per_scene_s": round(t_read / len(names), 3),
        }

    print(
        f"{args.scenes} scenes x {args.vertices} vertices x {args.preds} predictions "
        f"(built in {t_make:.1f} s, not timed); best of {args.repeats}"
    )
    print(
        f"{'preset':<16}{'total s':>9}{'ms/scene':>10}{'cpu s':>8}{'AP':>8}{'AP50':>8}{'AP25':>8}{'GT':>7}{'pred':>7}"
    )
    for r in rows:
        print(
            f"{r['preset']:<16}{r['total_s']:>9.2f}{r['per_scene_ms']:>10.1f}{r['cpu_s']:>8.2f}{100 * r['AP']:>8.1f}"
            f"{100 * r['AP50']:>8.1f}{100 * r['AP25']:>8.1f}{r['num_gt']:>7}{r['num_pred']:>7}"
        )

    if io:
        print(
            f"files (local disk, {io['scenes']} scenes): write_predictions "
            f"{io['write_predictions_per_scene_s']:.2f} s/scene, evaluate_dirs (read + evaluate) "
            f"{io['evaluate_dirs_per_scene_s']:.2f} s/scene"
        )

    out = {
        "benchmark": "eval_speed",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "scenes": args.scenes,
        "vertices": args.vertices,
        "predictions_per_scene": args.preds,
        "rows": rows,
        "files": io,
        "nproc": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
