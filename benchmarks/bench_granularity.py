"""How often independent per-frame masks change granularity from view to view (why tracklift tracks).

For each synthetic scene and frame, the weightless generator proposes masks and ``select_granularity``
turns them into one id map, as the independent per-frame baseline does. Every GT object made of at least
two parts (with two parts visible in the frame) is then classified on that frame:

  - whole:  one id covers ≥ ``--whole`` of the object's pixels and lies mostly (≥ 50 %) on the object;
  - merged: one id covers ≥ ``--whole`` of it but lies mostly elsewhere (swallowed by a larger mask);
  - split:  no id covers ``--whole``, and ≥ 2 ids each cover ≥ ``--piece`` of it;
  - other:  neither (mostly unmasked, or crumbs).

Per object over the frames that show it: the share of frames in each class, whether it is whole in one
frame and split in another ("inconsistent"), and how often its class flips between whole and split from
one eligible frame to the next. Also times the generator at 320×240 and 640×480 (wall and CPU seconds;
the machine is shared, CPU seconds are the steadier number). Prints tables, writes
``benchmarks/results/granularity.json``.

    .venv/bin/python benchmarks/bench_granularity.py [--scans fused|classic] [--seeds 0 1 ... 7] [--frames 30]

Scans: ``fused`` (default; whole-room walks kept at ``--frames`` frames spread over the walk, or its first
``--frames`` with ``--frames-span start``, TSDF-fused meshes with voted GT
parts, appearance seeds 90000 + layout seed) or ``classic`` (short walks, piecewise meshes, one style).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.tracking.weightless import WeightlessConfig, WeightlessMaskGenerator, select_granularity

POLICIES = ("score", "large", "small")
CLASSES = ("whole", "merged", "split", "other")


def classify(ids: np.ndarray, obj: np.ndarray, whole: float, piece: float) -> str:
    """Class of one object on one id map.

    Args:
        ids: (H, W) int32 id map (0 = no mask).
        obj: (H, W) bool object pixels (with depth).
        whole: share of the object one id must cover to count as one mask.
        piece: share of the object an id must cover to count as a piece of a split.
    """
    inside = ids[obj]
    inside = inside[inside > 0]
    if len(inside) == 0:
        return "other"
    lab, cnt = np.unique(inside, return_counts=True)
    n = obj.sum()
    k = int(np.argmax(cnt))
    if cnt[k] >= whole * n:
        purity = cnt[k] / (ids == lab[k]).sum()
        return "whole" if purity >= 0.5 else "merged"
    return "split" if (cnt >= piece * n).sum() >= 2 else "other"


def eligible_objects(frame, multi_part: set[int], min_object: int, min_part: int) -> dict[int, np.ndarray]:
    """{gt id: pixels with depth} of multi-part objects showing ≥ 2 parts of ≥ ``min_part`` pixels."""
    has_depth = frame.depth > 0
    out = {}
    for gid in np.unique(frame.instance):
        if gid not in multi_part:
            continue
        obj = (frame.instance == gid) & has_depth
        if obj.sum() < min_object:
            continue
        _, pc = np.unique(frame.part[obj], return_counts=True)
        if (pc >= min_part).sum() >= 2:
            out[int(gid)] = obj
    return out


STYLE_SEED = 90000  # fused scans: appearance seed = STYLE_SEED + layout seed (disjoint from tuning styles)


def scan_config(
    scans: str, seed: int, width: int, height: int, frames: int, span: str = "route"
) -> SynthConfig:
    """``fused``: whole-room walk (``frames`` kept frames spread over it with ``span="route"``, the first
    ``frames`` with ``"start"``), TSDF-fused mesh, style ``STYLE_SEED + seed``; ``classic``: the older short
    wandering walk with piecewise meshes and one style."""
    if scans == "classic":
        return SynthConfig.classic(width=width, height=height, n_frames=frames)
    return SynthConfig(
        width=width, height=height, n_frames=frames, frames_span=span, style_seed=STYLE_SEED + seed
    )


def bench_scene(
    seed: int, args, gen_cfg: WeightlessConfig
) -> tuple[dict, list[dict], list[float], list[float]]:
    data = generate_scene(seed, scan_config(args.scans, seed, 320, 240, args.frames, args.frames_span))
    gen = WeightlessMaskGenerator(gen_cfg, intrinsics=data.intrinsics)
    # objects made of ≥ 2 GT parts in the mesh
    pairs = np.unique(np.stack([data.gt_instance, data.parts.astype(np.int64)], 1), axis=0)
    inst, nparts = np.unique(pairs[:, 0], return_counts=True)
    multi_part = {int(i) for i, n in zip(inst, nparts) if i >= 1000 and n >= 2}

    states: dict[str, dict[int, list[str]]] = {p: defaultdict(list) for p in POLICIES}
    n_masks, wall, cpu = [], [], []
    for f in data.frames:
        t0, c0 = time.perf_counter(), time.process_time()
        masks = gen.generate(f.color, f.depth)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        n_masks.append(len(masks))
        objs = eligible_objects(f, multi_part, args.min_object, args.min_part)
        for p in POLICIES:
            ids = select_granularity(masks, p, shape=f.depth.shape)
            for gid, obj in objs.items():
                states[p][gid].append(classify(ids, obj, args.whole, args.piece))
    rows = []
    for p in POLICIES:
        rows.append({"seed": seed, "policy": p, **summarise(states[p])})
    info = {"seed": seed, "multi_part_objects": len(multi_part), "masks_per_frame": float(np.mean(n_masks))}
    return info, rows, wall, cpu


def summarise(per_object: dict[int, list[str]]) -> dict:
    """Shares of (object, frame) observations per class, inconsistent objects, whole↔split flips."""
    seq = {g: s for g, s in per_object.items() if len(s) >= 2}
    obs = [c for s in seq.values() for c in s]
    out = {"objects": len(seq), "observations": len(obs)}
    for c in CLASSES:
        out[c] = round(obs.count(c) / len(obs), 3) if obs else float("nan")
    incons = [("whole" in s) and ("split" in s) for s in seq.values()]
    out["inconsistent_objects"] = round(float(np.mean(incons)), 3) if incons else float("nan")
    flips, steps = 0, 0
    for s in seq.values():
        ws = [c for c in s if c in ("whole", "split")]
        flips += sum(a != b for a, b in zip(ws, ws[1:]))
        steps += max(len(ws) - 1, 0)
    out["flip_rate"] = round(flips / steps, 3) if steps else float("nan")
    out["_counts"] = {"flips": flips, "steps": steps, "inconsistent": int(np.sum(incons))}
    return out


def time_generator(seeds: list[int], frames: int, width: int, height: int, gen_cfg, scans: str) -> dict:
    wall, cpu, n = [], [], []
    for seed in seeds:
        # the first frames of the walk: the cost per frame does not depend on where they are
        data = generate_scene(seed, scan_config(scans, seed, width, height, frames, "start"))
        gen = WeightlessMaskGenerator(gen_cfg, intrinsics=data.intrinsics)
        gen.generate(data.frames[0].color, data.frames[0].depth)  # warm-up
        for f in data.frames:
            t0, c0 = time.perf_counter(), time.process_time()
            n.append(len(gen.generate(f.color, f.depth)))
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return {
        "size": f"{width}x{height}",
        "frames": len(wall),
        "wall_s_median": round(float(np.median(wall)), 3),
        "wall_s_p90": round(float(np.percentile(wall, 90)), 3),
        "cpu_s_median": round(float(np.median(cpu)), 3),
        "masks_per_frame": round(float(np.mean(n)), 1),
    }


def pooled(rows: list[dict], policy: str) -> dict:
    """Pool the per-scene counts of one policy (weighted by observations / objects)."""
    rs = [r for r in rows if r["policy"] == policy and r["observations"]]
    obs = sum(r["observations"] for r in rs)
    objs = sum(r["objects"] for r in rs)
    out = {"seed": "all", "policy": policy, "objects": objs, "observations": obs}
    for c in CLASSES:
        out[c] = round(sum(r[c] * r["observations"] for r in rs) / obs, 3)
    out["inconsistent_objects"] = round(sum(r["_counts"]["inconsistent"] for r in rs) / objs, 3)
    steps = sum(r["_counts"]["steps"] for r in rs)
    out["flip_rate"] = round(sum(r["_counts"]["flips"] for r in rs) / steps, 3) if steps else float("nan")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--scans", choices=("fused", "classic"), default="fused")
    ap.add_argument("--frames", type=int, default=30, help="kept frames per scene (320x240)")
    ap.add_argument(
        "--frames-span",
        choices=("route", "start"),
        default="route",
        help="fused scans: the kept frames spread over the whole-room walk (route) or its first ones (start)",
    )
    ap.add_argument("--whole", type=float, default=0.8, help="share one id must cover for 'whole'")
    ap.add_argument("--piece", type=float, default=0.1, help="share an id must cover to be a piece")
    ap.add_argument("--min-object", type=int, default=500, help="object pixels (with depth) to count")
    ap.add_argument("--min-part", type=int, default=50, help="pixels of a visible part")
    ap.add_argument("--timing-frames", type=int, default=6, help="frames per size and timing seed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "granularity.json"))
    args = ap.parse_args(argv)
    gen_cfg = WeightlessConfig()

    infos, rows, wall, cpu = [], [], [], []
    for seed in args.seeds:
        info, r, w, c = bench_scene(seed, args, gen_cfg)
        infos.append(info)
        rows += r
        wall += w
        cpu += c
        print(
            f"scene {seed}: {info['multi_part_objects']} multi-part objects, {info['masks_per_frame']:.0f} masks/frame"
        )

    cols = ["seed", "policy", "objects", "observations", *CLASSES, "inconsistent_objects", "flip_rate"]
    print("\nper-frame granularity of multi-part GT objects (independent per-frame masks)")
    print(" | ".join(f"{c:>12}" for c in cols))
    totals = [pooled(rows, p) for p in POLICIES]
    for r in [r for r in rows if r["policy"] == "score"] + totals:
        print(" | ".join(f"{r[c]!s:>12}" for c in cols))

    timing = [
        {**time_generator(args.seeds[:2], args.timing_frames, 320, 240, gen_cfg, args.scans)},
        {**time_generator(args.seeds[:2], args.timing_frames, 640, 480, gen_cfg, args.scans)},
    ]
    print("\ngenerator time per frame")
    for t in timing:
        print(
            f"  {t['size']:>8}: wall median {t['wall_s_median']} s (p90 {t['wall_s_p90']}), "
            f"CPU median {t['cpu_s_median']} s, {t['masks_per_frame']} masks"
        )

    result = {
        "benchmark": "view-dependent granularity of independent per-frame masks (weightless generator)",
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.platform(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "generator_config": asdict(gen_cfg),
        "definitions": {
            "whole": f"one id covers >= {args.whole} of the object and lies >= 50% on it",
            "merged": f"one id covers >= {args.whole} of the object but lies mostly elsewhere",
            "split": f"no id covers {args.whole}; >= 2 ids each cover >= {args.piece}",
            "inconsistent_objects": "share of objects (seen in >= 2 frames) whole in one frame, split in another",
            "flip_rate": "share of consecutive eligible frames (whole/split only) where the class changes",
        },
        "scenes": infos,
        "per_scene": [{k: v for k, v in r.items() if k != "_counts"} for r in rows],
        "pooled": totals,
        "generator_time_per_frame": timing,
        "generator_time_320x240_all_scene_frames": {
            "wall_s_median": round(float(np.median(wall)), 3),
            "cpu_s_median": round(float(np.median(cpu)), 3),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
