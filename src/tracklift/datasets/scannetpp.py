"""ScanNet++ scenes (``data/<scene_id>/``): iPhone RGB-D frames, the laser-scan mesh and its annotations.

Read::

    scans/mesh_aligned_0.05.ply          mesh (the vertex order of every per-vertex file)
    scans/mesh_aligned_0.05_mask.txt     vertex ids excluded from evaluation       → Scene.load_eval_mask
    scans/segments.json, segments_anno.json   segIndices + segGroups              → Scene.load_gt
    scans/segments.json                  segIndices alone                           → Scene.superpoints
    iphone/pose_intrinsic_imu.json       {"frame_000000": {"intrinsic" 3x3 (RGB size), "aligned_pose" 4x4}}
    iphone/colmap/{cameras,images}.txt   alternative poses (world→camera, OpenCV) and intrinsics
    iphone/rgb/frame_000000.jpg ...      RGB extracted by the toolkit; else iphone/rgb.mkv|mp4 (PyAV)
    iphone/depth.bin                     depth, either encoding (see :mod:`scannetpp_io`)

Frame ids are the numbers of the pose entries (= video frame numbers = depth.bin positions). The scene
intrinsics are the RGB intrinsics scaled to the depth size (256x192 on real data; for a file that does not
say, the size is inferred from the pixel count and the RGB aspect ratio).

``aligned_pose``'s camera axes are not documented. The toolkit's own back-projection
(``iphone/arkit_pcl.py``) multiplies ``K^-1 [u, v, 1] * depth`` by it directly, i.e. treats it as OpenCV
camera→world; ARKit itself uses OpenGL axes (y up, z backwards). ``pose_convention="auto"`` settles it per
scene: it back-projects a few depth frames both ways and keeps the convention whose points lie closer to
the mesh (median nearest-vertex distance), falling back to OpenCV when that cannot be measured.
"""

from __future__ import annotations

import logging
import math
import re
from functools import partial

import numpy as np

from tracklift import storage
from tracklift.datasets import annotations
from tracklift.datasets.annotations import load_superpoints
from tracklift.datasets.colmap import read_colmap_cameras, read_colmap_images
from tracklift.datasets.images import decode_image, resize_color
from tracklift.datasets.ply import read_ply
from tracklift.datasets.scannetpp_io import (
    CLASS_LIST,
    GL_TO_CV,
    MASK,
    MESH,
    POSE_JSON,
    DepthBin,
    VideoFrames,
)
from tracklift.datasets.scannetpp_write import write_scene
from tracklift.datasets.scene import Frame, Intrinsics, Scene, check_frame, pose_is_valid
from tracklift.datasets.tracklift_format import read_int_lines
from tracklift.errors import ConfigError, DataError
from tracklift.geometry.camera import backproject_pixels, depth_pixels

__all__ = ["GL_TO_CV", "detect_pose_convention", "looks_like", "read_scene", "write_scene"]

log = logging.getLogger(__name__)

IPHONE_DEPTH = (256, 192)
_FRAME_NAME = re.compile(r"frame_(\d+)")


def looks_like(scene_url: str, names: set[str]) -> bool:
    return "scans" in names and "iphone" in names


# -------------------------------------------------------------------------------------------- poses


def _json_poses(url: str) -> tuple[dict[int, np.ndarray | None], np.ndarray | None]:
    """``{frame id: aligned_pose or None}`` and the first frame's RGB intrinsic matrix."""
    obj = annotations.read_json(url)
    poses: dict[int, np.ndarray | None] = {}
    K = None
    for key, entry in obj.items():
        m = _FRAME_NAME.fullmatch(key)
        if not m or not isinstance(entry, dict):
            continue
        fid = int(m.group(1))
        pose = entry.get("aligned_pose")
        try:
            poses[fid] = None if pose is None else np.asarray(pose, dtype=np.float64).reshape(4, 4)
            if K is None and entry.get("intrinsic") is not None:
                K = np.asarray(entry["intrinsic"], dtype=np.float64).reshape(3, 3)
        except (TypeError, ValueError):
            raise DataError(url, f"{key}: aligned_pose must be 4x4 and intrinsic 3x3 numbers") from None
    return poses, K


def _colmap_poses(dir_url: str) -> tuple[dict[int, np.ndarray | None], np.ndarray, tuple[int, int]]:
    cams_url, imgs_url = storage.join(dir_url, "cameras.txt"), storage.join(dir_url, "images.txt")
    if not storage.exists(cams_url):
        raise DataError(cams_url, "missing intrinsics (COLMAP cameras.txt)")
    cams = read_colmap_cameras(cams_url)
    poses, cam_of = {}, {}
    for name, (cid, c2w) in read_colmap_images(imgs_url).items():
        m = _FRAME_NAME.search(name)
        if m:
            poses[int(m.group(1))], cam_of[int(m.group(1))] = c2w, cid
    if not poses:
        raise DataError(imgs_url, "no frame_<n> images")
    cid = cam_of[min(cam_of)]
    if cid not in cams:
        raise DataError(cams_url, f"camera {cid} used by images.txt is not defined")
    _, w, h, K = cams[cid]
    return poses, K, (w, h)


def detect_pose_convention(
    poses: list[np.ndarray], depths: list[np.ndarray], intr: Intrinsics, vertices: np.ndarray
) -> tuple[str, dict[str, float]]:
    """Which camera convention makes depth agree with the mesh.

    Args:
        poses: camera→world (4, 4) as stored, one per depth map.
        depths: (H, W) metres.
        intr: depth intrinsics.
        vertices: (N, 3) mesh vertices, metres.

    Returns:
        ``("opencv" | "opengl", {convention: median distance in metres to the nearest vertex})``.
    """
    from scipy.spatial import cKDTree

    if len(vertices) == 0 or not poses:
        return "opencv", {}
    tree = cKDTree(np.asarray(vertices, dtype=np.float64))
    scores = {}
    pixels = [depth_pixels(d, max_points=2000) for d in depths]  # up to 2000 valid pixels per frame
    for conv, flip in (("opencv", np.eye(4)), ("opengl", GL_TO_CV)):
        pts = [
            backproject_pixels(v, u, d[v, u].astype(np.float64), intr, p @ flip)
            for p, d, (v, u) in zip(poses, depths, pixels)
        ]
        pts = np.concatenate(pts) if pts else np.zeros((0, 3))
        if len(pts) == 0:
            return "opencv", {}
        scores[conv] = float(np.median(tree.query(pts)[0]))
    return ("opengl" if scores["opengl"] < scores["opencv"] else "opencv"), scores


# ------------------------------------------------------------------------------------------ reading


def _depth_dims(pixels: int, rgb_size: tuple[int, int]) -> tuple[int, int] | None:
    """``(width, height)`` with ``width * height == pixels`` and the RGB aspect ratio, if there is one."""
    w = round(math.sqrt(pixels * rgb_size[0] / rgb_size[1]))
    if w <= 0 or pixels % w:
        return None
    h = pixels // w
    return (w, h) if abs(w / h - rgb_size[0] / rgb_size[1]) < 0.02 else None


def _resolve_depth_size(
    depth: DepthBin, rgb_size: tuple[int, int], n_frames_hint: int, given: tuple[int, int] | None
) -> tuple[int, int]:
    if given is not None:
        depth.set_frame_pixels(given[0] * given[1])
        return given
    if depth.frame_pixels is not None:
        dims = _depth_dims(depth.frame_pixels, rgb_size)
        if dims is None:
            raise DataError(
                depth.url, f"{depth.frame_pixels}-pixel depth frames do not fit the RGB aspect ratio"
            )
        return dims
    # A deflate stream does not record its frame size: try one frame per pose entry, then the iPhone's.
    total = depth.stream_bytes // 4
    candidates = [total // n_frames_hint] if n_frames_hint and total % n_frames_hint == 0 else []
    for pixels in [*candidates, IPHONE_DEPTH[0] * IPHONE_DEPTH[1]]:
        dims = _depth_dims(pixels, rgb_size)
        if dims is not None and total % pixels == 0:
            depth.set_frame_pixels(pixels)
            return dims
    raise DataError(depth.url, f"cannot tell the depth frame size of {total} floats; pass depth_size=")


def _load_frame(state: dict, intr: Intrinsics, poses: dict[int, np.ndarray], fid: int) -> Frame:
    depth = state["depth"].frame(fid).reshape(intr.height, intr.width)
    if fid in state["jpeg_ids"]:
        url = storage.join(state["iphone"], "rgb", f"frame_{fid:06d}.jpg")
        color = decode_image(storage.read_bytes(url), url)
        if color.ndim != 3:
            raise DataError(url, "RGB image is not colour")
    else:
        url = state["video"].url
        color = state["video"].frame(fid)
    return check_frame(Frame(fid, resize_color(color, intr.width, intr.height), depth, poses[fid]), intr, url)


def _load_eval_mask(mask_url: str, mesh_url: str) -> np.ndarray:
    n = annotations.ply_vertex_count(mesh_url)
    excluded = read_int_lines(mask_url)
    if len(excluded) and (excluded.min() < 0 or excluded.max() >= n):
        raise DataError(mask_url, f"vertex ids outside 0..{n - 1}")
    keep = np.ones(n, dtype=bool)
    keep[excluded] = False
    return keep


def _load_gt(segs_url, anno_url, mesh_url, label_map, candidates) -> np.ndarray:
    n = annotations.ply_vertex_count(mesh_url)
    return annotations.load_gt(segs_url, anno_url, n, label_map, candidates)


def read_scene(
    scene_url: str,
    pose_source: str = "auto",
    pose_convention: str = "auto",
    rgb: str = "auto",
    label_map: annotations.LabelSource = None,
    depth_size: tuple[int, int] | None = None,
) -> Scene:
    """Open a ScanNet++ scene folder (``data/<scene_id>``) lazily.

    Args:
        scene_url: the scene folder.
        pose_source: ``"json"`` (``pose_intrinsic_imu.json``), ``"colmap"`` or ``"auto"`` (json if present).
        pose_convention: camera axes of ``aligned_pose``: ``"opencv"``, ``"opengl"`` or ``"auto"``
            (measured against the mesh; COLMAP poses are always OpenCV).
        rgb: ``"jpeg"`` (extracted ``iphone/rgb/``), ``"video"`` (``rgb.mkv``/``rgb.mp4`` through PyAV) or
            ``"auto"`` (JPEG where extracted, else the video when PyAV is installed).
        label_map: ``{name: id}`` or a label file URL; default ``scans/semantic_classes.txt``, then
            ``<root>/metadata/semantic_classes.txt`` (ids = 0-based line numbers, as the toolkit uses).
        depth_size: ``(width, height)`` of the depth frames when the file cannot tell (deflate stream).

    Returns:
        A :class:`Scene` (poses camera→world, OpenCV axes, metres).
    """
    for name, value, allowed in (
        ("pose_source", pose_source, ("auto", "json", "colmap")),
        ("pose_convention", pose_convention, ("auto", "opencv", "opengl")),
        ("rgb", rgb, ("auto", "jpeg", "video")),
    ):
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    scans, iphone = storage.join(scene_url, "scans"), storage.join(scene_url, "iphone")
    mesh_url = storage.join(scans, MESH)
    scan_names, iphone_names = set(storage.listdir(scans)), set(storage.listdir(iphone))
    if MESH not in scan_names:
        raise DataError(mesh_url, "missing the scan mesh")
    if pose_source == "auto":
        if POSE_JSON not in iphone_names and "colmap" not in iphone_names:
            raise DataError(iphone, f"no poses: neither {POSE_JSON} nor colmap/")
        pose_source = "json" if POSE_JSON in iphone_names else "colmap"
    rgb_size = None
    if pose_source == "json":
        json_url = storage.join(iphone, POSE_JSON)
        raw_poses, K = _json_poses(json_url)
        if K is None:
            raise DataError(json_url, "missing intrinsics (no frame has an 'intrinsic' matrix)")
    else:
        raw_poses, K, rgb_size = _colmap_poses(storage.join(iphone, "colmap"))

    jpeg_ids = set()
    if rgb != "video":
        for n in storage.listdir(storage.join(iphone, "rgb")):
            m = _FRAME_NAME.fullmatch(n.rsplit(".", 1)[0])
            if m and n.endswith(".jpg"):
                jpeg_ids.add(int(m.group(1)))
    video = None
    video_name = next((n for n in ("rgb.mkv", "rgb.mp4") if n in iphone_names), None)
    if rgb != "jpeg" and video_name is not None:
        try:
            import av  # noqa: F401

            video = VideoFrames(storage.join(iphone, video_name))
        except ImportError:
            if rgb == "video":
                raise ConfigError("rgb='video' needs PyAV: pip install av") from None
    if rgb == "video" and video is None:
        raise DataError(iphone, "no rgb.mkv / rgb.mp4 video")
    if rgb_size is None:
        if jpeg_ids:
            first = storage.join(iphone, "rgb", f"frame_{min(jpeg_ids):06d}.jpg")
            shape = decode_image(storage.read_bytes(first), first).shape
            rgb_size = (shape[1], shape[0])
        elif video is not None:
            rgb_size = video.size()
        else:
            raise DataError(iphone, "no RGB frames: neither rgb/frame_*.jpg nor a readable rgb.mkv")

    depth = DepthBin(storage.join(iphone, "depth.bin"))
    hint = max(raw_poses) + 1 if raw_poses else 0
    dw, dh = _resolve_depth_size(depth, rgb_size, hint, depth_size)
    intr = Intrinsics.from_matrix(K, *rgb_size).scaled(dw, dh)

    frame_ids, skipped = [], {}
    for fid in sorted(raw_poses):
        pose = raw_poses[fid]
        if pose is None or not pose_is_valid(pose):
            skipped[fid] = "invalid pose"
        elif fid >= len(depth):
            skipped[fid] = "no depth frame"
        elif fid not in jpeg_ids and video is None:
            skipped[fid] = "no RGB image"
        else:
            frame_ids.append(fid)
    mesh = None
    if pose_source == "colmap":
        pose_convention = "opencv"
    elif pose_convention == "auto":
        mesh = read_ply(mesh_url)
        probe = [frame_ids[i] for i in np.linspace(0, len(frame_ids) - 1, min(3, len(frame_ids))).astype(int)]
        depths = [depth.frame(f).reshape(dh, dw) for f in probe]
        pose_convention, scores = detect_pose_convention(
            [raw_poses[f] for f in probe], depths, intr, mesh.vertices
        )
        log.info(
            "%s: aligned_pose read as %s (median distance to mesh %s)", scene_url, pose_convention, scores
        )
    flip = GL_TO_CV if pose_convention == "opengl" else np.eye(4)
    poses = {f: raw_poses[f] @ flip for f in frame_ids}

    names = scan_names
    load_gt = None
    if "segments.json" in names and "segments_anno.json" in names:
        candidates = [
            storage.join(scans, CLASS_LIST),
            storage.join(annotations.parent_url(scene_url, 2), "metadata", CLASS_LIST),
        ]
        load_gt = partial(
            _load_gt,
            storage.join(scans, "segments.json"),
            storage.join(scans, "segments_anno.json"),
            mesh_url,
            label_map,
            candidates,
        )
    load_sp = None
    if "segments.json" in names:
        load_sp = partial(load_superpoints, storage.join(scans, "segments.json"), mesh_url)
    state = {"depth": depth, "video": video, "jpeg_ids": jpeg_ids, "iphone": iphone}
    return Scene(
        scene_id=storage.basename(scene_url),
        intrinsics=intr,
        frame_ids=frame_ids,
        load_frame=partial(_load_frame, state, intr, poses),
        load_mesh=partial(read_ply, mesh_url),
        load_gt=load_gt,
        load_eval_mask=partial(_load_eval_mask, storage.join(scans, MASK), mesh_url)
        if MASK in names
        else None,
        skipped=skipped,
        source=scene_url,
        format="scannetpp",
        poses=np.stack([poses[f] for f in frame_ids]) if frame_ids else np.zeros((0, 4, 4)),
        load_superpoints=load_sp,
        _mesh=mesh,
    )
