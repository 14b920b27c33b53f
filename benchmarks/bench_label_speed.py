"""Speed of ``tracklift.labeling.label_scene`` per 2D backend, and how it grows with frames and objects.

Three parts, each timed once (the machine is shared; a run takes a few minutes):

1. backends on one scene (seed 6000, 320x240, 20 frames): weightless generator + geometric tracker
   (methods ``tracked`` and ``independent``) and SAM2 generator + SAM2 tracker (``tracked``). SAM2 is the
   tiny Hiera model with RANDOM weights at 256 px with the mask thresholds at 0: its masks are
   meaningless, the numbers are the cost of the network only.
2. frames: weightless + geometric at 20, 40, 80 frames (seed 6001, 5 furniture groups, 320x240).
3. objects: weightless + geometric at 2, 5, 8 furniture groups (seed 6002, 40 frames, 320x240), with the
   GT object count and the number of tracks.

Scene generation is not timed. fps = frames / ``label_s``; the split is the generator's time
(``generate_s``), the tracker's time (``track_s``, propagation between keyframes) and the 2D→3D lifting
(``lift_s``); ``label_s`` minus their sum is the bookkeeping of the consistent tracker (matching masks to
tracks, re-identification, granularity votes). Prints a table per part and writes
``benchmarks/results/label_speed.json``.

    TQDM_DISABLE=1 .venv/bin/python benchmarks/bench_label_speed.py [--no-sam2] [--out PATH]
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

os.environ.setdefault("TQDM_DISABLE", "1")  # SAM2's progress bars would flood the table

import numpy as np
import torch

from tracklift.datasets.scene import Scene
from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.labeling import LabelConfig, label_scene
from tracklift.tracking.base import MaskGenerator, MaskTracker
from tracklift.tracking.geometric import GeometricTracker
from tracklift.tracking.weightless import WeightlessMaskGenerator

RESULTS = Path(__file__).resolve().parent / "results" / "label_speed.json"
WIDTH, HEIGHT = 320, 240


def make_scene(seed: int, n_frames: int, n_groups: int = 5) -> tuple[Scene, int, float]:
    """The synthetic scene, its GT object count and the seconds it took to build (not part of the timing)."""
    t0 = time.perf_counter()
    data = generate_scene(
        seed, SynthConfig.classic(width=WIDTH, height=HEIGHT, n_frames=n_frames, n_groups=n_groups)
    )
    objects = len(np.unique(data.gt_instance[data.gt_instance >= 1000]))
    return data.as_scene(), objects, time.perf_counter() - t0


def time_label(
    scene: Scene, method: str, generator: MaskGenerator, tracker: MaskTracker | None, **extra
) -> dict:
    """One ``label_scene`` run; returns a result row (seconds, fps, the split, counts)."""
    cfg = LabelConfig(method=method)
    t0, c0 = time.perf_counter(), time.process_time()
    result = label_scene(scene, cfg, generator, tracker)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    st, tr = result.stats, result.stats["tracking"]
    label_s = st["label_s"]
    gen_s, track_s, lift_s = tr.get("generate_s", 0.0), tr.get("track_s", 0.0), st["lift_s"]
    return {
        **extra,
        "method": method,
        "frames": st["frames"],
        "label_s": round(label_s, 3),
        "fps": round(st["frames"] / label_s, 3),
        "generate_s": round(gen_s, 3),
        "track_s": round(track_s, 3),
        "lift_s": round(lift_s, 3),
        "other_s": round(max(0.0, label_s - gen_s - track_s - lift_s), 3),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "keyframes": tr.get("keyframes"),
        "fresh_masks": tr.get("fresh"),
        "tracks": tr.get("tracks"),
        "instances": st["instances"],
    }


def weightless(scene: Scene) -> tuple[WeightlessMaskGenerator, GeometricTracker]:
    return WeightlessMaskGenerator(intrinsics=scene.intrinsics), GeometricTracker()


def sam2_backends():
    """SAM2 tiny, random weights, 256 px, 8x8 prompts, thresholds 0 (so random weights give masks)."""
    from tracklift.tracking.sam2_backend import build_sam2_backends
    from tracklift.tracking.sam2_loading import Sam2Config

    cfg = Sam2Config(
        model_config="configs/sam2.1/sam2.1_hiera_t.yaml",
        checkpoint=None,
        device="cpu",
        image_size=256,
        points_per_side=8,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    t0 = time.perf_counter()
    gen, trk = build_sam2_backends(cfg)
    return gen, trk, time.perf_counter() - t0, cfg


def print_table(title: str, rows: list[dict], first: list[tuple[str, str]]) -> None:
    cols = first + [
        ("method", "method"),
        ("frames", "frames"),
        ("label_s", "label s"),
        ("fps", "fps"),
        ("generate_s", "gen s"),
        ("track_s", "track s"),
        ("lift_s", "lift s"),
        ("other_s", "other s"),
        ("keyframes", "keyfr"),
        ("tracks", "tracks"),
        ("instances", "inst"),
    ]
    widths = [max(len(h), *(len(str(r.get(k))) for r in rows)) + 2 for k, h in cols]
    print(f"\n{title}")
    print("".join(f"{h:>{w}}" for (_, h), w in zip(cols, widths)))
    for r in rows:
        print("".join(f"{str(r.get(k)):>{w}}" for (k, _), w in zip(cols, widths)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sam2", action="store_true", help="skip the SAM2 backend row")
    ap.add_argument("--frames", type=int, nargs="+", default=[20, 40, 80], help="part 2 frame counts")
    ap.add_argument("--groups", type=int, nargs="+", default=[2, 5, 8], help="part 3 furniture groups")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    t_start = time.perf_counter()
    load_before = os.getloadavg()

    # 1. backends on the same scene
    scene, objects, t_make = make_scene(6000, 20)
    info = {"seed": 6000, "size": f"{WIDTH}x{HEIGHT}", "objects": objects}
    backends = []
    gen, trk = weightless(scene)
    backends.append(time_label(scene, "tracked", gen, trk, backend="weightless+geometric", **info))
    backends.append(time_label(scene, "independent", gen, None, backend="weightless", **info))
    sam2_note = None
    if not args.no_sam2:
        gen, trk, t_build, scfg = sam2_backends()
        row = time_label(scene, "tracked", gen, trk, backend="sam2+sam2", **info)
        row["model_build_s"] = round(t_build, 3)
        backends.append(row)
        sam2_note = {
            "model_config": scfg.model_config,
            "checkpoint": None,
            "weights": "random (speed only; masks meaningless)",
            "image_size": scfg.image_size,
            "points_per_side": scfg.points_per_side,
            "pred_iou_thresh": scfg.pred_iou_thresh,
            "stability_score_thresh": scfg.stability_score_thresh,
            "device": scfg.device,
        }
    print_table("1. backends (seed 6000, 320x240, 20 frames)", backends, [("backend", "backend")])

    # 2. growth with frames
    by_frames = []
    for n in args.frames:
        scene, objects, _ = make_scene(6001, n)
        gen, trk = weightless(scene)
        by_frames.append(time_label(scene, "tracked", gen, trk, seed=6001, n_groups=5, objects=objects))
    print_table("2. frames (weightless+geometric, seed 6001, 5 groups)", by_frames, [("objects", "objects")])

    # 3. growth with objects
    by_objects = []
    for g in args.groups:
        scene, objects, _ = make_scene(6002, 40, g)
        gen, trk = weightless(scene)
        by_objects.append(time_label(scene, "tracked", gen, trk, seed=6002, n_groups=g, objects=objects))
    print_table(
        "3. objects (weightless+geometric, seed 6002, 40 frames)",
        by_objects,
        [("n_groups", "groups"), ("objects", "objects")],
    )

    total = time.perf_counter() - t_start
    out = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timed_once": True,
        "scene_build_s_part1": round(t_make, 3),
        "total_s": round(total, 1),
        "notes": (
            "fps = frames / label_s; scene generation not timed; other_s = label_s - generate_s - track_s "
            "- lift_s (tracker bookkeeping: matching, re-identification, votes). Independent method: "
            "masks on every 5th frame, no tracker. Shared machine, each configuration measured once."
        ),
        "sam2": sam2_note,
        "backends": backends,
        "frames": by_frames,
        "objects": by_objects,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\ntotal {total:.0f} s; load {out['loadavg_before']} -> {out['loadavg_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
