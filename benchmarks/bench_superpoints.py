"""Speed and quality of the superpoint segmentator (ScanNet's algorithm, :mod:`tracklift.datasets.superpoints`).

Speed: seconds for the mesh segmentator (vertex normals + unique edges + weights + FH + small-segment
merging, everything after the mesh is in memory) on a ~100k- and a ~1M-vertex room-like surface, and for the
k-nearest-neighbour variant on the 100k surface's vertices as a point cloud. The surface is a 2.5D room
at ScanNet's density: a square floor grid at 2 cm spacing (317² and 1000² vertices, 6.3 m and 20 m wide),
raised into box furniture (tables, beds, shelves: 0.3-2 m tall, 20 per 40 m²) and 2.5 m walls around the
border as height steps, with 1 mm of Gaussian height noise (a reconstruction is never flat); two
triangles per grid cell. The compiled code is warmed up once before timing (numba compiles on first use;
its on-disk cache makes that a one-off per environment).

Quality: superpoints per scene and purity (share of annotated vertices whose superpoint's majority GT
instance is their own, :func:`tracklift.evaluation.superpoint_purity`) on a few synthetic rooms' meshes.

    .venv/bin/python benchmarks/bench_superpoints.py [--sizes 100000 1000000] [--seeds 0 1 2 3]

Prints a table and writes ``benchmarks/results/superpoints.json``. :func:`time_segmentator` is importable
(``bench_scans.py`` reports the same figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from tracklift.datasets.superpoints import (
    DEFAULT_SEGMENTATOR,
    SegmentatorConfig,
    segment_mesh,
    segment_points,
)
from tracklift.evaluation import superpoint_purity

SPACING = 0.02  # metres between grid vertices: about ScanNet's _vh_clean_2 density


def room_surface(n_vertices: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2.5D room of about ``n_vertices`` vertices (see the module docstring).

    Returns:
        ``(vertices (N, 3) float64 metres, faces (F, 3) int64)``, N = round(sqrt(n_vertices))².
    """
    rng = np.random.default_rng(seed)
    side = max(int(round(np.sqrt(n_vertices))), 4)
    width = side * SPACING
    x, y = np.meshgrid(np.arange(side) * SPACING, np.arange(side) * SPACING, indexing="ij")
    z = np.zeros_like(x)
    for _ in range(max(1, int(20 * width * width / 40))):
        w, d = rng.uniform(0.4, 2.0, 2) * min(1.0, width / 4)
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, width - d)
        inside = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + d)
        z[inside] = np.maximum(z[inside], rng.uniform(0.3, 2.0))
    border = (x < 0.1) | (y < 0.1) | (x > width - 0.1) | (y > width - 0.1)
    z[border] = 2.5
    z += rng.normal(0, 0.001, z.shape)
    idx = np.arange(side * side).reshape(side, side)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return np.stack([x.ravel(), y.ravel(), z.ravel()], 1), faces


def _warm_up() -> None:
    v, f = room_surface(400)
    segment_mesh(v, f)
    segment_points(v)


def time_segmentator(
    n_vertices: int, cfg: SegmentatorConfig = DEFAULT_SEGMENTATOR, repeats: int = 1, seed: int = 0
) -> dict:
    """Time the mesh segmentator on :func:`room_surface` of about ``n_vertices`` vertices.

    Returns:
        ``{"vertices", "faces", "seconds" (wall, best of ``repeats``), "cpu_seconds" (this process's CPU
        time, best of ``repeats``: less disturbed by other jobs on a shared machine), "superpoints"}``.
    """
    _warm_up()
    v, f = room_surface(n_vertices, seed)
    best, cpu, sp = float("inf"), float("inf"), None
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        sp = segment_mesh(v, f, cfg)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return {
        "vertices": len(v),
        "faces": len(f),
        "seconds": round(best, 3),
        "cpu_seconds": round(cpu, 3),
        "superpoints": int(sp.max()) + 1,
    }


def time_knn_segmentator(
    n_points: int, cfg: SegmentatorConfig = DEFAULT_SEGMENTATOR, repeats: int = 1, seed: int = 0
) -> dict:
    """Time the k-nearest-neighbour variant on the vertices of :func:`room_surface` as a point cloud."""
    _warm_up()
    v, _ = room_surface(n_points, seed)
    best, cpu, sp = float("inf"), float("inf"), None
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        sp = segment_points(v, cfg)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return {
        "points": len(v),
        "knn": cfg.knn,
        "seconds": round(best, 3),
        "cpu_seconds": round(cpu, 3),
        "superpoints": int(sp.max()) + 1,
    }


def scene_purity(seed: int) -> dict:
    """Superpoints and purity of a synthetic room's mesh (the generator's mesh, no rendering)."""
    from tracklift.datasets.synthetic import SynthConfig, build_scene_mesh

    _, smesh = build_scene_mesh(seed, SynthConfig())
    t0 = time.perf_counter()
    sp = segment_mesh(smesh.vertices, smesh.faces)
    seconds = time.perf_counter() - t0
    gt = smesh.vertex_instance
    return {
        "seed": seed,
        "vertices": len(smesh.vertices),
        "instances": int(len(np.unique(gt[gt > 0]))),
        "superpoints": int(sp.max()) + 1,
        "superpoint_purity": round(superpoint_purity(sp, gt), 4),
        "seconds": round(seconds, 3),
    }


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="mesh vertex counts")
    ap.add_argument("--knn-points", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="synthetic rooms for purity")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "superpoints.json"))
    args = ap.parse_args(argv)

    meshes = [time_segmentator(n, repeats=args.repeats) for n in args.sizes]
    knn = time_knn_segmentator(args.knn_points, repeats=args.repeats)
    scenes = [scene_purity(s) for s in args.seeds]

    print(
        f"{'mesh':>6} | {'vertices':>9} | {'faces':>9} | {'seconds':>8} | {'cpu s':>8} | {'superpoints':>11}"
    )
    rows = [(_label(n), r["vertices"], r["faces"], r) for n, r in zip(args.sizes, meshes)]
    rows.append(("kNN", knn["points"], f"k={knn['knn']}", knn))
    for name, n, f, r in rows:
        print(
            f"{name:>6} | {n:>9} | {f:>9} | {r['seconds']:>8} | {r['cpu_seconds']:>8} | {r['superpoints']:>11}"
        )
    print()
    print(
        f"{'seed':>5} | {'vertices':>8} | {'instances':>9} | {'superpoints':>11} | {'purity':>6} | {'seconds':>7}"
    )
    for r in scenes:
        print(
            f"{r['seed']:>5} | {r['vertices']:>8} | {r['instances']:>9} | {r['superpoints']:>11} | "
            f"{r['superpoint_purity']:>6} | {r['seconds']:>7}"
        )
    purity_mean = round(float(np.mean([r["superpoint_purity"] for r in scenes])), 4) if scenes else None
    print(f"mean purity {purity_mean}")
    result = {
        "benchmark": "superpoint segmentator (ScanNet's Segmentator algorithm, numba union-find)",
        "segmentator_seconds": {_label(n): r["seconds"] for n, r in zip(args.sizes, meshes)},
        "segmentator_cpu_seconds": {_label(n): r["cpu_seconds"] for n, r in zip(args.sizes, meshes)},
        "knn_seconds": {_label(args.knn_points): knn["seconds"]},
        "meshes": [{"mesh": "room_surface", **r} for r in meshes],
        "knn": knn,
        "scenes": scenes,
        "superpoint_purity_mean": purity_mean,
        "meta": {
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "segmentator": DEFAULT_SEGMENTATOR.params(),
            "mesh": "room_surface: 2.5D room, 2 cm grid, box furniture, 2.5 m border walls, 1 mm noise",
            "scenes_mesh": "synthetic.build_scene_mesh (the generator's piecewise mesh)",
            "repeats": args.repeats,
            "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "machine": platform.platform(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
