"""Writers of ScanNet v2 scenes: the SensReader export layout and the raw ``.sens`` stream.

What is written is what :mod:`tracklift.datasets.scannet` reads back: mesh and poses stored un-aligned with
the ``axisAlignment`` recorded in ``<s>.txt``, colour at any size with matching colour intrinsics, depth in
millimetres, GT as segments + aggregation + a ``scannetv2-labels.combined.tsv``-shaped label map.
The segments file holds the scene's superpoints (computed when the scene has GT but none), split where GT
crosses them so that the aggregation reproduces GT exactly; a scene without GT writes its superpoints as
they are.
"""

from __future__ import annotations

import numpy as np

from tracklift import storage
from tracklift.datasets import annotations, sens
from tracklift.datasets.annotations import segments_to_write, write_superpoints
from tracklift.datasets.images import encode_jpeg, encode_png, resize_color
from tracklift.datasets.ply import write_ply
from tracklift.datasets.scene import Intrinsics, Mesh, SceneData, pose_is_valid

LABEL_FILE = "scannetv2-labels.combined.tsv"


def _fmt_matrix(m: np.ndarray) -> str:
    return "\n".join(" ".join(repr(float(x)) for x in row) for row in np.asarray(m, dtype=np.float64)) + "\n"


def _write_common(
    data: SceneData, scene_url: str, align: np.ndarray, color_size: tuple[int, int], extra_meta: dict
) -> None:
    """Mesh (un-aligned), ``<s>.txt``, annotations and label map: what both flavours share."""
    sid = data.scene_id
    inv = np.linalg.inv(align)
    v = data.mesh.vertices.astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]
    write_ply(storage.join(scene_url, f"{sid}_vh_clean_2.ply"), Mesh(v, data.mesh.colors, data.mesh.faces))
    intr = data.intrinsics
    ci = intr.scaled(*color_size)
    meta = {
        "axisAlignment": " ".join(repr(float(x)) for x in align.reshape(-1)),
        "colorHeight": ci.height,
        "colorWidth": ci.width,
        "depthHeight": intr.height,
        "depthWidth": intr.width,
        "fx_color": ci.fx,
        "fx_depth": intr.fx,
        "fy_color": ci.fy,
        "fy_depth": intr.fy,
        "mx_color": ci.cx,
        "mx_depth": intr.cx,
        "my_color": ci.cy,
        "my_depth": intr.cy,
        "numColorFrames": len(data.frames),
        "numDepthFrames": len(data.frames),
        "sceneType": "Synthetic",
        **extra_meta,
    }
    storage.write_text(
        storage.join(scene_url, f"{sid}.txt"), "".join(f"{k} = {v}\n" for k, v in meta.items())
    )
    segs = f"{sid}_vh_clean_2.0.010000.segs.json"
    if data.gt_instance is not None:
        gt = np.asarray(data.gt_instance, dtype=np.int64)
        names = annotations.label_names((gt[gt > 0] // 1000).tolist(), data.labels)
        annotations.write_annotations(
            storage.join(scene_url, segs),
            storage.join(scene_url, f"{sid}.aggregation.json"),
            gt,
            data.mesh.vertices,
            names,
            f"scannet.{sid}",
            f"scannet.{segs}",
            segments=segments_to_write(data, scene_url),
        )
        annotations.write_label_tsv(storage.join(scene_url, LABEL_FILE), names)
    elif data.superpoints is not None:
        write_superpoints(storage.join(scene_url, segs), segments_to_write(data), f"scannet.{sid}")


def _k44(intr: Intrinsics) -> np.ndarray:
    K = np.eye(4)
    K[:3, :3] = intr.K
    return K


def _stored_pose(pose: np.ndarray, inv_align: np.ndarray) -> np.ndarray:
    """What ScanNet stores: the un-aligned pose, or all ``-inf`` for a frame whose tracking was lost."""
    return inv_align @ pose if pose_is_valid(pose) else np.full((4, 4), -np.inf)


def write_export_scene(
    data: SceneData,
    scene_url: str,
    color_size: tuple[int, int] | None = None,
    axis_align: np.ndarray | None = None,
    jpeg_quality: int = 95,
) -> None:
    """Write a scene as SensReader's export would leave it.

    Args:
        data: the scene (poses camera→world in the aligned world frame; invalid poses become ``-inf``).
        scene_url: the scene folder to write.
        color_size: ``(width, height)`` of the colour JPEGs (default: the depth size); the colour
            intrinsics are the depth intrinsics scaled to it.
        axis_align: (4, 4) rigid axisAlignment to record; mesh and poses are stored un-aligned so that
            reading applies it back (default identity).
        jpeg_quality: JPEG quality of the colour frames.
    """
    align = np.eye(4) if axis_align is None else np.asarray(axis_align, dtype=np.float64)
    inv = np.linalg.inv(align)
    intr = data.intrinsics
    color_size = color_size or (intr.width, intr.height)
    for f in data.frames:
        color = resize_color(f.color, *color_size)
        storage.write_bytes(
            storage.join(scene_url, "color", f"{f.index}.jpg"), encode_jpeg(color, jpeg_quality)
        )
        storage.write_bytes(
            storage.join(scene_url, "depth", f"{f.index}.png"), encode_png(_depth_mm(f.depth))
        )
        storage.write_text(
            storage.join(scene_url, "pose", f"{f.index}.txt"), _fmt_matrix(_stored_pose(f.pose, inv))
        )
    idir = storage.join(scene_url, "intrinsic")
    storage.write_text(storage.join(idir, "intrinsic_color.txt"), _fmt_matrix(_k44(intr.scaled(*color_size))))
    storage.write_text(storage.join(idir, "intrinsic_depth.txt"), _fmt_matrix(_k44(intr)))
    storage.write_text(storage.join(idir, "extrinsic_color.txt"), _fmt_matrix(np.eye(4)))
    storage.write_text(storage.join(idir, "extrinsic_depth.txt"), _fmt_matrix(np.eye(4)))
    _write_common(data, scene_url, align, color_size, {})


def _depth_mm(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres → uint16 millimetres (non-finite → 0 = invalid, clipped to 65.535 m)."""
    mm = np.round(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def write_sens_scene(
    data: SceneData,
    scene_url: str,
    color_size: tuple[int, int] | None = None,
    axis_align: np.ndarray | None = None,
    jpeg_quality: int = 95,
) -> None:
    """Write a scene as a raw ScanNet scan: ``<s>.sens`` (JPEG colour, zlib depth) + mesh + annotations.

    Args: as for :func:`write_export_scene`. Frames are stored in list order; on read their ids are
    their positions (0, 1, ...), as in ScanNet.
    """
    align = np.eye(4) if axis_align is None else np.asarray(axis_align, dtype=np.float64)
    inv = np.linalg.inv(align)
    intr = data.intrinsics
    color_size = color_size or (intr.width, intr.height)
    header = sens.SensHeader(
        intrinsic_color=_k44(intr.scaled(*color_size)),
        intrinsic_depth=_k44(intr),
        color_width=color_size[0],
        color_height=color_size[1],
        depth_width=intr.width,
        depth_height=intr.height,
    )
    records = [
        sens.encode_frame(
            _stored_pose(f.pose, inv),
            encode_jpeg(resize_color(f.color, *color_size), jpeg_quality),
            _depth_mm(f.depth),
            timestamp=int(f.index),
        )
        for f in data.frames
    ]
    sens.write_sens(storage.join(scene_url, f"{data.scene_id}.sens"), header, records)
    _write_common(data, scene_url, align, color_size, {})
