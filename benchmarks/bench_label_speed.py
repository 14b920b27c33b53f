"""Speed and memory of ``tracklift.labeling.label_scene`` on whole-room scans, per 2D backend.

Rows (each run in its own subprocess, so its peak memory is its own):

1. 320x240, 100 and 300 kept frames (fused whole-room scans, layout seed 6000, held-out style 96000):
   weightless generator + geometric tracker (``tracked``), the same generator alone (``independent``:
   masks on every ``independent_step``-th frame, merged in 3D), and SAM2 tiny at 256 px with RANDOM
   weights (``tracked``; the cost of the network only: its masks are meaningless, thresholds at 0).
2. 640x480, 300 kept frames: weightless + geometric tracked (bounded memory on a long scan).

fps = frames / ``label_s`` (scene generation and reading are not timed; the weightless 320x240 rows
report the median of ``--repeat`` runs). The split: the generator
(``generate_s``), the tracker (``track_s``: propagation between keyframes), the 2D→3D lifting (``lift_s``)
and the rest (``other_s``: matching fresh masks to tracks, votes, single-view maps). Memory: the process's
resident set after loading the scene (``rss_before_mb``) and its peak during labeling (``peak_rss_mb``).
The summary's ratio comes from the tracked and independent rows of the same run.

    TQDM_DISABLE=1 .venv/bin/python benchmarks/bench_label_speed.py [--no-sam2] [--no-640] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # SAM2's progress bars would flood the table

RESULTS = Path(__file__).resolve().parent / "results" / "label_speed.json"
SEED, STYLE_SEED = 6000, 96000


def _rss_mb() -> float:
    """Resident set size of this process now, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_scene(width: int, height: int, frames: int, path: Path) -> dict:
    """Generate the scan once and pickle it for the row subprocesses (kept when ``path`` exists already:
    ``--scene-cache``); returns its description."""
    from tracklift.datasets.synthetic import SynthConfig, generate_scene

    t0 = time.perf_counter()
    if path.exists():
        data = pickle.loads(path.read_bytes())
        return {
            "size": f"{width}x{height}",
            "frames": len(data.frames),
            "vertices": int(len(data.mesh.vertices)),
            "build_s": None,
            "cached": True,
        }
    # "start": consecutive kept frames at the walking pace, as the committed figures were measured
    cfg = SynthConfig(width=width, height=height, n_frames=frames, frames_span="start", style_seed=STYLE_SEED)
    data = generate_scene(SEED, cfg)
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return {
        "size": f"{width}x{height}",
        "frames": len(data.frames),
        "vertices": int(len(data.mesh.vertices)),
        "build_s": round(time.perf_counter() - t0, 1),
    }


def run_row(spec: dict) -> dict:
    """One labeling run (in this process): ``spec`` = {scene, backend, method}."""
    import torch

    from tracklift.labeling import LabelConfig, label_scene
    from tracklift.labeling.scene import warm_up_kernels

    data = pickle.loads(Path(spec["scene"]).read_bytes())
    scene = data.as_scene()
    backend, method = spec["backend"], spec["method"]
    if backend == "sam2":
        from tracklift.tracking.sam2_backend import build_sam2_backends
        from tracklift.tracking.sam2_loading import Sam2Config

        gen, trk = build_sam2_backends(
            Sam2Config(
                model_config="configs/sam2.1/sam2.1_hiera_t.yaml",
                checkpoint=None,
                device="cpu",
                image_size=256,
                points_per_side=8,
                pred_iou_thresh=0.0,
                stability_score_thresh=0.0,
            )
        )
    else:
        from tracklift.tracking.geometric import GeometricConfig, GeometricTracker
        from tracklift.tracking.weightless import WeightlessMaskGenerator

        gcfg = GeometricConfig(**({"stride": spec["stride"]} if "stride" in spec else {}))
        gen, trk = WeightlessMaskGenerator(intrinsics=scene.intrinsics), GeometricTracker(gcfg)
    cfg = LabelConfig(method=method, pictures=False, write_shards=False)
    warm_s = warm_up_kernels()  # numba's compile / cache load, once per process: not part of a scene
    rss0 = _rss_mb()
    runs = []
    for _ in range(max(1, spec.get("repeat", 1))):
        t0, c0 = time.perf_counter(), time.process_time()
        result = label_scene(scene, cfg, gen, trk if method == "tracked" else None)
        runs.append((result.stats["label_s"], time.perf_counter() - t0, time.process_time() - c0, result))
    runs.sort(key=lambda r: r[0])
    _, wall, cpu, result = runs[len(runs) // 2]  # the median run (its phases are reported)
    st, tr = result.stats, result.stats["tracking"]
    label_s = st["label_s"]
    gen_s, track_s, lift_s = tr.get("generate_s", 0.0), tr.get("track_s", 0.0), st["lift_s"]
    name = "sam2 tiny 256px (random weights)" if backend == "sam2" else "weightless+geometric"
    if backend != "sam2" and method == "tracked":
        name += f" (stride {trk.cfg.stride_for(scene.intrinsics.width)})"
    return {
        "backend": name,
        "method": method,
        "size": f"{scene.intrinsics.width}x{scene.intrinsics.height}",
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
        "tracks": tr.get("tracks"),
        "instances": st["instances"],
        "rss_before_mb": round(rss0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "kernel_warm_up_s": round(warm_s, 2),
        "compare": bool(spec.get("compare", False)),
        "repeats": len(runs),
        "label_s_all": [round(r[0], 3) for r in runs],
    }


def subprocess_row(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--row", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"row {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


COLS = [
    ("backend", "backend"),
    ("method", "method"),
    ("size", "size"),
    ("frames", "frames"),
    ("fps", "fps"),
    ("label_s", "label s"),
    ("generate_s", "gen s"),
    ("track_s", "track s"),
    ("lift_s", "lift s"),
    ("other_s", "other s"),
    ("keyframes", "keyfr"),
    ("instances", "inst"),
    ("peak_rss_mb", "peak MB"),
]


def print_table(rows: list[dict]) -> None:
    widths = [max(len(h), *(len(str(r.get(k))) for r in rows)) + 2 for k, h in COLS]
    print("".join(f"{h:>{w}}" for (_, h), w in zip(COLS, widths)))
    for r in rows:
        print("".join(f"{str(r.get(k)):>{w}}" for (k, _), w in zip(COLS, widths)))


def _progress(r: dict) -> None:
    print(f"{r['backend']} {r['method']} {r['size']} {r['frames']} frames: {r['fps']} fps", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--no-sam2", action="store_true", help="skip the SAM2 rows")
    ap.add_argument("--sam2-300", action="store_true", help="also run SAM2 at 300 frames (long on CPU)")
    ap.add_argument("--no-640", action="store_true", help="skip the 640x480 long-scan row")
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 300], help="kept frames at 320x240")
    ap.add_argument(
        "--scene-cache", help="folder keeping the generated scans between runs (default: a temp dir)"
    )
    ap.add_argument(
        "--scenes-only", action="store_true", help="generate the scans into --scene-cache and stop"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="label the 320x240 scans this many times per row and report the median run (the others once)",
    )
    ap.add_argument(
        "--stride-1",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the tracker at full resolution (stride 1) on the shortest scan",
    )
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    rows, scenes = [], []
    if args.scenes_only:
        if not args.scene_cache:
            raise SystemExit("--scenes-only needs --scene-cache")
        Path(args.scene_cache).mkdir(parents=True, exist_ok=True)
        for w, h, n in [(320, 240, n) for n in args.frames] + ([] if args.no_640 else [(640, 480, 300)]):
            print(make_scene(w, h, n, Path(args.scene_cache) / f"s{w}_{n}.pkl"), flush=True)
        return
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.scene_cache or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for n in args.frames:
            path = Path(tmp) / f"s320_{n}.pkl"
            scenes.append(make_scene(320, 240, n, path))
            for method in ("tracked", "independent"):
                spec = {"scene": str(path), "backend": "weightless", "method": method, "repeat": args.repeat}
                rows.append(subprocess_row(spec))
                _progress(rows[-1])
            if n == min(args.frames) and args.stride_1:  # the full-resolution tracker, for comparison
                spec = {"scene": str(path), "backend": "weightless", "method": "tracked", "stride": 1}
                rows.append(subprocess_row({**spec, "repeat": args.repeat, "compare": True}))
                _progress(rows[-1])
            if not args.no_sam2 and (n == min(args.frames) or args.sam2_300):
                rows.append(subprocess_row({"scene": str(path), "backend": "sam2", "method": "tracked"}))
                _progress(rows[-1])
        if not args.no_640:
            path = Path(tmp) / "s640_300.pkl"
            scenes.append(make_scene(640, 480, 300, path))
            rows.append(subprocess_row({"scene": str(path), "backend": "weightless", "method": "tracked"}))
            _progress(rows[-1])
    print()
    print_table(rows)
    first = min(args.frames)
    pick = {
        r["method"]: r
        for r in rows
        if r["size"] == "320x240"
        and r["frames"] == first
        and r["backend"].startswith("weightless+geometric")
        and not r.get("compare")
    }
    summary = {
        "tracked_fps_320": pick["tracked"]["fps"],
        "independent_fps_320": pick["independent"]["fps"],
        "tracked_over_independent": round(pick["tracked"]["fps"] / pick["independent"]["fps"], 3),
        "frames": pick["tracked"]["frames"],
        "tracked_backend": pick["tracked"]["backend"],
    }
    full = [r for r in rows if r.get("compare")]
    if full:  # the full-resolution tracker measured in the same run
        summary["tracked_stride1_fps_320"] = full[0]["fps"]
        summary["tracked_stride1_over_independent"] = round(full[0]["fps"] / pick["independent"]["fps"], 3)
    import torch

    out = {
        "summary": summary,
        "rows": rows,
        "scenes": scenes,
        "meta": {
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "seed": SEED,
            "style_seed": STYLE_SEED,
            "scans": "fused whole-room (SynthConfig defaults), truncated at the given kept frames",
            "nproc": len(os.sched_getaffinity(0)),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "repeats": {"weightless 320x240": args.repeat, "sam2 and 640x480": 1},
            "total_s": round(time.perf_counter() - t_start, 1),
            "notes": (
                "fps = frames / label_s; scene generation and loading not timed; each row in its own "
                "process (peak_rss_mb is that process's peak, imports included; rss_before_mb after loading "
                "the scene). Independent: masks on every 5th frame, no tracker. SAM2: random weights, "
                "speed only. Weightless rows at 320x240: the median of --repeat runs in one process "
                "(label_s_all lists them); the SAM2 and 640x480 rows are measured once."
            ),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nsummary {summary}\ntotal {out['meta']['total_s']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
