"""Speed and size of the synthetic RGB-D scan generator.

For a few seeds: time to build the room (layout + tessellation), rendering speed in frames per second at
320×240 and 640×480 (ray casting, shading, sensor simulation; the ray-casting structure is built once per
scene and reported separately; also per CPU-second of this process, which other jobs on a shared machine
disturb less), the end-to-end ``generate_scene`` time at the defaults, and the mesh's
vertex, face, instance and part counts. Prints a table and writes ``benchmarks/results/synth.json``.

    .venv/bin/python benchmarks/bench_synth.py [--seeds 0 1 2] [--frames 20] [--montage docs/synth_frames.png]
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
import trimesh

from tracklift.datasets.synthetic import (
    SynthConfig,
    build_scene_mesh,
    generate_scene,
    make_trajectory,
    render_frame,
    render_view,
)
from tracklift.datasets.synthetic.raycast import RayCaster
from tracklift.evaluation.pictures import id_colors  # noqa: E402
from tracklift.geometry.camera import camera_directions, centred_intrinsics, overview_pose  # noqa: E402

SIZES = ((320, 240), (640, 480))


def bench_seed(seed: int, n_frames: int) -> dict:
    cfg = SynthConfig()
    t0 = time.perf_counter()
    layout, smesh = build_scene_mesh(seed, cfg)
    t_room = time.perf_counter() - t0
    t0 = time.perf_counter()
    caster = RayCaster((smesh.vertices, smesh.faces))
    caster.cast(centred_intrinsics(8, 6), np.eye(4))  # embree builds its structure on the first query
    t_bvh = time.perf_counter() - t0
    ids, counts = np.unique(smesh.vertex_instance, return_counts=True)
    row = {
        "seed": seed,
        "room_m": [round(float(x), 2) for x in layout.size],
        "vertices": len(smesh.vertices),
        "faces": len(smesh.faces),
        "instances": len(ids),
        "parts": len(smesh.parts.name) - 1,
        "min_instance_vertices": int(counts.min()),
        "labels": len(smesh.labels),
        "room_build_s": round(t_room, 3),
        "raycast_structure_s": round(t_bvh, 3),
    }
    for w, h in SIZES:
        c = SynthConfig(width=w, height=h, n_frames=n_frames)
        intr = centred_intrinsics(w, h, c.focal)
        poses = make_trajectory(layout, c, np.random.default_rng([seed, 2]))
        dirs = camera_directions(intr)
        t0, c0 = time.perf_counter(), time.process_time()
        valid = []
        for k, pose in enumerate(poses):
            f = render_frame(
                caster, smesh, layout.light, intr, pose, c, np.random.default_rng([seed, 3, k]), k, dirs
            )
            valid.append(float((f.depth > 0).mean()))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        row[f"fps_{w}x{h}"] = round(n_frames / dt, 2)
        # frames per CPU-second of this process: less sensitive to other jobs on a shared machine
        row[f"fps_cpu_{w}x{h}"] = round(n_frames / cpu, 2)
        row[f"valid_depth_{w}x{h}"] = round(float(np.mean(valid)), 3)
    t0 = time.perf_counter()
    generate_scene(seed, cfg)
    row["generate_scene_default_s"] = round(time.perf_counter() - t0, 2)
    return row


def montage(path: Path, seed: int = 2) -> None:
    """Frames of one scene (colour | depth | GT instances | GT parts) above two views of its GT."""
    from PIL import Image

    data = generate_scene(seed, SynthConfig(n_frames=60))
    rows = []
    for k in (0, 30, 59):
        f = data.frames[k]
        depth = np.clip(f.depth / 5.0, 0, 1)
        depth_rgb = (np.stack([depth, depth**0.7, 1 - depth], -1) * 255).astype(np.uint8)
        depth_rgb[f.depth == 0] = 0
        rows.append(np.concatenate([f.color, depth_rgb, id_colors(f.instance), id_colors(f.part)], 1))
    frames = np.concatenate(rows, 0)
    w = frames.shape[1] // 2
    intr = centred_intrinsics(w, int(w * 0.75))
    m = data.mesh
    pose = overview_pose(m.vertices, intr, elevation=60, azimuth=-60)
    views = [
        render_view(m.vertices, m.faces, m.colors, intr, pose, cull_backfaces=True),
        render_view(m.vertices, m.faces, id_colors(data.gt_instance), intr, pose, cull_backfaces=True),
    ]
    picture = Image.fromarray(np.concatenate([frames, np.concatenate(views, 1)], 0))
    # 256 colours keep the README light; the sensor noise makes full-colour PNGs large
    picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=20, help="frames rendered per size and seed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    ap.add_argument("--montage", default=None, help="also write a PNG montage of one scene here")
    args = ap.parse_args(argv)
    rows = [bench_seed(s, args.frames) for s in args.seeds]
    cols = ["seed", "vertices", "faces", "instances", "parts", "room_build_s", "raycast_structure_s"]
    cols += [f"fps_{w}x{h}" for w, h in SIZES] + [f"fps_cpu_{w}x{h}" for w, h in SIZES]
    cols += ["generate_scene_default_s"]
    print(" | ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]!s:>14}" for c in cols))
    mean = {c: round(float(np.mean([r[c] for r in rows])), 3) for c in cols[1:]}
    print(" | ".join(f"{'mean' if c == 'seed' else mean[c]!s:>14}" for c in cols))
    result = {
        "benchmark": "synthetic RGB-D scan generator",
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": platform.platform(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "embree": bool(trimesh.ray.has_embree),
        "config": {"defaults": SynthConfig().__dict__, "frames_per_size": args.frames},
        "per_seed": rows,
        "mean": mean,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=list) + "\n")
    print(f"wrote {args.out}")
    if args.montage:
        montage(Path(args.montage))
        print(f"wrote {args.montage}")
    return result


if __name__ == "__main__":
    main()
