"""CLIP features per 3D instance: best views, multi-scale crops, mean embedding (after OpenMask3D).

For every instance (a boolean mask over the mesh vertices):
  1. each frame's visible vertices are found with the lifting stage's depth test
     (:func:`tracklift.lifting.project.visible_ids`: in front of the camera, inside the image, and
     ``|z - depth| <`` tolerance, so vertices hidden behind other surfaces do not count);
  2. the frames where most of the instance's vertices are visible are its views (at most
     ``frames_per_instance``; a view needs ``min_mask_pixels`` distinct pixels under its visible vertices);
  3. in each view, the box of the projected visible vertices is cropped at several scales
     (``crop_scales``), each crop a square around the box centre (CLIP's preprocessing centre-crops to a
     square: a long thin box would otherwise lose its ends), shifted to stay inside the image;
  4. the instance's feature is the mean of its crops' unit embeddings, re-normalised. An instance that no
     frame sees keeps a zero row (ranked last by :func:`tracklift.openvocab.retrieval.rank_instances`).

OpenMask3D refines each projected mask with SAM before taking its box; here the box is that of the projected
visible vertices themselves (no 2D model needed); a prediction with stray far-away vertices gets a larger box.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from tracklift.datasets.scene import Scene
from tracklift.errors import DataError
from tracklift.geometry.camera import project_batch
from tracklift.lifting.project import VisibilityConfig, visible_ids
from tracklift.openvocab.config import ClipConfig
from tracklift.structures import Instances

__all__ = [
    "ImageEncoder",
    "View",
    "crop_box",
    "crop_image",
    "features_from_views",
    "instance_features",
    "select_views",
]

#: Fill of the padding that squares a crop wider or taller than the image (CLIP's mean colour).
PAD_COLOR = (122, 116, 104)


class ImageEncoder(Protocol):
    """What :func:`features_from_views` needs from an encoder (``ClipEncoder`` is one)."""

    dim: int

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class View:
    """One frame in which an instance is seen.

    Attributes:
        instance: index k of the instance.
        position: 0-based frame position in the scene (``scene.frame(position)``).
        visible: number of the instance's vertices visible in the frame.
        pixels: number of distinct pixels those vertices project to.
        box: ``(x0, y0, x1, y1)`` pixel columns and rows of the projected vertices, end-exclusive.
    """

    instance: int
    position: int
    visible: int
    pixels: int
    box: tuple[int, int, int, int]


def select_views(scene: Scene, instances: Instances, cfg: ClipConfig | None = None) -> list[list[View]]:
    """The frames that see each instance best (most visible vertices, occlusion tested with depth).

    Args:
        scene: the scan whose mesh vertices ``instances`` are over (frames are read in batches; only depth
            and pose are used here).
        instances: K masks over the N mesh vertices.
        cfg: ``frames_per_instance``, ``min_mask_pixels``, ``frame_step`` and the depth tolerances.

    Returns:
        per instance, its views best first (most visible vertices; ties to the earlier frame); an empty
        list for an instance no frame sees.

    Raises:
        DataError: the masks do not cover the mesh's vertices, or a frame's depth has the wrong size.
    """
    cfg = cfg or ClipConfig()
    where = scene.source or scene.scene_id
    verts = np.asarray(scene.vertices, dtype=np.float32)
    if instances.num_points != len(verts):
        raise DataError(
            where, f"instances are over {instances.num_points} points but the mesh has {len(verts)} vertices"
        )
    K = len(instances)
    if K == 0 or len(scene) == 0:
        return [[] for _ in range(K)]
    # Only vertices of some instance matter: project those alone.
    used = np.nonzero(instances.masks.any(axis=0))[0]
    masks = instances.masks[:, used]
    points = torch.from_numpy(np.ascontiguousarray(verts[used]))
    intr = scene.intrinsics
    H, W = intr.height, intr.width
    vis_cfg = VisibilityConfig(depth_abs_tol=cfg.depth_abs_tol, depth_rel_tol=cfg.depth_rel_tol)
    positions = list(range(0, len(scene), cfg.frame_step))
    counts = np.zeros((K, len(positions)), dtype=np.int64)
    visible: dict[int, np.ndarray] = {}  # frame position -> indices into `used` of its visible vertices
    poses: dict[int, np.ndarray] = {}
    step = vis_cfg.frames_per_batch(len(used), H * W)
    for start in range(0, len(positions), step):
        batch = positions[start : start + step]
        frames = [scene.frame(p) for p in batch]
        for p, f in zip(batch, frames):
            if np.shape(f.depth) != (H, W):
                raise DataError(
                    f"{where}#frame{p}", f"depth has shape {np.shape(f.depth)}, expected {(H, W)}"
                )
        pose_t = torch.from_numpy(np.stack([f.pose for f in frames]).astype(np.float32))
        depth_t = torch.from_numpy(np.stack([np.asarray(f.depth, dtype=np.float32) for f in frames]))
        no_ids = torch.zeros((len(batch), H, W), dtype=torch.int64)  # ids are not needed, only visibility
        for j, (p, f, (idx, _)) in enumerate(
            zip(batch, frames, visible_ids(points, pose_t, depth_t, no_ids, intr, vis_cfg))
        ):
            c = masks[:, idx].sum(axis=1)
            counts[:, start + j] = c
            if c.any():
                visible[p] = idx.astype(np.int32)
                poses[p] = np.asarray(f.pose, dtype=np.float32)

    out: list[list[View]] = []
    for k in range(K):
        views: list[View] = []
        # distinct pixels <= visible vertices, so frames under the pixel threshold can be skipped upfront
        for j in np.argsort(-counts[k], kind="stable"):
            if len(views) == cfg.frames_per_instance or counts[k, j] < cfg.min_mask_pixels:
                break
            p = positions[j]
            idx = visible[p]
            sel = idx[masks[k, idx]]
            rows, cols, _, _ = project_batch(points[sel], torch.from_numpy(poses[p][None]), intr)
            rows, cols = rows[0].numpy(), cols[0].numpy()
            pixels = int(np.unique(rows * W + cols).size)
            if pixels < cfg.min_mask_pixels:
                continue
            box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
            views.append(View(k, p, int(counts[k, j]), pixels, box))
        out.append(views)
    return out


def crop_box(
    box: tuple[int, int, int, int], scale: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """A square crop around a box, ``scale`` times the box's longer side, shifted to lie inside the image.

    Args:
        box: ``(x0, y0, x1, y1)`` end-exclusive pixels.
        scale: side of the square as a multiple of ``max(x1 - x0, y1 - y0)``.
        width: image width, pixels.
        height: image height, pixels.

    Returns:
        ``(x0, y0, x1, y1)`` inside the image; a side longer than the image is cut to the image (the crop is
        then not square; :func:`crop_image` pads it).
    """
    x0, y0, x1, y1 = box
    side = max(1, int(round(max(x1 - x0, y1 - y0) * float(scale))))
    sx, sy = min(side, width), min(side, height)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    nx = int(np.clip(round(cx - sx / 2.0), 0, width - sx))
    ny = int(np.clip(round(cy - sy / 2.0), 0, height - sy))
    return nx, ny, nx + sx, ny + sy


def crop_image(color: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Cut ``box`` out of an image and pad it to a square with :data:`PAD_COLOR` (centred).

    Args:
        color: (H, W, 3) uint8 RGB.
        box: ``(x0, y0, x1, y1)`` end-exclusive, inside the image.

    Returns:
        (S, S, 3) uint8 with ``S = max(x1 - x0, y1 - y0)``.
    """
    x0, y0, x1, y1 = box
    crop = color[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    if h == w:
        return np.ascontiguousarray(crop)
    s = max(h, w)
    out = np.empty((s, s, 3), dtype=np.uint8)
    out[:] = PAD_COLOR
    oy, ox = (s - h) // 2, (s - w) // 2
    out[oy : oy + h, ox : ox + w] = crop
    return out


def features_from_views(
    scene: Scene, views: list[list[View]], encoder: ImageEncoder, cfg: ClipConfig | None = None
) -> np.ndarray:
    """Embed the multi-scale crops of each instance's views and average them per instance.

    Args:
        scene: the scan (each frame holding a view is read once, for its colour).
        views: per instance its views (:func:`select_views`).
        encoder: has ``dim`` and ``encode_images(list of (H, W, 3) uint8) -> (n, dim)`` unit rows.
        cfg: ``crop_scales`` and ``batch_size`` (crops sent to the encoder at once).

    Returns:
        (K, D) float32: unit rows, zero rows for instances without views.
    """
    cfg = cfg or ClipConfig()
    K, D = len(views), int(encoder.dim)
    sums = np.zeros((K, D), dtype=np.float64)
    n_crops = np.zeros(K, dtype=np.int64)
    by_frame: dict[int, list[View]] = defaultdict(list)
    for vs in views:
        for v in vs:
            by_frame[v.position].append(v)
    W, H = scene.intrinsics.width, scene.intrinsics.height
    crops: list[np.ndarray] = []
    owners: list[int] = []

    def flush() -> None:
        if not crops:
            return
        emb = np.asarray(encoder.encode_images(crops), dtype=np.float64)
        if emb.shape != (len(crops), D):
            raise ValueError(f"encoder returned {emb.shape} for {len(crops)} crops, expected (n, {D})")
        np.add.at(sums, np.asarray(owners), emb)
        np.add.at(n_crops, np.asarray(owners), 1)
        crops.clear()
        owners.clear()

    for p in sorted(by_frame):
        color = np.asarray(scene.frame(p).color)
        if color.shape != (H, W, 3):
            where = f"{scene.source or scene.scene_id}#frame{p}"
            raise DataError(where, f"colour has shape {color.shape}, expected {(H, W, 3)}")
        for v in by_frame[p]:
            for s in cfg.crop_scales:
                crops.append(crop_image(color, crop_box(v.box, s, W, H)))
                owners.append(v.instance)
        if len(crops) >= cfg.batch_size:
            flush()
    flush()
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    feats = np.where((n_crops[:, None] > 0) & (norms > 0), sums / np.maximum(norms, 1e-12), 0.0)
    return feats.astype(np.float32)


def instance_features(
    scene: Scene, instances: Instances, encoder: ImageEncoder, cfg: ClipConfig | None = None
) -> np.ndarray:
    """CLIP feature of each instance: mean embedding of multi-scale crops in its best views, re-normalised.

    Args:
        scene: the scan the instances are over (mesh vertices, RGB-D frames, poses).
        instances: K boolean masks over the N mesh vertices.
        encoder: a :class:`~tracklift.openvocab.encoder.ClipEncoder` (or anything with ``dim`` and
            ``encode_images``).
        cfg: view selection and crops (default :class:`ClipConfig`).

    Returns:
        (K, D) float32: unit rows; a zero row for an instance never seen in any frame.
    """
    return features_from_views(scene, select_views(scene, instances, cfg), encoder, cfg)
