"""tracklift's own scan layout (one folder per scene):

    <scene_id>/
      scene.json          {"format": "tracklift", "version": 1, "scene_id", "intrinsics": {fx, fy, cx, cy,
                           width, height}, "depth_scale": 1000, "frames": [{"id": 0, "pose": 4x4 | null}],
                           "labels": {"<label_id>": "<name>"}}
      mesh.ply            binary PLY, vertices in the world frame, per-vertex RGB, triangles
      gt_instance.txt     optional, one integer per vertex: label_id*1000 + instance (0 = unannotated)
      gt_part.txt         optional, one integer per vertex: GT part id (synthetic scans)
      superpoints.json    optional, {"params": {...}, "sceneId", "segIndices": [one superpoint id per vertex]}
                          (ScanNet's segs.json layout; without it Scene.superpoints is computed)
      color/<id>.jpg      RGB at the depth resolution
      depth/<id>.png      16-bit PNG, depth * depth_scale (millimetres), 0 = invalid
      instance/<id>.png   optional, 24-bit RGB PNG holding the per-pixel GT instance id (r<<16 | g<<8 | b)
      part/<id>.png       optional, same encoding, per-pixel GT part id

``pose`` is camera→world in OpenCV convention; ``null`` marks a frame whose tracking was lost (skipped).
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np

from tracklift import storage
from tracklift.datasets.annotations import load_superpoints, segments_to_write, write_superpoints
from tracklift.datasets.images import decode_image, encode_jpeg, encode_png
from tracklift.datasets.ply import read_ply, write_ply
from tracklift.datasets.scene import Frame, Intrinsics, Scene, SceneData, check_frame, pose_is_valid
from tracklift.errors import DataError

VERSION = 1
SUPERPOINTS = "superpoints.json"


def looks_like(scene_url: str, names: set[str]) -> bool:
    return "scene.json" in names


def encode_ids(ids: np.ndarray) -> bytes:
    """(H, W) non-negative ints < 2**24 → 24-bit RGB PNG."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 1 << 24:
        raise ValueError("id maps must hold values in [0, 2**24)")
    rgb = np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    return encode_png(rgb)


def decode_ids(data: bytes, url: str) -> np.ndarray:
    rgb = decode_image(data, url)
    if rgb.ndim != 3:
        raise DataError(url, "id map must be a 24-bit RGB PNG")
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_int_lines(url: str, expected: int | None = None) -> np.ndarray:
    """One integer per line (ScanNet's per-vertex text files)."""
    text = storage.read_text(url)
    try:
        arr = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(url, "expected one integer per line") from None
    if expected is not None and len(arr) != expected:
        raise DataError(url, f"has {len(arr)} values, the mesh has {expected} vertices")
    return arr


def write_int_lines(url: str, values: np.ndarray) -> None:
    storage.write_text(url, "\n".join(map(str, np.asarray(values, dtype=np.int64).tolist())) + "\n")


def _load_frame(scene_url: str, meta: dict, frame_id: int) -> Frame:
    intr = Intrinsics.from_dict(meta["intrinsics"])
    entry = meta["_by_id"][frame_id]
    color_url = storage.join(scene_url, "color", f"{frame_id}.jpg")
    depth_url = storage.join(scene_url, "depth", f"{frame_id}.png")
    color = decode_image(storage.read_bytes(color_url), color_url)
    depth_raw = decode_image(storage.read_bytes(depth_url), depth_url)
    if depth_raw.dtype != np.uint16:
        raise DataError(depth_url, f"depth must be a 16-bit PNG, got {depth_raw.dtype}")
    if color.ndim != 3:
        raise DataError(color_url, "color image is not RGB")
    depth = depth_raw.astype(np.float32) / float(meta.get("depth_scale", 1000.0))
    frame = Frame(frame_id, color, depth, np.asarray(entry["pose"], dtype=np.float64))
    for name in ("instance", "part"):
        if name in meta.get("maps", []):
            url = storage.join(scene_url, name, f"{frame_id}.png")
            setattr(frame, name, decode_ids(storage.read_bytes(url), url))
    return check_frame(frame, intr, color_url)


def read_scene(scene_url: str) -> Scene:
    meta_url = storage.join(scene_url, "scene.json")
    try:
        meta = json.loads(storage.read_text(meta_url))
    except json.JSONDecodeError as e:
        raise DataError(meta_url, f"invalid JSON ({e})") from None
    if meta.get("format") != "tracklift":
        raise DataError(meta_url, 'not a tracklift scene.json (missing "format": "tracklift")')
    if "intrinsics" not in meta:
        raise DataError(meta_url, "missing intrinsics")
    try:
        intr = Intrinsics.from_dict(meta["intrinsics"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(meta_url, f"bad intrinsics ({e})") from None
    frame_ids, poses, skipped, by_id = [], [], {}, {}
    for entry in meta.get("frames", []):
        fid = int(entry["id"])
        pose = entry.get("pose")
        if pose is None or not pose_is_valid(np.asarray(pose, dtype=np.float64)):
            skipped[fid] = "invalid pose"
            continue
        frame_ids.append(fid)
        poses.append(np.asarray(pose, dtype=np.float64))
        by_id[fid] = entry
    meta["_by_id"] = by_id
    mesh_url = storage.join(scene_url, "mesh.ply")
    names = set(storage.listdir(scene_url))
    load_mesh = partial(read_ply, mesh_url)

    return Scene(
        scene_id=meta.get("scene_id", storage.basename(scene_url)),
        intrinsics=intr,
        frame_ids=frame_ids,
        load_frame=partial(_load_frame, scene_url, meta),
        load_mesh=load_mesh,
        load_gt=partial(read_int_lines, storage.join(scene_url, "gt_instance.txt"))
        if "gt_instance.txt" in names
        else None,
        load_superpoints=partial(load_superpoints, storage.join(scene_url, SUPERPOINTS), mesh_url)
        if SUPERPOINTS in names
        else None,
        skipped=skipped,
        source=scene_url,
        format="tracklift",
        poses=np.stack(poses) if poses else np.zeros((0, 4, 4)),
    )


def read_labels(scene_url: str) -> dict[int, str]:
    meta = json.loads(storage.read_text(storage.join(scene_url, "scene.json")))
    return {int(k): v for k, v in meta.get("labels", {}).items()}


def write_scene(data: SceneData, scene_url: str, jpeg_quality: int = 95) -> None:
    """Write a :class:`SceneData` in tracklift layout; ``scene.json`` is written last (marks completeness)."""
    maps = [m for m in ("instance", "part") if data.frames and getattr(data.frames[0], m) is not None]
    frames_meta = []
    for f in data.frames:
        valid = pose_is_valid(f.pose)
        frames_meta.append({"id": int(f.index), "pose": f.pose.tolist() if valid else None})
        storage.write_bytes(
            storage.join(scene_url, "color", f"{f.index}.jpg"), encode_jpeg(f.color, jpeg_quality)
        )
        depth_mm = np.round(np.nan_to_num(f.depth, nan=0.0, posinf=0.0) * 1000.0)
        storage.write_bytes(
            storage.join(scene_url, "depth", f"{f.index}.png"),
            encode_png(np.clip(depth_mm, 0, 65535).astype(np.uint16)),
        )
        for m in maps:
            storage.write_bytes(storage.join(scene_url, m, f"{f.index}.png"), encode_ids(getattr(f, m)))
    write_ply(storage.join(scene_url, "mesh.ply"), data.mesh)
    if data.gt_instance is not None:
        write_int_lines(storage.join(scene_url, "gt_instance.txt"), data.gt_instance)
    if data.parts is not None:
        write_int_lines(storage.join(scene_url, "gt_part.txt"), data.parts)
    if data.superpoints is not None:
        write_superpoints(storage.join(scene_url, SUPERPOINTS), segments_to_write(data), data.scene_id)
    meta = {
        "format": "tracklift",
        "version": VERSION,
        "scene_id": data.scene_id,
        "intrinsics": data.intrinsics.to_dict(),
        "depth_scale": 1000.0,
        "maps": maps,
        "frames": frames_meta,
        "labels": {str(k): v for k, v in (data.labels or {}).items()},
    }
    storage.write_text(storage.join(scene_url, "scene.json"), json.dumps(meta, indent=1))
