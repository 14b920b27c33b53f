"""Curriculum training samples: what the 3D network sees at each stage.

  - stage 1: one frame's partial point cloud (its valid depth pixels back-projected to the world frame and
    voxel-downsampled) labelled with that frame's *independent* id map;
  - stage 2: a window of ``window`` consecutive frames (windows start every ``stride`` frames; a last
    window is aligned to the end so every frame is covered) fused into one cloud, labelled with the
    *tracked* ids;
  - stage 3: the full scene mesh vertices and colours labelled with the lifted :class:`PseudoLabels`.

Voxel downsampling (stages 1 and 2) keeps one point per occupied cube of side ``voxel_size`` (default
2 cm, the voxel size of Mask3D-style sparse UNets on ScanNet): the mean position and colour of the pixels in
it, and the majority of their 2D ids (id 0 counts too, so a voxel mostly seen as "no object" stays
unlabelled). In every stage, instances with fewer than ``min_points`` points are set to 0 (Segment3D drops
groups under 100 points). Instance ids keep their source values (frame-local ids for stage 1, tracked or
lifted ids for stages 2 and 3); 0 means unlabelled / ignore.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics, Scene
from tracklift.errors import DataError
from tracklift.geometry.camera import backproject_pixels, depth_pixels
from tracklift.geometry.voxels import voxel_downsample_mean
from tracklift.lifting.project import IdMaps, normalise_id_maps
from tracklift.lifting.vote import PseudoLabels, group_winners

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One training sample.

    Attributes:
        points: (M, 3) float32 world coordinates, metres.
        colors: (M, 3) uint8 RGB.
        instance: (M,) int64 instance id per point: > 0 an instance, 0 = unlabelled (ignored by the
            losses), -1 = outside the scan (stage 3 only: a mesh vertex no frame saw, which a reconstruction
            from this scan would not contain; training leaves such points out, see :func:`scanned_part`).
        scene_id: the scene it comes from.
        stage: curriculum stage, 1, 2 or 3.
        frames: positions (in the scene's frame list) of the frames used; empty for stage 3.
        superpoints: optional (M,) int64 superpoint id per point (non-negative). Stage 3 takes the scene's
            (``Scene.superpoints``: the format's segments file or ScanNet's mesh segmentator); partial clouds
            (stages 1 and 2) have none here and get the point-cloud segmentator's when training first
            uses them (:func:`tracklift.training.data.with_superpoints`). :meth:`subset` keeps them in step
            with the points, so crops and subsamples stay consistent.
    """

    points: np.ndarray
    colors: np.ndarray
    instance: np.ndarray
    scene_id: str
    stage: int
    frames: tuple[int, ...] = field(default_factory=tuple)
    superpoints: np.ndarray | None = None

    def __post_init__(self):
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 3)
        self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
        self.instance = np.asarray(self.instance, dtype=np.int64).reshape(-1)
        self.frames = tuple(int(k) for k in self.frames)
        m = len(self.points)
        if len(self.colors) != m or len(self.instance) != m:
            raise ValueError(
                f"Sample arrays disagree: {m} points, {len(self.colors)} colours, {len(self.instance)} ids"
            )
        if self.stage not in (1, 2, 3):
            raise ValueError(f"Sample.stage must be 1, 2 or 3, got {self.stage}")
        if self.superpoints is not None:
            self.superpoints = np.asarray(self.superpoints, dtype=np.int64).reshape(-1)
            if len(self.superpoints) != m:
                raise ValueError(f"Sample has {m} points but {len(self.superpoints)} superpoint ids")
            if m and int(self.superpoints.min()) < 0:
                raise ValueError(f"Sample of {self.scene_id}: negative superpoint ids")

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, index: np.ndarray) -> Sample:
        """The sample restricted to the points at ``index`` (positions or a boolean mask), same scene,
        stage and frames; superpoint ids (when present) follow the points."""
        return Sample(
            self.points[index],
            self.colors[index],
            self.instance[index],
            self.scene_id,
            self.stage,
            self.frames,
            None if self.superpoints is None else self.superpoints[index],
        )

    @property
    def num_instances(self) -> int:
        return len(np.unique(self.instance[self.instance > 0]))


@dataclass(frozen=True)
class SampleConfig:
    """Sample building.

    Args:
        voxel_size: voxel side for stages 1 and 2, metres (0 keeps every valid pixel).
        min_points: instances with fewer points in the sample are set to 0.
        max_depth: pixels farther than this (metres) are left out (None keeps all valid depth).
        window: stage 2 window length, frames.
        stride: stage 2 window start spacing, frames.
        frame_step: stage 1 uses every ``frame_step``-th frame that has a map.
        stage3_min_seen: stage 3 marks mesh vertices seen by fewer frames than this as outside the scan
            (id -1). A reconstructed scan (ScanNet's meshes) only holds surfaces its frames saw; a synthetic
            scene's mesh is the whole room, most of it never filmed, and training on those vertices teaches
            the network that unfilmed objects are no objects. 0 keeps every vertex.
    """

    voxel_size: float = 0.02
    min_points: int = 100
    max_depth: float | None = None
    window: int = 10
    stride: int = 5
    frame_step: int = 1
    stage3_min_seen: int = 1


def backproject(
    frame: Frame, intrinsics: Intrinsics, ids: np.ndarray | None = None, max_depth: float | None = None
):
    """Valid depth pixels of a frame as world points.

    Args:
        frame: depth (H, W) metres (0 = invalid), color (H, W, 3), pose camera→world.
        intrinsics: depth intrinsics.
        ids: optional (H, W) int id map read at the same pixels.
        max_depth: leave out pixels farther than this, metres.

    Returns:
        ``(points, colors, ids)``: (P, 3) float32 world metres, (P, 3) uint8, (P,) int64 (zeros if no map).
    """
    depth = np.asarray(frame.depth, dtype=np.float32)
    r, c = depth_pixels(depth, max_depth=max_depth)
    # float32 throughout (z's dtype): sub-millimetre at scan scale, and twice as fast as float64
    pts = backproject_pixels(r, c, depth[r, c], intrinsics, frame.pose)
    lab = np.zeros(len(r), np.int64) if ids is None else np.asarray(ids)[r, c].astype(np.int64)
    return pts, np.asarray(frame.color)[r, c].astype(np.uint8), lab


def voxel_downsample(points: np.ndarray, colors: np.ndarray, ids: np.ndarray, voxel_size: float):
    """One point per occupied voxel: mean position, mean colour, majority id (0 counts as an id).

    Args:
        points: (P, 3) float metres.
        colors: (P, 3) uint8.
        ids: (P,) int64, non-negative.
        voxel_size: cube side in metres; ``<= 0`` returns the input unchanged.

    Returns:
        ``(points (M, 3) float32, colors (M, 3) uint8, ids (M,) int64)``, voxels in ascending key order.
    """
    points = np.asarray(points, dtype=np.float32)
    if voxel_size <= 0 or len(points) == 0:
        return points, np.asarray(colors, np.uint8), np.asarray(ids, np.int64)
    pts, col, inv = voxel_downsample_mean(points, voxel_size, colors, return_inverse=True)
    _, lab, _ = group_winners(inv, ids)
    return pts.astype(np.float32), np.round(col).astype(np.uint8), lab


def drop_small(ids: np.ndarray, min_points: int) -> np.ndarray:
    """(M,) ids with instances of fewer than ``min_points`` points set to 0."""
    ids = np.asarray(ids, dtype=np.int64)
    uniq, inv, n = np.unique(ids, return_inverse=True, return_counts=True)
    keep = (uniq != 0) & (n >= min_points)
    return np.where(keep[inv], ids, 0)


def _cloud_sample(scene, positions, maps, cfg, stage, cache: dict | None = None) -> Sample:
    cache = {} if cache is None else cache
    for k in positions:
        if k not in cache:
            cache[k] = backproject(scene.frame(k), scene.intrinsics, maps[k], cfg.max_depth)
    parts = [cache[k] for k in positions]
    pts, col, ids = (np.concatenate([p[i] for p in parts]) for i in range(3))
    pts, col, ids = voxel_downsample(pts, col, ids, cfg.voxel_size)
    return Sample(pts, col, drop_small(ids, cfg.min_points), scene.scene_id, stage, tuple(positions))


def stage1_samples(scene: Scene, id_maps: IdMaps, cfg: SampleConfig = SampleConfig()) -> Iterator[Sample]:
    """Stage 1: one sample per frame with a map (every ``cfg.frame_step``-th).

    Args:
        scene: the scan.
        id_maps: per-frame *independent* (H, W) id maps, aligned with the scene's frames or a dict.
        cfg: voxel size, min points, depth cut.

    Yields:
        :class:`Sample` with ``stage=1`` and ``frames=(k,)``.
    """
    maps = normalise_id_maps(scene, id_maps)
    for j, k in enumerate(maps):
        if j % max(1, cfg.frame_step) == 0:
            yield _cloud_sample(scene, [k], maps, cfg, 1)


def windows(n_frames: int, window: int, stride: int) -> list[list[int]]:
    """Windows of ``window`` consecutive positions every ``stride``; a last window ends at the last frame.

    A scene shorter than ``window`` is one window of all its frames.
    """
    window, stride = max(1, window), max(1, stride)
    if n_frames <= window:
        return [list(range(n_frames))] if n_frames else []
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return [list(range(s, s + window)) for s in starts]


def stage2_samples(scene: Scene, id_maps: IdMaps, cfg: SampleConfig = SampleConfig()) -> Iterator[Sample]:
    """Stage 2: fused windows of consecutive frames labelled with tracked ids.

    Args:
        scene: the scan.
        id_maps: per-frame *tracked* (H, W) id maps (the same id for the same object in every frame).
        cfg: window, stride, voxel size, min points, depth cut.

    Yields:
        :class:`Sample` with ``stage=2``; windows run over the frames that have a map, in order.
    """
    maps = normalise_id_maps(scene, id_maps)
    positions = list(maps)
    cache: dict = {}  # overlapping windows back-project each frame once
    for win in windows(len(positions), cfg.window, cfg.stride):
        frames = [positions[i] for i in win]
        for k in [k for k in cache if k not in frames]:
            del cache[k]
        yield _cloud_sample(scene, frames, maps, cfg, 2, cache)


def stage3_sample(scene: Scene, labels: PseudoLabels, cfg: SampleConfig = SampleConfig()) -> Sample:
    """Stage 3: the full scene mesh labelled with lifted pseudo-labels.

    Args:
        scene: the scan (mesh vertices and colours are used as they are, no downsampling).
        labels: per-vertex pseudo-labels of this scene's mesh.
        cfg: ``min_points`` and ``stage3_min_seen`` apply.

    Returns:
        :class:`Sample` with ``stage=3``, no frames, one point per mesh vertex in vertex order, the scene's
        superpoints (``Scene.superpoints``); vertices seen by fewer than ``cfg.stage3_min_seen`` frames have
        id -1.
    """
    if len(labels) != len(scene.vertices):
        raise DataError(
            scene.source or scene.scene_id,
            f"{len(labels)} pseudo-labels for a mesh of {len(scene.vertices)} vertices",
        )
    ids = drop_small(labels.ids, cfg.min_points)
    if cfg.stage3_min_seen > 0:
        ids = np.where(labels.seen < cfg.stage3_min_seen, -1, ids)
    return Sample(scene.vertices, scene.colors, ids, scene.scene_id, 3, (), scene_superpoints(scene))


def scene_superpoints(scene: Scene) -> np.ndarray | None:
    """``scene.superpoints`` when the scene has them at hand (its format's segments file, or already
    computed), else None: the mesh segmentator is not run just for the sample (sample shards do not store
    superpoints, and training gives a sample without them the point-cloud segmentator's). Superpoints that
    cannot be read are logged, not fatal."""
    if getattr(scene, "load_superpoints", None) is None and getattr(scene, "_superpoints", None) is None:
        return None
    try:
        sp = np.asarray(scene.superpoints, dtype=np.int64).reshape(-1)
    except (DataError, ValueError, OSError) as e:
        log.warning("%s: no superpoints for the stage-3 sample (%s)", scene.scene_id, e)
        return None
    return sp if len(sp) == len(scene.vertices) and (not len(sp) or sp.min() >= 0) else None


def scanned_part(sample: Sample) -> tuple[Sample, np.ndarray | None]:
    """The points of ``sample`` inside the scan (id >= 0) and their positions in ``sample``.

    Returns:
        ``(part, index)``: ``part`` is ``sample`` itself and ``index`` None when no point is marked -1;
        otherwise ``index`` is the (M',) int64 positions of the kept points.
    """
    outside = sample.instance < 0
    if not outside.any():
        return sample, None
    index = np.flatnonzero(~outside)
    return sample.subset(index), index
