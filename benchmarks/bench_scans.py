"""How real the synthetic scans are: whole-room captures, fused meshes, superpoints (issue 12).

For N scenes made with the generator's defaults (whole-room walk, TSDF-fused mesh, styles) from layout
seeds ``seed..seed+N-1`` and appearance seeds ``style_seed..style_seed+N-1`` (a held-out style: the style
seeds differ from every layout seed, as ``tracklift synth --style-seed`` does it), per scene: kept frames,
mesh vertices, connected components of the mesh (faces sharing a vertex) and the largest one's share of
the faces, coverage (share of the GT surface seen by at least 2 kept frames, from the scene's metadata),
GT instances, superpoints (ScanNet's segmentator, default settings) and their purity
(:func:`tracklift.evaluation.superpoint_purity`). Over all scenes: ScanNet-protocol AP/AP50/AP25 (preset
``all_annotated``, the ``tracklift eval`` default; fractions in [0, 1]) of the ``mesh_connected_components``
baseline against the fused per-vertex GT, which on real reconstructions scores near zero; the
segmentator's time on ~100k and ~1M vertex meshes (:func:`bench_superpoints.time_segmentator`); the
generation seconds per scene.

    .venv/bin/python benchmarks/bench_scans.py [--scenes 8] [--seed 3000] [--style-seed 90000] [--workers 2]
    .venv/bin/python benchmarks/bench_scans.py --quick            # smoke run: 2 tiny scenes, not written
    .venv/bin/python benchmarks/bench_scans.py --pictures docs    # also the README's pictures of one scene

Prints a table and writes ``benchmarks/results/scans.json``.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # bench_superpoints, when imported from tests

from bench_superpoints import time_segmentator  # noqa: E402

from tracklift.datasets.superpoints import DEFAULT_SEGMENTATOR, compute_superpoints  # noqa: E402
from tracklift.datasets.synthetic import SynthConfig, generate_scene  # noqa: E402
from tracklift.datasets.synthetic.config import DEFAULT_CONFIG  # noqa: E402
from tracklift.evaluation import evaluate, superpoint_purity  # noqa: E402
from tracklift.evaluation.baselines import mesh_connected_components  # noqa: E402
from tracklift.structures import Instances  # noqa: E402

#: segmentator timing sizes (label in the JSON → vertices)
SEGMENTATOR_SIZES = {"100k": 100_000, "1M": 1_000_000}
ROW_KEYS = (
    "scene",
    "frames",
    "vertices",
    "components",
    "largest_component_share",
    "coverage",
    "instances",
    "superpoints",
    "superpoint_purity",
)


def scene_row(seed: int, style_seed: int, cfg: SynthConfig) -> tuple[dict, np.ndarray, Instances]:
    """Generate one scene and measure it.

    Returns:
        ``(row, gt, cc)``: the scene's row (:data:`ROW_KEYS` plus ``seed``, ``style_seed``, ``seconds``
        of generation, ``segmentator_seconds``), its (N,) int64 per-vertex GT and the
        ``mesh_connected_components`` prediction over its N vertices.
    """
    data = generate_scene(seed, replace(cfg, style_seed=style_seed))
    meta = data.meta
    t0 = time.perf_counter()
    sp = compute_superpoints(data.mesh, source=data.scene_id)
    t_sp = time.perf_counter() - t0
    gt = np.asarray(data.gt_instance, dtype=np.int64)
    cc_ids, cc_scores = mesh_connected_components(data.mesh)
    row = {
        "scene": data.scene_id,
        "seed": int(seed),
        "style_seed": int(style_seed),
        "frames": len(data.frames),
        "vertices": len(data.mesh.vertices),
        "components": int(meta["components"]),
        "largest_component_share": float(meta["largest_component_share"]),
        "coverage": float(meta["coverage"]),
        "instances": int(len(np.unique(gt[gt >= 1000]))),
        "superpoints": int(sp.max()) + 1,
        "superpoint_purity": round(superpoint_purity(sp, gt), 4),
        "room_shape": meta.get("room_shape"),
        "seconds": float(meta["seconds"]),
        "segmentator_seconds": round(t_sp, 3),
    }
    return row, gt, Instances.from_ids(cc_ids, cc_scores)


def run_benchmark(
    seeds: list[int],
    style_seeds: list[int],
    cfg: SynthConfig = DEFAULT_CONFIG,
    workers: int = 1,
    segmentator_sizes: dict[str, int] = SEGMENTATOR_SIZES,
) -> dict:
    """Generate and measure the scenes (in ``workers`` processes) and time the segmentator.

    Returns:
        The ``scans.json`` dict (see the module docstring and issue 12's "Where figures go"), without
        ``meta.command``.
    """
    if len(seeds) != len(style_seeds):
        raise ValueError("need one style seed per layout seed")
    if set(seeds) & set(style_seeds):
        raise ValueError("style seeds must differ from the layout seeds (a held-out style)")
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # other jobs on a shared machine slow the timings
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            out = list(pool.map(scene_row, seeds, style_seeds, [cfg] * len(seeds)))
    else:
        out = [scene_row(s, st, cfg) for s, st in zip(seeds, style_seeds)]
    wall = time.perf_counter() - t0
    rows = [r for r, _, _ in out]
    ap = evaluate({r["scene"]: cc for r, _, cc in out}, {r["scene"]: gt for r, gt, _ in out})
    timing = {label: time_segmentator(n) for label, n in segmentator_sizes.items()}
    return {
        "scenes": rows,
        "mesh_connected_components": {k: round(ap[k], 4) for k in ("AP", "AP50", "AP25")},
        "coverage_mean": round(float(np.mean([r["coverage"] for r in rows])), 4),
        "superpoint_purity_mean": round(float(np.mean([r["superpoint_purity"] for r in rows])), 4),
        "segmentator_seconds": {label: t["seconds"] for label, t in timing.items()},
        "seconds_per_scene": round(float(np.mean([r["seconds"] for r in rows])), 2),
        "meta": {
            "seeds": [int(s) for s in seeds],
            "style_seeds": [int(s) for s in style_seeds],
            "style": "held out: style seed i = style_seed + i, disjoint from the layout seeds",
            "synth_config": {
                k: v for k, v in cfg.__dict__.items() if v != getattr(SynthConfig(), k)
            },  # only what differs from the generator's defaults
            "ap_preset": ap["preset"],
            "ap_num_gt": ap["num_gt"],
            "ap_num_pred": ap["num_pred"],
            "segmentator": DEFAULT_SEGMENTATOR.params(),
            "segmentator_mesh": {
                label: {"vertices": t["vertices"], "faces": t["faces"], "cpu_seconds": t["cpu_seconds"]}
                for label, t in timing.items()
            },
            "components": "connected components of the fused mesh's faces (sharing a vertex); share in faces",
            "seconds_per_scene": "mean of each scene's generate_scene wall time (render, fuse, vote)",
            "workers": workers,
            "generation_wall_seconds": round(wall, 1),
            "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "machine": platform.platform(),
            "load_average_1_5_15_at_start": load_at_start,
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
    }


def print_table(result: dict) -> None:
    cols = ROW_KEYS[1:]
    print(f"{'scene':>12} | " + " | ".join(f"{c[:11]:>11}" for c in cols) + " | seconds")
    for r in result["scenes"]:
        print(f"{r['scene']:>12} | " + " | ".join(f"{r[c]!s:>11}" for c in cols) + f" | {r['seconds']}")
    cc = result["mesh_connected_components"]
    print(
        f"mesh_connected_components AP {cc['AP']:.4f} AP50 {cc['AP50']:.4f} AP25 {cc['AP25']:.4f}; "
        f"coverage mean {result['coverage_mean']}; purity mean {result['superpoint_purity_mean']}; "
        f"segmentator s {result['segmentator_seconds']}; {result['seconds_per_scene']} s/scene"
    )


def pictures(out_dir: Path, seed: int, style_seed: int, cfg: SynthConfig) -> list[Path]:
    """Pictures of one scene with the project's renderer: the fused room by GT instance and by
    superpoint (``tracklift render --labels gt|superpoints``) and a strip of its frames (colour over GT)."""
    from PIL import Image

    from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
    from tracklift.datasets.formats import open_scene
    from tracklift.evaluation.pictures import frame_strip
    from tracklift.evaluation.render import RenderConfig, render_scene

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        synth = SynthCommandConfig(out=tmp, scenes=1, seed=seed, style_seed=style_seed)
        (url,) = synthesize_corpus(synth, synth=replace(cfg, style_seed=style_seed))
        for labels in ("gt", "superpoints"):
            for f in render_scene(RenderConfig(scene=url, labels=labels, out=tmp, width=640, height=480)):
                if f.endswith(".png"):
                    dst = out_dir / f"scans_{labels}.png"
                    dst.write_bytes(Path(f).read_bytes())
                    written.append(dst)
        scene = open_scene(url)
        n = len(scene)
        picks = [round(k * (n - 1) / 5) for k in range(6)]
        frames = [scene.frame(k) for k in picks]
        strip = frame_strip(
            [f.color for f in frames], [f.instance for f in frames], [f"frame {k}" for k in picks]
        )
        dst = out_dir / "scans_frames.png"
        # 256 colours keep the README light (sensor noise makes full-colour PNGs large)
        im = Image.fromarray(strip).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        im.save(dst, optimize=True)
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3000, help="layout seed of the first scene (scene i: seed+i)")
    ap.add_argument("--style-seed", type=int, default=90000, help="style seed of the first scene (+i)")
    ap.add_argument("--width", type=int, default=SynthConfig.width)
    ap.add_argument("--height", type=int, default=SynthConfig.height)
    ap.add_argument("--workers", type=int, default=2, help="processes generating scenes")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 2 scenes, 96x72, 12 frames, small meshes"
    )
    ap.add_argument(
        "--out", default=None, help="default: benchmarks/results/scans.json (--quick: not written)"
    )
    ap.add_argument("--pictures", default=None, help="also write the README pictures of the first scene here")
    args = ap.parse_args(argv)

    cfg = SynthConfig(width=args.width, height=args.height)
    sizes = SEGMENTATOR_SIZES
    n = args.scenes
    if args.quick:
        cfg, sizes, n = replace(cfg, width=96, height=72, n_frames=12), {"100k": 10_000, "1M": 20_000}, 2
    seeds = [args.seed + i for i in range(n)]
    style_seeds = [args.style_seed + i for i in range(n)]
    result = run_benchmark(seeds, style_seeds, cfg, args.workers, sizes)
    result["meta"]["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    if args.quick:
        result["meta"]["quick"] = "smoke run: tiny scenes and segmentator meshes, figures not comparable"
    print_table(result)
    out = args.out or (None if args.quick else str(Path(__file__).parent / "results" / "scans.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {out}")
    if args.pictures:
        for p in pictures(Path(args.pictures), seeds[0], style_seeds[0], cfg):
            print(f"wrote {p}")
    return result


if __name__ == "__main__":
    main()
