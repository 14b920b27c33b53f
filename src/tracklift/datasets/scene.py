"""The scene model every reader produces and every later stage consumes.

Conventions (all readers convert to these):
  - lengths in metres; depth 0 = invalid pixel;
  - camera frame is OpenCV's (x right, y down, z forward); ``pose`` is camera→world (4×4);
  - ``intrinsics`` are the depth camera's (:class:`tracklift.geometry.camera.Intrinsics`, pixel centres at
    integer coordinates); colour is resized to the depth size on read;
  - mesh vertices are in the same world frame as the poses (ScanNet: after ``axisAlignment``);
  - per-vertex ground truth in ScanNet's encoding ``label_id * 1000 + instance``, 0 = unannotated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tracklift.errors import DataError
from tracklift.geometry.camera import Intrinsics  # part of the scene model; defined with the camera math


@dataclass
class Frame:
    """One RGB-D frame.

    Attributes:
        index: the frame's id in its source (ScanNet file number, ScanNet++ frame number).
        color: (H, W, 3) uint8 RGB at the depth resolution.
        depth: (H, W) float32 metres, 0 = invalid.
        pose: (4, 4) float64 camera→world.
        instance: optional (H, W) int32 GT instance id per pixel (synthetic scans only; 0 = none).
            Ids match ``Scene.gt_instance`` (same ``label*1000+inst`` encoding).
        part: optional (H, W) int32 GT part id per pixel (synthetic scans only; 0 = none).
    """

    index: int
    color: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    instance: np.ndarray | None = None
    part: np.ndarray | None = None


@dataclass
class Mesh:
    """A triangle mesh: vertices (N, 3) float32 metres, colors (N, 3) uint8, faces (F, 3) int32 or None."""

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray | None = None

    def __post_init__(self):
        self.vertices = np.asarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        if self.colors is None:
            self.colors = np.full((len(self.vertices), 3), 128, dtype=np.uint8)
        self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
        if self.faces is not None:
            self.faces = np.asarray(self.faces, dtype=np.int32).reshape(-1, 3)


def pose_is_valid(pose: np.ndarray) -> bool:
    """A usable camera→world pose: finite, rigid (rotation orthonormal within 1e-3), last row 0 0 0 1."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        return False
    R = pose[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or abs(np.linalg.det(R) - 1.0) > 1e-3:
        return False
    return bool(np.allclose(pose[3], [0, 0, 0, 1], atol=1e-6))


def check_frame(frame: Frame, intrinsics: Intrinsics, url: str) -> Frame:
    """Validate a decoded frame against the scene's intrinsics; raise :class:`DataError` naming ``url``."""
    h, w = intrinsics.height, intrinsics.width
    if frame.depth.shape != (h, w):
        raise DataError(
            url, f"depth image is {frame.depth.shape[1]}x{frame.depth.shape[0]}, expected {w}x{h}"
        )
    if frame.color.shape != (h, w, 3):
        raise DataError(url, f"color image has shape {frame.color.shape}, expected ({h}, {w}, 3)")
    for name in ("instance", "part"):
        arr = getattr(frame, name)
        if arr is not None and arr.shape != (h, w):
            raise DataError(url, f"{name} map has shape {arr.shape}, expected ({h}, {w})")
    if not np.all(np.isfinite(frame.depth)) or np.any(frame.depth < 0):
        raise DataError(url, "depth has negative or non-finite values")
    if not pose_is_valid(frame.pose):
        raise DataError(url, "pose is not a finite rigid transform")
    return frame


@dataclass
class Scene:
    """A scan: lazily loaded frames, a mesh, and optional per-vertex ground truth.

    Readers build it from loader callables so that nothing heavy is read until asked for.

    Args:
        scene_id: e.g. ``scene0000_00`` or ``0d2ee665be``.
        intrinsics: depth-camera intrinsics (colour is delivered at this size).
        frame_ids: source ids of the usable frames, in capture order.
        load_frame: ``load_frame(frame_id) -> Frame``.
        load_mesh: ``load_mesh() -> Mesh``.
        load_gt: optional ``load_gt() -> (N,) int64`` per-vertex GT (``label*1000+inst``).
        load_eval_mask: optional ``() -> (N,) bool`` vertices that count in evaluation (ScanNet++).
        skipped: frames left out on reading, ``{frame_id: reason}`` (e.g. ``-inf`` pose).
        notes: how the reader had to read the scene where it did not read it the usual way (a fallback
            source, a missing optional file), in words; labeling records them in ``status.json``.
        source: URL the scene was read from (for error messages).
        format: reader name.
        poses: optional (F, 4, 4) camera→world of ``frame_ids`` when cheap to know upfront.
        load_superpoints: optional ``() -> (N,) int64`` superpoint ids from the format's segments file;
            without it :attr:`superpoints` runs the segmentator on the mesh.
    """

    scene_id: str
    intrinsics: Intrinsics
    frame_ids: list[int]
    load_frame: Callable[[int], Frame]
    load_mesh: Callable[[], Mesh]
    load_gt: Callable[[], np.ndarray] | None = None
    load_eval_mask: Callable[[], np.ndarray] | None = None
    skipped: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    format: str = ""
    poses: np.ndarray | None = None
    load_superpoints: Callable[[], np.ndarray] | None = None
    _mesh: Mesh | None = field(default=None, repr=False)
    _superpoints: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def frame(self, k: int) -> Frame:
        """The k-th usable frame (0-based position in ``frame_ids``)."""
        return self.load_frame(self.frame_ids[k])

    def frames(self, step: int = 1) -> Iterator[Frame]:
        for k in range(0, len(self.frame_ids), step):
            yield self.frame(k)

    @property
    def mesh(self) -> Mesh:
        if self._mesh is None:
            self._mesh = self.load_mesh()
        return self._mesh

    @property
    def vertices(self) -> np.ndarray:
        return self.mesh.vertices

    @property
    def colors(self) -> np.ndarray:
        return self.mesh.colors

    @property
    def gt_instance(self) -> np.ndarray | None:
        """(N,) int64 per-vertex GT in ScanNet encoding, or None when the scene has no labels."""
        if self.load_gt is None:
            return None
        gt = np.asarray(self.load_gt(), dtype=np.int64)
        if len(gt) != len(self.vertices):
            raise DataError(
                self.source, f"ground truth has {len(gt)} values for {len(self.vertices)} vertices"
            )
        return gt

    @property
    def superpoints(self) -> np.ndarray:
        """(N,) int64 superpoint id per mesh vertex, ids 0..K-1.

        Read from the format's segments file when the scene has one (ScanNet ``segs.json``, ScanNet++
        ``segments.json``, tracklift ``superpoints.json``), else computed on first use by
        :func:`tracklift.datasets.superpoints.compute_superpoints` (ScanNet's segmentator, default
        settings; the kNN variant for a mesh without faces). Cached on the scene.
        """
        if self._superpoints is None:
            from tracklift.datasets import superpoints

            if self.load_superpoints is not None:
                sp = np.asarray(self.load_superpoints(), dtype=np.int64)
                if len(sp) != len(self.vertices):
                    raise DataError(
                        self.source, f"superpoints have {len(sp)} values for {len(self.vertices)} vertices"
                    )
            else:
                sp = superpoints.compute_superpoints(self.mesh, source=self.source)
            self._superpoints = sp
        return self._superpoints

    @property
    def eval_mask(self) -> np.ndarray | None:
        if self.load_eval_mask is None:
            return None
        return np.asarray(self.load_eval_mask(), dtype=bool)


@dataclass
class SceneData:
    """A fully materialised scene, as produced by the synthetic generator and taken by writers.

    Attributes:
        scene_id: scene name.
        intrinsics: depth intrinsics.
        frames: list of :class:`Frame` (all in memory).
        mesh: the scene mesh.
        gt_instance: (N,) int64 per-vertex GT or None.
        labels: optional ``{label_id: name}`` for the label ids used in ``gt_instance``.
        parts: optional (N,) int32 per-vertex GT part id (synthetic scans).
        superpoints: optional (N,) int64 superpoint id per vertex (0..K-1); writers store it in the
            format's segments file.
        meta: free-form facts about how the scene was made (the synthetic generator's coverage,
            frames, style…), JSON-ready.
    """

    scene_id: str
    intrinsics: Intrinsics
    frames: list[Frame]
    mesh: Mesh
    gt_instance: np.ndarray | None = None
    labels: dict[int, str] | None = None
    parts: np.ndarray | None = None
    superpoints: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def as_scene(self) -> Scene:
        """View it through the lazy :class:`Scene` interface."""
        by_id = {f.index: f for f in self.frames}
        gt, sp = self.gt_instance, self.superpoints
        return Scene(
            scene_id=self.scene_id,
            intrinsics=self.intrinsics,
            frame_ids=[f.index for f in self.frames],
            load_frame=by_id.__getitem__,
            load_mesh=lambda: self.mesh,
            load_gt=(lambda: gt) if gt is not None else None,
            source=f"memory:{self.scene_id}",
            format="memory",
            poses=np.stack([f.pose for f in self.frames]) if self.frames else None,
            load_superpoints=(lambda: sp) if sp is not None else None,
        )
