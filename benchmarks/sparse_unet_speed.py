"""Speed of the pure-PyTorch sparse UNet (+ decoder) on synthetic room surfaces: forward + backward.

Usage: ``python benchmarks/sparse_unet_speed.py [--points 50000 200000] [--preset small] [--threads 2]``
(a superpoint-level preset such as ``default`` trains on superpoints computed once before timing, as
training data caches them).
Prints a table and writes ``benchmarks/results/sparse_unet_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tracklift.models import ModelConfig, PointBatch, Segmenter, SparseUNet, cloud_superpoints, get_backend


def room_surface_points(n: int, seed: int = 0, density: float = 2500.0):
    """n points on the floor, four walls and six boxes of a room scaled so that there are ``density``
    points per m² of surface (ScanNet meshes: about 150k vertices on 60 m²); instance id per box.

    Returns:
        (points (n, 3) float32 metres, colors (n, 3) uint8, ids (n,) int64, 0 = floor / walls).
    """
    rng = np.random.default_rng(seed)
    quads = [((0, 0, 0), (5, 0, 0), (0, 4, 0)), ((0, 0, 0), (5, 0, 0), (0, 0, 2.5)), ((0, 4, 0), (5, 0, 0), (0, 0, 2.5)),
             ((0, 0, 0), (0, 4, 0), (0, 0, 2.5)), ((5, 0, 0), (0, 4, 0), (0, 0, 2.5))]  # fmt: skip
    ids = [0] * len(quads)
    for k in range(6):
        o = np.array([0.5 + 0.7 * k, 0.5 + (k % 3) * 1.1, 0.0])
        s = rng.uniform(0.3, 0.6, 3)
        for axis in range(3):
            for side in (0, 1):
                e = [np.eye(3)[a] * s[a] for a in range(3) if a != axis]
                origin = o + np.eye(3)[axis] * s[axis] * side
                quads.append((tuple(origin), tuple(e[0]), tuple(e[1])))
                ids.append(k + 1)
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v in quads])
    scale = np.sqrt(n / density / areas.sum())
    quads = [tuple(tuple(scale * np.asarray(c)) for c in q) for q in quads]
    pick = rng.choice(len(quads), n, p=areas / areas.sum())
    uv = rng.random((n, 2))
    o, u, v = (np.array([q[i] for q in quads])[pick] for i in range(3))
    pts = o + uv[:, :1] * u + uv[:, 1:] * v
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return pts.astype(np.float32), colors, np.array(ids)[pick]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, first kernel maps)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(n: int, cfg: ModelConfig, repeats: int) -> dict:
    """Best-of-``repeats`` seconds of a UNet forward+backward, a no-grad UNet forward (with fresh kernel
    maps) and a whole Segmenter training step (UNet + decoder + matching + losses) on n points."""
    pts, colors, ids = room_surface_points(n)
    sp = cloud_superpoints(pts, cfg.superpoints) if cfg.decoder_level == "superpoint" else None
    batch = PointBatch.from_arrays(pts, colors, ids, superpoints=sp)
    model = Segmenter.from_config(cfg).train()
    backend = get_backend(cfg.backend)
    unet = SparseUNet.from_config(cfg.unet, cfg.in_channels, backend).train()

    def voxels():
        return backend.voxelize(batch.coord, batch.offset, model.input_features(batch), cfg.voxel_size)

    def unet_step():
        levels = unet(voxels().tensor)
        sum(lv.feats.square().mean() for lv in levels).backward()

    def unet_nograd():
        with torch.no_grad():
            unet(voxels().tensor)

    def model_step():
        sum(model(batch).values()).backward()

    return {
        "points": n,
        "voxels": voxels().tensor.num_voxels,
        "unet_fwd_bwd_s": timed(unet_step, repeats),
        "unet_fwd_nograd_s": timed(unet_nograd, repeats),
        "segmenter_train_step_s": timed(model_step, repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sparse_unet_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig.preset(args.preset)
    rows = []
    for n in args.points:
        row = measure(n, cfg, args.repeats)
        rows.append(row)
        print(
            " | ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            flush=True,
        )
    result = {
        "preset": args.preset,
        "config": {
            "widths": cfg.unet.widths,
            "depth": cfg.unet.depth,
            "voxel_size": cfg.voxel_size,
            "decoder_level": cfg.decoder_level,
        },
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        # Other processes on the machine change these numbers a lot: record how busy it was.
        "load_average_1min_at_end": os.getloadavg()[0],
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
