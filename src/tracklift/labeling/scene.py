"""The label stage's work on one scene: 2D masks → (tracked or independent) id maps → 3D pseudo-labels."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tracklift.datasets.scene import Scene
from tracklift.errors import ConfigError, DataError
from tracklift.labeling.config import LabelConfig
from tracklift.lifting import LiftStats, PseudoLabels, lift_independent, lift_tracked
from tracklift.tracking.base import MaskGenerator, MaskTracker, for_camera
from tracklift.tracking.consistent import GranularityConsistentTracker, generate_masks


@dataclass
class SceneLabels:
    """Everything labeling produced for one scene (in memory).

    Args:
        scene_id: the scene.
        labels: per-vertex pseudo-labels.
        tracked_maps: frame position → (H, W) int tracked id map (tracked method), else empty.
        single_maps: frame position → (H, W) int independent id map (the stage-1 views).
        stats: frames, skipped frames, instances, timings (seconds), tracking stats.
    """

    scene_id: str
    labels: PseudoLabels
    tracked_maps: dict[int, np.ndarray]
    single_maps: dict[int, np.ndarray]
    stats: dict


def label_scene(
    scene: Scene, cfg: LabelConfig, generator: MaskGenerator, tracker: MaskTracker | None, log=None
) -> SceneLabels:
    """Run the 2D stage and the lifting on one scene (nothing is written). A generator that reads
    geometry through the camera gets the scene's (:func:`~tracklift.tracking.base.for_camera`).

    Raises:
        DataError: the scene has no usable frame (or a frame is corrupt).
        ConfigError: unknown method, or the tracked method without a tracker.
    """
    from tracklift.tracking.weightless import select_granularity

    if len(scene) == 0:
        raise DataError(scene.source, "scene has no usable frames")
    stats: dict = {
        "frames": len(scene),
        "skipped_frames": len(scene.skipped),
        # which frames the reader left out and why, and how it read the scene (e.g. a fallback source)
        "skipped": [{"frame": int(fid), "reason": why} for fid, why in sorted(scene.skipped.items())],
        "notes": list(scene.notes),
    }
    generator = for_camera(generator, scene.intrinsics)
    t0 = time.perf_counter()
    lift_stats = LiftStats()
    rng = np.random.default_rng(0)
    shape = (scene.intrinsics.height, scene.intrinsics.width)
    if cfg.method == "tracked":
        if tracker is None:
            raise ConfigError("the tracked method needs a tracker")
        gct = GranularityConsistentTracker(generator, tracker, cfg.consistency)
        single_maps = {}

        def keep_single_view(pos, masks):
            single_maps[pos] = select_granularity(masks, cfg.granularity_policy, rng=rng, shape=shape)

        tracked = gct.run(scene, log=log, on_keyframe=keep_single_view)
        stats["tracking"] = tracked.stats
        t_lift = time.perf_counter()
        labels = lift_tracked(scene, tracked.id_maps, cfg.lift, lift_stats)
        tracked_maps = tracked.id_maps
    elif cfg.method == "independent":
        single_maps = {}
        tg = time.perf_counter()
        for pos in range(0, len(scene), max(1, cfg.independent_step)):
            masks = generate_masks(generator, scene.frame(pos))
            single_maps[pos] = select_granularity(masks, cfg.granularity_policy, rng=rng, shape=shape)
        stats["tracking"] = {"generate_s": time.perf_counter() - tg, "keyframes": len(single_maps)}
        t_lift = time.perf_counter()
        labels = lift_independent(scene, single_maps, cfg.lift, lift_stats)
        tracked_maps = {}
    else:
        raise ConfigError(f"unknown method {cfg.method!r} (tracked | independent)")
    stats["lift_s"] = time.perf_counter() - t_lift
    stats["label_s"] = time.perf_counter() - t0
    stats["instances"] = len(labels.instance_ids(cfg.min_points))
    return SceneLabels(scene.scene_id, labels, tracked_maps, single_maps, stats)


def warm_up_kernels() -> float:
    """Compile (or load from numba's disk cache) the compiled loops of tracking and lifting on tiny
    inputs, so that the first scene a process labels is not charged for it. Returns the seconds taken."""
    import torch

    from tracklift.datasets.scene import Frame, Intrinsics
    from tracklift.lifting.project import visible_ids
    from tracklift.tracking.geometric import GeometricTracker

    t0 = time.perf_counter()
    intr = Intrinsics(8.0, 8.0, 7.5, 5.5, 16, 12)
    depth = np.full((12, 16), 1.0, np.float32)
    frames = [Frame(i, np.full((12, 16, 3), 128, np.uint8), depth, np.eye(4)) for i in range(2)]
    tracker = GeometricTracker()
    state = tracker.start(frames, intr)
    mask = np.zeros((12, 16), bool)
    mask[3:9, 4:12] = True
    tracker.add_masks(state, 0, {1: mask})
    tracker.predict_ids(state, 1, learn=False)
    tracker.predict_ids(state, 1, learn=True)
    tracker.close(state)
    ids = torch.zeros((1, 12, 16), dtype=torch.int64)
    visible_ids(torch.zeros((4, 3)), torch.eye(4)[None], torch.from_numpy(depth)[None], ids, intr)
    return time.perf_counter() - t0
