"""Label an RGB-D sequence that tracklift did not generate, and say what can be measured without ground truth.

Input: a folder in the layout of Open3D's reconstruction system (``image/`` colour JPEG/PNG, ``depth/``
16-bit PNG, one file per frame, same sorted order) and a trajectory in Open3D's ``.log`` format (per
frame a header line and the 4 rows of its camera-to-world pose). The ICL-NUIM living-room sequence that
Open3D keeps in its test data (``examples/test_data/reconstruction_system/livingroom1_clean_micro``, 211
frames, trajectory in ``test_scene/trajectory.log``) is one: rendered by another tool, with its own
camera path, furniture, textures and depth. The scene mesh is fused from the frames (TSDF, 2 cm), since
such a folder has none.

Both labeling methods (weightless generator; tracked with the geometric tracker, and independent) run
on it. Without ground truth there is no AP; what is reported: speed, tracks, drift cuts, instances,
the share of the surface labelled, and the tracks' agreement with their own 3D pseudo-labels (of the
vertices a frame sees inside a tracked mask, the share whose lifted label is that track: a track that
drifts onto a neighbour in some frames disagrees with the 3D vote there). Pictures of the tracks and
the pseudo-labels are written to ``--out``, and ``tracks_compare.jpg``: the same frames with the tracked ids
and with the independent masks.

    .venv/bin/python benchmarks/external_rgbd.py FOLDER --trajectory FOLDER/test_scene/trajectory.log \\
        --out /tmp/external
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tracklift.datasets.images import decode_image
from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData
from tracklift.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_trajectory(path: Path) -> list[np.ndarray]:
    """Camera-to-world poses of an Open3D ``.log`` trajectory (blocks of a header line and 4 matrix rows)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(rows) % 5:
        raise DataError(str(path), f"{len(rows)} non-empty lines: expected blocks of 5 (header + 4 rows)")
    poses = []
    for b in range(0, len(rows), 5):
        try:
            m = np.array([[float(v) for v in r] for r in rows[b + 1 : b + 5]], dtype=np.float64)
        except ValueError:
            raise DataError(str(path), f"pose block {b // 5} holds a non-number") from None
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise DataError(str(path), f"pose block {b // 5} is not a finite 4x4 matrix")
        poses.append(m)
    return poses


def read_sequence(
    folder: Path, trajectory: Path, intr: Intrinsics, depth_scale: float, width: int, step: int
) -> tuple[list[Frame], Intrinsics]:
    """The folder's frames (every ``step``-th), brought to ``width`` pixels wide."""
    colors = sorted(p for p in (folder / "image").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    depths = sorted(p for p in (folder / "depth").iterdir() if p.suffix.lower() == ".png")
    poses = read_trajectory(trajectory)
    if not (len(colors) == len(depths) == len(poses)):
        raise DataError(
            str(folder), f"{len(colors)} colour images, {len(depths)} depth images, {len(poses)} poses"
        )
    if not 1 <= width <= intr.width or intr.width % width or intr.height % (intr.width // width):
        raise DataError(str(folder), f"--width {width} must divide the stored {intr.width}x{intr.height}")
    k = intr.width // width  # every k-th pixel row and column: pixel i is stored pixel k * i
    out_intr = Intrinsics(intr.fx / k, intr.fy / k, intr.cx / k, intr.cy / k, width, intr.height // k)
    frames = []
    for i in range(0, len(colors), step):
        color = decode_image(colors[i].read_bytes(), str(colors[i]))
        depth = decode_image(depths[i].read_bytes(), str(depths[i]))
        if depth.ndim != 2 or color.shape[:2] != (intr.height, intr.width) or depth.shape != color.shape[:2]:
            raise DataError(
                str(depths[i]),
                f"colour {color.shape} / depth {depth.shape}: expected {intr.width}x{intr.height}",
            )
        depth_m = depth[::k, ::k].astype(np.float32) / np.float32(depth_scale)
        frames.append(Frame(i, np.ascontiguousarray(color[::k, ::k]), depth_m, poses[i]))
    return frames, out_intr


def fused_mesh(frames: list[Frame], intr: Intrinsics, name: str) -> Mesh:
    """TSDF mesh of the frames (2 cm voxels, depth up to 4 m), each vertex coloured by the frame that
    saw it nearest the image centre."""
    from tracklift.datasets.synthetic.fusion import fuse_tsdf
    from tracklift.geometry.camera import in_image, project

    fused = fuse_tsdf([f.depth for f in frames], [f.pose for f in frames], intr, 0.02, 4.0, name)
    verts = np.asarray(fused.vertices, dtype=np.float64)
    colors = np.full((len(verts), 3), 128, np.uint8)
    best = np.full(len(verts), np.inf)
    for f in frames:
        u, v, z = project(verts, intr, f.pose)
        ok = (z > 0.1) & in_image(u, v, intr)
        off = np.hypot(u - intr.cx, v - intr.cy)
        take = ok & (off < best)
        colors[take] = f.color[v[take], u[take]]
        best[take] = off[take]
    return Mesh(verts.astype(np.float32), colors, np.asarray(fused.faces, dtype=np.int32))


def self_agreement(scene, id_maps: dict[int, np.ndarray], labels: np.ndarray) -> float:
    """Of the (frame, vertex) pairs whose pixel lies in a tracked mask and whose vertex has a 3D label,
    the share where the 3D label is that track."""
    from tracklift.lifting.project import iter_visible

    agree = total = 0
    for _, idx, ids in iter_visible(scene, id_maps):
        lab = labels[idx]
        both = (ids > 0) & (lab > 0)
        agree += int((lab[both] == ids[both]).sum())
        total += int(both.sum())
    return agree / max(total, 1)


def compare_picture(scene, tracked: dict, independent: dict, n_frames: int = 6) -> bytes:
    """JPEG: six of the independent method's mask frames; below them the tracked ids, then the
    independent masks on the same frames (same colour = same id within a row)."""
    from tracklift.datasets.images import encode_jpeg
    from tracklift.evaluation.pictures import frame_strip

    keys = sorted(independent)
    pick = [keys[round(i)] for i in np.linspace(0, len(keys) - 1, min(n_frames, len(keys)))]
    colors = [scene.frame(p).color for p in pick]
    top = frame_strip(colors, [tracked[p] for p in pick], labels=[f"frame {p}" for p in pick])
    below = frame_strip(colors, [independent[p] for p in pick])
    h = colors[0].shape[0]
    return encode_jpeg(np.concatenate([top, below[h:]]), quality=85)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--trajectory", type=Path, required=True)
    ap.add_argument(
        "--intrinsics",
        type=float,
        nargs=4,
        default=(525.0, 525.0, 319.5, 239.5),
        metavar=("FX", "FY", "CX", "CY"),
        help="of the stored images (default: PrimeSense, as Open3D's reconstruction system assumes)",
    )
    ap.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"), help="stored size")
    ap.add_argument("--depth-scale", type=float, default=1000.0, help="depth units per metre")
    ap.add_argument(
        "--width", type=int, default=320, help="label at this width (a divisor of the stored one)"
    )
    ap.add_argument("--step", type=int, default=1, help="keep every step-th frame")
    ap.add_argument("--out", type=Path, default=Path("/tmp/external_rgbd"))
    args = ap.parse_args()

    from tracklift.labeling import LabelConfig, label_scene, write_pictures
    from tracklift.labeling.scene import warm_up_kernels
    from tracklift.tracking.geometric import GeometricTracker
    from tracklift.tracking.weightless import WeightlessMaskGenerator

    fx, fy, cx, cy = args.intrinsics
    intr = Intrinsics(fx, fy, cx, cy, *args.size)
    t0 = time.perf_counter()
    frames, intr = read_sequence(args.folder, args.trajectory, intr, args.depth_scale, args.width, args.step)
    name = args.folder.name
    mesh = fused_mesh(frames, intr, name)
    scene = SceneData(name, intr, frames, mesh).as_scene()
    prep_s = time.perf_counter() - t0
    print(
        f"{name}: {len(frames)} frames at {intr.width}x{intr.height}, {len(mesh.vertices)} vertices ({prep_s:.0f} s)"
    )
    warm_up_kernels()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "meta": {
            "folder": str(args.folder),
            "frames": len(frames),
            "size": [intr.width, intr.height],
            "vertices": int(len(mesh.vertices)),
            "mesh": "TSDF-fused from the frames (2 cm)",
            "ground_truth": None,
        }
    }
    results = {}
    for method in ("tracked", "independent"):
        cfg = LabelConfig(method=method, pictures=True, write_shards=False)
        gen = WeightlessMaskGenerator(intrinsics=intr)
        result = label_scene(scene, cfg, gen, GeometricTracker() if method == "tracked" else None)
        st, tr = result.stats, result.stats["tracking"]
        ids = result.labels.ids
        row = {
            "label_s": round(st["label_s"], 2),
            "frames_per_s": round(st["frames"] / st["label_s"], 2),
            "instances": st["instances"],
            "labelled_share": round(float((ids > 0).mean()), 3),
            "keyframes": tr.get("keyframes"),
        }
        if method == "tracked":
            row.update(
                tracks=tr["tracks"],
                drift_cut=tr["drift_cut"],
                revived=tr["revived"],
                self_agreement=round(self_agreement(scene, result.tracked_maps, ids), 3),
            )
        report[method] = row
        results[method] = result
        for url in write_pictures(str(args.out / method), scene, result):
            print("wrote", url)
        print(method, row)
    compare = args.out / "tracks_compare.jpg"
    compare.write_bytes(
        compare_picture(scene, results["tracked"].tracked_maps, results["independent"].single_maps)
    )
    print("wrote", compare)
    (args.out / "external_rgbd.json").write_text(json.dumps(report, indent=1))
    print("wrote", args.out / "external_rgbd.json")


if __name__ == "__main__":
    main()
