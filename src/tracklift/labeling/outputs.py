"""Writing one scene's outputs (see :mod:`tracklift.labeling.layout`) and reading back whether it is done.

Every file goes to a temporary key and is moved into place (:mod:`tracklift.storage`); ``status.json`` is
written last, so a killed job never leaves a scene that looks complete.
"""

from __future__ import annotations

import json
import time

import numpy as np

from tracklift import storage
from tracklift.datasets.scene import Scene
from tracklift.datasets.tracklift_format import write_int_lines
from tracklift.errors import DataError
from tracklift.labeling.config import LabelConfig
from tracklift.labeling.layout import OutputLayout
from tracklift.labeling.scene import SceneLabels
from tracklift.lifting import (
    stage1_samples,
    stage2_samples,
    stage3_sample,
    write_pseudo_labels,
    write_samples,
)
from tracklift.lifting.shards import SHARD_SUFFIXES


def write_scene_outputs(out: str, scene: Scene, result: SceneLabels, cfg: LabelConfig) -> None:
    """Write a scene's products; ``status.json`` last, so a killed job never looks complete."""
    from tracklift.evaluation import write_predictions

    layout = OutputLayout(out)
    sid = scene.scene_id
    write_pseudo_labels(
        layout.pseudo_labels(sid),
        result.labels,
        sid,
        meta={"generator": cfg.generator, "tracker": cfg.tracker, "method": cfg.method},
    )
    ids = result.labels.filtered_ids(cfg.min_points)
    write_int_lines(layout.scene_file(sid, "pseudo_labels.txt"), ids)
    write_predictions(layout.pred_dir, sid, result.labels.to_instances(cfg.min_points))
    if cfg.write_shards:
        t0 = time.perf_counter()
        s1 = list(stage1_samples(scene, result.single_maps, cfg.samples))
        maps2 = result.tracked_maps or None
        s2 = list(stage2_samples(scene, maps2, cfg.samples)) if maps2 else []
        s3 = [stage3_sample(scene, result.labels, cfg.samples)]
        for stage, samples in ((1, s1), (2, s2), (3, s3)):
            if samples:
                write_samples(layout.shard(stage, sid, cfg.shard_suffix), samples)
            # a shard of this scene in the other format (an earlier run) would be read twice by training
            for suffix in SHARD_SUFFIXES:
                if suffix != cfg.shard_suffix or not samples:
                    storage.remove(layout.shard(stage, sid, suffix))
        result.stats["samples"] = {"stage1": len(s1), "stage2": len(s2), "stage3": len(s3)}
        result.stats["shards_s"] = time.perf_counter() - t0
    if cfg.pictures:
        write_pictures(layout.scene_dir(sid), scene, result)
    storage.write_text(
        layout.status(sid), json.dumps({"status": "complete", **result.stats}, indent=1, default=float)
    )


def write_pictures(base: str, scene: Scene, result: SceneLabels, n_frames: int = 6) -> None:
    """``tracks.png``: frames with their id maps (same colour = same id); ``pseudo_labels.png``: the 3D labels."""
    from tracklift.visualize import frame_strip, id_colors, png_bytes, render_overview

    maps = result.tracked_maps or result.single_maps
    if maps:
        keys = sorted(maps)
        pick = [keys[round(i)] for i in np.linspace(0, len(keys) - 1, min(n_frames, len(keys)))]
        colors = [scene.frame(p).color for p in pick]
        strip = frame_strip(colors, [maps[p] for p in pick], labels=[f"frame {p}" for p in pick])
        storage.write_bytes(storage.join(base, "tracks.png"), png_bytes(strip))
    ids = result.labels.filtered_ids(1)
    img = render_overview(
        scene.mesh,
        id_colors(ids, none_color=(210, 210, 210)),
        640,
        480,
        title=f"{scene.scene_id}: 3D pseudo-labels",
    )
    storage.write_bytes(storage.join(base, "pseudo_labels.png"), png_bytes(img))


def scene_status(out: str, scene_id: str) -> dict | None:
    """The ``status.json`` of a complete scene (its stats), or None when the scene is not complete."""
    url = OutputLayout(out).status(scene_id)
    if not storage.exists(url):
        return None
    try:
        status = json.loads(storage.read_text(url))
    except (json.JSONDecodeError, DataError):
        return None
    return status if isinstance(status, dict) and status.get("status") == "complete" else None


def scene_is_complete(out: str, scene_id: str) -> bool:
    return scene_status(out, scene_id) is not None
