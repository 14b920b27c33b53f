"""Writer of ScanNet++ scenes: what :mod:`tracklift.datasets.scannetpp` reads back.

Synthetic scenes can be written at any size: depth at the scene's size in either ``depth.bin`` encoding,
RGB (JPEG folder, lossless FFV1 ``rgb.mkv``) at any larger size with matching intrinsics, poses in the
chosen camera convention plus a COLMAP model, GT as segments + annotations + a class list.
``scans/segments.json`` holds the superpoints as the ScanNet writer stores them (split by GT when the scene
has GT, see :mod:`.scannet_write`).
"""

from __future__ import annotations

import json

import numpy as np

from tracklift import storage
from tracklift.datasets import annotations
from tracklift.datasets.annotations import segments_to_write, write_superpoints
from tracklift.datasets.colmap import write_colmap
from tracklift.datasets.images import encode_jpeg, resize_color
from tracklift.datasets.ply import write_ply
from tracklift.datasets.scannetpp_io import (
    CLASS_LIST,
    GL_TO_CV,
    MASK,
    MESH,
    POSE_JSON,
    encode_depth_bin,
    encode_video,
)
from tracklift.datasets.scene import SceneData, pose_is_valid
from tracklift.errors import ConfigError


def write_scene(
    data: SceneData,
    scene_url: str,
    depth_encoding: str = "lz4",
    color_size: tuple[int, int] | None = None,
    pose_convention: str = "opencv",
    video: bool | None = None,
    colmap: bool = True,
    excluded_vertices: np.ndarray | None = None,
    jpeg_quality: int = 95,
) -> None:
    """Write a scene in ScanNet++ layout.

    Args:
        data: the scene; frame indices become frame numbers (gaps are filled with blank frames in
            ``depth.bin`` and the video so that positions match numbers).
        scene_url: the scene folder (``<root>/data/<scene_id>``).
        depth_encoding: ``"lz4"`` (uint16 mm per frame) or ``"stream"`` (one deflate stream of float32 m).
        color_size: ``(width, height)`` of the RGB frames (default: the depth size); the stored intrinsics
            are the depth intrinsics scaled to it.
        pose_convention: camera axes of the written ``aligned_pose`` (``"opencv"`` or ``"opengl"``).
        video: also write ``iphone/rgb.mkv`` (lossless FFV1); default: when PyAV is installed.
        colmap: also write ``iphone/colmap/{cameras,images}.txt`` (OpenCV, world→camera).
        excluded_vertices: vertex ids for ``mesh_aligned_0.05_mask.txt`` (default: none).
        jpeg_quality: quality of the extracted RGB JPEGs.
    """
    if pose_convention not in ("opencv", "opengl"):
        raise ConfigError(f"pose_convention must be opencv or opengl, got {pose_convention!r}")
    if video is None:
        try:
            import av  # noqa: F401

            video = True
        except ImportError:
            video = False
    scans, iphone = storage.join(scene_url, "scans"), storage.join(scene_url, "iphone")
    intr = data.intrinsics
    color_size = color_size or (intr.width, intr.height)
    K_rgb = intr.scaled(*color_size).K
    by_id = {int(f.index): f for f in data.frames}
    n_total = max(by_id) + 1 if by_id else 0
    blank_depth = np.zeros((intr.height, intr.width), np.float32)
    storage.write_bytes(
        storage.join(iphone, "depth.bin"),
        encode_depth_bin(
            [by_id[i].depth if i in by_id else blank_depth for i in range(n_total)], depth_encoding
        ),
    )
    colors = {i: resize_color(f.color, *color_size) for i, f in by_id.items()}
    for i, c in colors.items():
        storage.write_bytes(storage.join(iphone, "rgb", f"frame_{i:06d}.jpg"), encode_jpeg(c, jpeg_quality))
    if video and n_total:
        blank = np.zeros((color_size[1], color_size[0], 3), np.uint8)
        frames = [colors.get(i, blank) for i in range(n_total)]
        storage.write_bytes(storage.join(iphone, "rgb.mkv"), encode_video(frames))
    flip = GL_TO_CV if pose_convention == "opengl" else np.eye(4)
    entries, valid = {}, {}
    for i, f in by_id.items():
        ok = pose_is_valid(f.pose)
        stored = (f.pose @ flip).tolist() if ok else None
        entries[f"frame_{i:06d}"] = {
            "timestamp": i / 60.0,
            "intrinsic": K_rgb.tolist(),
            "aligned_pose": stored,
        }
        if ok:
            valid[f"frame_{i:06d}.jpg"] = f.pose
    storage.write_text(storage.join(iphone, POSE_JSON), json.dumps(entries))
    if colmap and valid:
        write_colmap(storage.join(iphone, "colmap"), K_rgb, color_size[0], color_size[1], valid)

    write_ply(storage.join(scans, MESH), data.mesh)
    excluded = np.zeros(0, np.int64) if excluded_vertices is None else np.asarray(excluded_vertices, np.int64)
    storage.write_text(storage.join(scans, MASK), "".join(f"{int(v)}\n" for v in excluded))
    if data.gt_instance is not None:
        gt = np.asarray(data.gt_instance, dtype=np.int64)
        names = annotations.label_names((gt[gt > 0] // 1000).tolist(), data.labels)
        annotations.write_annotations(
            storage.join(scans, "segments.json"),
            storage.join(scans, "segments_anno.json"),
            gt,
            data.mesh.vertices,
            names,
            data.scene_id,
            "segments.json",
            segments=segments_to_write(data, scene_url),
        )
        annotations.write_class_list(storage.join(scans, CLASS_LIST), names)
    elif data.superpoints is not None:
        write_superpoints(storage.join(scans, "segments.json"), segments_to_write(data), data.scene_id)
