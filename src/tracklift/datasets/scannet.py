"""ScanNet v2 scenes: the SensReader export and the raw ``.sens`` stream, read lazily and written.

A scene folder ``<s>/`` (``s`` like ``scene0000_00``) holds, for both flavours::

    <s>_vh_clean_2.ply                     the mesh every per-vertex GT refers to
    <s>.txt                                "key = value" lines; axisAlignment = 16 floats (row-major 4x4)
    <s>_vh_clean_2.0.010000.segs.json      segIndices            (optional: Scene.superpoints; with the
                                                                  next one: GT)
    <s>.aggregation.json                   segGroups

and either the export (``color/<i>.jpg``, ``depth/<i>.png`` 16-bit mm, ``pose/<i>.txt`` 4x4 camera→world,
``intrinsic/{intrinsic,extrinsic}_{color,depth}.txt``; ``<i>`` not zero-padded) or ``<s>.sens``.

Conventions on read: the axis alignment is applied to the mesh and left-multiplied to every pose; the
depth intrinsics are the scene's; colour is resized to the depth size; frames whose pose is not a finite
rigid transform (ScanNet writes ``-inf`` when tracking was lost) are left out and listed in
``Scene.skipped``. Label names become ids through ``scannetv2-labels.combined.tsv`` (column ``id`` by
default), looked for in the scene folder and the two folders above it, unless ``label_map`` is given.
``.sens`` frame ids are positions in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

import numpy as np

from tracklift import storage
from tracklift.datasets import annotations, sens
from tracklift.datasets.annotations import load_superpoints
from tracklift.datasets.images import decode_image, resize_color
from tracklift.datasets.ply import read_ply
from tracklift.datasets.scannet_write import LABEL_FILE, write_export_scene, write_sens_scene
from tracklift.datasets.scene import Frame, Intrinsics, Mesh, Scene, check_frame, pose_is_valid
from tracklift.errors import DataError

__all__ = [
    "looks_like_export",
    "looks_like_sens",
    "read_export_scene",
    "read_sens_scene",
    "write_export_scene",
    "write_sens_scene",
]

_EXPORT_DIRS = {"color", "depth", "pose", "intrinsic"}
_INT_NAME = re.compile(r"^(\d+)\.(\w+)$")


# ------------------------------------------------------------------------------------------ detection


def looks_like_export(scene_url: str, names: set[str]) -> bool:
    return _EXPORT_DIRS <= names


def looks_like_sens(scene_url: str, names: set[str]) -> bool:
    return any(n.endswith(".sens") for n in names)


# ----------------------------------------------------------------------------------- shared scene parts


def _scene_id(scene_url: str, names: set[str]) -> str:
    """The ``<s>`` prefix of the scene's files (the folder name when it matches)."""
    base = storage.basename(scene_url)
    if f"{base}_vh_clean_2.ply" in names or f"{base}.sens" in names:
        return base
    for n in sorted(names):
        for suffix in ("_vh_clean_2.ply", ".sens"):
            if n.endswith(suffix):
                return n[: -len(suffix)]
    return base


def read_meta(url: str) -> dict[str, str]:
    """``<s>.txt``: ``key = value`` lines into a dict of strings (empty when the file is absent)."""
    if not storage.exists(url):
        return {}
    out = {}
    for line in storage.read_text(url).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def axis_alignment(meta: dict[str, str], url: str) -> np.ndarray:
    """(4, 4) float64 axisAlignment from ``<s>.txt`` (identity when absent)."""
    if "axisAlignment" not in meta:
        return np.eye(4)
    try:
        A = np.array(meta["axisAlignment"].split(), dtype=np.float64)
    except ValueError:
        raise DataError(url, "axisAlignment must hold 16 numbers") from None
    if A.shape != (16,) or not pose_is_valid(A.reshape(4, 4)):
        raise DataError(url, "axisAlignment must be 16 numbers forming a rigid 4x4 transform")
    return A.reshape(4, 4)


def read_matrix(url: str, what: str) -> np.ndarray:
    """A 4x4 matrix written as 16 whitespace-separated numbers (missing file → DataError)."""
    if not storage.exists(url):
        raise DataError(url, f"missing {what}")
    try:
        m = np.array(storage.read_text(url).split(), dtype=np.float64)
    except ValueError:
        raise DataError(url, f"{what} must hold 16 numbers") from None
    if m.shape != (16,):
        raise DataError(url, f"{what} must hold 16 numbers, found {m.size}")
    return m.reshape(4, 4)


def _load_mesh(mesh_url: str, align: np.ndarray) -> Mesh:
    mesh = read_ply(mesh_url)
    v = mesh.vertices.astype(np.float64) @ align[:3, :3].T + align[:3, 3]
    return Mesh(v.astype(np.float32), mesh.colors, mesh.faces)


@dataclass
class _Common:
    """What both flavours share: mesh, alignment, GT loader."""

    scene_id: str
    align: np.ndarray
    load_mesh: partial
    load_gt: partial | None
    load_superpoints: partial | None = None


def _common(scene_url: str, names: set[str], label_map, label_column: str) -> _Common:
    sid = _scene_id(scene_url, names)
    meta_url = storage.join(scene_url, f"{sid}.txt")
    align = axis_alignment(read_meta(meta_url), meta_url)
    mesh_name = f"{sid}_vh_clean_2.ply"
    if mesh_name not in names:
        raise DataError(scene_url, f"missing the mesh {mesh_name}")
    mesh_url = storage.join(scene_url, mesh_name)
    segs, agg = f"{sid}_vh_clean_2.0.010000.segs.json", f"{sid}.aggregation.json"
    load_gt = None
    if segs in names and agg in names:
        candidates = [storage.join(annotations.parent_url(scene_url, k), LABEL_FILE) for k in (0, 1, 2)]
        load_gt = partial(
            _load_gt,
            storage.join(scene_url, segs),
            storage.join(scene_url, agg),
            mesh_url,
            label_map,
            candidates,
            label_column,
        )
    load_sp = None
    if (
        segs in names
    ):  # the segments file is the scene's superpoints (read apart from GT: no label map needed)
        load_sp = partial(load_superpoints, storage.join(scene_url, segs), mesh_url)
    return _Common(sid, align, partial(_load_mesh, mesh_url, align), load_gt, load_sp)


def _load_gt(segs_url, agg_url, mesh_url, label_map, candidates, label_column) -> np.ndarray:
    n = annotations.ply_vertex_count(mesh_url)
    return annotations.load_gt(segs_url, agg_url, n, label_map, candidates, label_column)


# --------------------------------------------------------------------------------------------- export


def _ids(names: list[str], ext: str) -> set[int]:
    out = set()
    for n in names:
        m = _INT_NAME.match(n)
        if m and m.group(2) == ext:
            out.add(int(m.group(1)))
    return out


def _parse_pose(data: bytes, url: str) -> np.ndarray:
    try:
        m = np.array(data.decode("utf-8").split(), dtype=np.float64)
    except (UnicodeDecodeError, ValueError):
        raise DataError(url, "pose file must hold 16 numbers") from None
    if m.shape != (16,):
        raise DataError(url, f"pose file must hold 16 numbers, found {m.size}")
    return m.reshape(4, 4)


def _image_size(url: str) -> tuple[int, int]:
    arr = decode_image(storage.read_bytes(url), url)
    return arr.shape[1], arr.shape[0]


def _load_export_frame(scene_url: str, intr: Intrinsics, poses: dict[int, np.ndarray], fid: int) -> Frame:
    color_url = storage.join(scene_url, "color", f"{fid}.jpg")
    depth_url = storage.join(scene_url, "depth", f"{fid}.png")
    color = decode_image(storage.read_bytes(color_url), color_url)
    if color.ndim != 3:
        raise DataError(color_url, "color image is not RGB")
    depth = decode_image(storage.read_bytes(depth_url), depth_url)
    if depth.dtype != np.uint16:
        raise DataError(depth_url, f"depth must be a 16-bit PNG, got {depth.dtype}")
    if depth.shape != (intr.height, intr.width):
        raise DataError(
            depth_url,
            f"depth image is {depth.shape[1]}x{depth.shape[0]}, expected {intr.width}x{intr.height}",
        )
    color = resize_color(color, intr.width, intr.height)
    frame = Frame(fid, color, depth.astype(np.float32) / 1000.0, poses[fid])
    return check_frame(frame, intr, depth_url)


def read_export_scene(
    scene_url: str, label_map: annotations.LabelSource = None, label_column: str = "id"
) -> Scene:
    """Open a SensReader-exported ScanNet scene folder lazily.

    Args:
        scene_url: the scene folder.
        label_map: ``{name: id}``, or the URL of a label file; default: ``scannetv2-labels.combined.tsv``
            in the scene folder or one of the two above it.
        label_column: TSV column holding the label id (``id`` = ScanNet200 ids, ``nyu40id``).

    Returns:
        A :class:`Scene` with frames, poses (camera→world, axis-aligned, metres) and depth intrinsics.
    """
    names = set(storage.listdir(scene_url))
    common = _common(scene_url, names, label_map, label_column)
    K = read_matrix(storage.join(scene_url, "intrinsic", "intrinsic_depth.txt"), "depth intrinsics")
    listing = {d: storage.listdir(storage.join(scene_url, d)) for d in ("color", "depth", "pose")}
    color_ids, depth_ids = _ids(listing["color"], "jpg"), _ids(listing["depth"], "png")
    pose_ids = sorted(_ids(listing["pose"], "txt"))
    if not pose_ids:
        raise DataError(storage.join(scene_url, "pose"), "no pose/<i>.txt files")
    meta = read_meta(storage.join(scene_url, f"{common.scene_id}.txt"))
    if "depthWidth" in meta and "depthHeight" in meta:
        size = (int(meta["depthWidth"]), int(meta["depthHeight"]))
    else:  # no sizes in <s>.txt: the first depth image tells
        first = min(depth_ids, default=None)
        if first is None:
            raise DataError(storage.join(scene_url, "depth"), "no depth/<i>.png files")
        size = _image_size(storage.join(scene_url, "depth", f"{first}.png"))
    intr = Intrinsics.from_matrix(K, *size)
    # One concurrent fetch for all pose files (thousands of tiny objects on S3).
    fs, _ = storage.filesystem(scene_url)
    urls = {fid: storage.join(scene_url, "pose", f"{fid}.txt") for fid in pose_ids}
    paths = {fid: storage.filesystem(u)[1] for fid, u in urls.items()}
    blobs = fs.cat(list(paths.values()))
    frame_ids, poses, skipped = [], {}, {}
    for fid in pose_ids:
        pose = _parse_pose(blobs[paths[fid]], urls[fid])
        pose = common.align @ pose if np.all(np.isfinite(pose)) else pose
        if fid not in color_ids or fid not in depth_ids:
            skipped[fid] = "missing color or depth image"
        elif not pose_is_valid(pose):
            skipped[fid] = "invalid pose"
        else:
            frame_ids.append(fid)
            poses[fid] = pose
    for fid in sorted((color_ids & depth_ids) - set(pose_ids)):
        skipped[fid] = "missing pose"
    return Scene(
        scene_id=common.scene_id,
        intrinsics=intr,
        frame_ids=frame_ids,
        load_frame=partial(_load_export_frame, scene_url, intr, poses),
        load_mesh=common.load_mesh,
        load_gt=common.load_gt,
        load_superpoints=common.load_superpoints,
        skipped=skipped,
        source=scene_url,
        format="scannet",
        poses=np.stack([poses[i] for i in frame_ids]) if frame_ids else np.zeros((0, 4, 4)),
    )


# ----------------------------------------------------------------------------------------------- .sens


def _load_sens_frame(index: sens.SensIndex, intr: Intrinsics, align: np.ndarray, k: int) -> Frame:
    color, depth_raw = sens.read_frame(index, k)
    color = resize_color(color, intr.width, intr.height)
    depth = depth_raw.astype(np.float32) / np.float32(index.header.depth_shift)
    return check_frame(Frame(k, color, depth, align @ index.poses[k]), intr, f"{index.url}#frame{k}")


def read_sens_scene(
    scene_url: str, label_map: annotations.LabelSource = None, label_column: str = "id"
) -> Scene:
    """Open a raw ScanNet scene (``<s>.sens`` + mesh + annotations); frames are decoded on demand.

    Args:
        scene_url: the scene folder.
        label_map, label_column: as for :func:`read_export_scene`.

    Returns:
        A :class:`Scene`; frame ids are 0-based positions in the ``.sens`` file.
    """
    names = set(storage.listdir(scene_url))
    common = _common(scene_url, names, label_map, label_column)
    sens_name = f"{common.scene_id}.sens"
    if sens_name not in names:
        sens_name = min(n for n in names if n.endswith(".sens"))
    index = sens.read_index(storage.join(scene_url, sens_name))
    h = index.header
    if h.depth_shift <= 0:
        raise DataError(index.url, f"depth_shift must be positive, got {h.depth_shift}")
    intr = Intrinsics.from_matrix(h.intrinsic_depth, h.depth_width, h.depth_height)
    frame_ids, skipped = [], {}
    finite = np.all(np.isfinite(index.poses), axis=(1, 2))
    poses = index.poses.copy()
    poses[finite] = np.einsum("ij,fjk->fik", common.align, index.poses[finite])
    for k in range(len(index)):
        if pose_is_valid(poses[k]):
            frame_ids.append(k)
        else:
            skipped[k] = "invalid pose"
    notes = []
    partial_export = sorted(_EXPORT_DIRS & names)
    if partial_export:  # detection prefers a whole export; this one lacks a folder, so the .sens is read
        notes.append(
            f"ScanNet export incomplete (has {', '.join(partial_export)}/, lacks "
            f"{', '.join(sorted(_EXPORT_DIRS - names))}/): read from {sens_name} instead, "
            f"{len(frame_ids)} frames"
        )
    return Scene(
        scene_id=common.scene_id,
        intrinsics=intr,
        frame_ids=frame_ids,
        load_frame=partial(_load_sens_frame, index, intr, common.align),
        load_mesh=common.load_mesh,
        load_gt=common.load_gt,
        load_superpoints=common.load_superpoints,
        skipped=skipped,
        notes=notes,
        source=scene_url,
        format="scannet-sens",
        poses=poses[frame_ids],
    )
