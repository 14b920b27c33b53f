"""Coverage of short synthetic scans: kept frames spread over the whole-room walk, or its first frames.

For each seed and kept-frame count, the share of the GT surface seen by at least two kept frames
(``SceneData.meta["coverage"]``) with ``SynthConfig.frames_span="route"`` (an even subsample of the whole
walk's video) and ``"start"`` (the walk's beginning at the default pace), plus the whole walk (no frame
count). The piecewise mesh is used (coverage does not depend on fusion, and it is faster). Prints a
table and writes ``benchmarks/results/frames_span.json``:
``{"rows": [{"seed", "frames", "span", "kept", "coverage"}], "meta": {command, size}}``.

    .venv/bin/python benchmarks/bench_frames_span.py [--seeds 4 1000] [--frames 10 20 40 60]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from tracklift.datasets.synthetic import SynthConfig, generate_scene


def coverage_rows(seeds: list[int], frames: list[int], width: int, height: int) -> list[dict]:
    """One row per seed × (whole walk, and each frame count with each span)."""
    base = SynthConfig(width=width, height=height, mesh="parts")
    rows = []
    for seed in seeds:
        runs = [(None, "route")] + [(n, span) for n in frames for span in ("route", "start")]
        for n, span in runs:
            meta = generate_scene(seed, replace(base, n_frames=n, frames_span=span)).meta
            rows.append(
                {
                    "seed": seed,
                    "frames": n,
                    "span": "whole walk" if n is None else span,
                    "kept": meta["frames"],
                    "coverage": meta["coverage"],
                }
            )
            print(
                f"seed {seed:5d}  {rows[-1]['span']:>10s}  kept {meta['frames']:4d}  "
                f"coverage {meta['coverage']:.2f}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[4, 1000])
    ap.add_argument("--frames", type=int, nargs="+", default=[10, 20, 40, 60])
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "frames_span.json"))
    args = ap.parse_args()
    rows = coverage_rows(args.seeds, args.frames, args.width, args.height)
    meta = {
        "command": "python " + shlex.join(["benchmarks/bench_frames_span.py", *sys.argv[1:]]),
        "size": f"{args.width}x{args.height}",
        "mesh": "parts",
        "coverage": "share of the GT surface seen by at least two kept frames",
    }
    Path(args.out).write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
