"""``tracklift label``: 2D masks → tracked (or independent) id maps → 3D pseudo-labels → curriculum shards.

Two runners share every line of the per-scene work (:func:`label_one`): ``--runner local`` labels one scene
at a time in this process (:func:`label_corpus`); ``--runner ray`` streams scene URIs through a Ray Data
actor pool (:func:`tracklift.actors.pipeline.label_corpus_ray`), locally or on the cluster at ``--address``
(or ``RAY_ADDRESS``). ``--runner auto`` (the default) picks Ray when an address is given.

Output layout under ``out``::

    scenes/<scene_id>/pseudo_labels.npz   per-vertex ids, confidence, votes, seen (lifting.shards)
    scenes/<scene_id>/pseudo_labels.txt   the same ids, one per vertex (for ``tracklift render/eval``)
    scenes/<scene_id>/tracks.png          frames and their id maps (same colour = same id)
    scenes/<scene_id>/pseudo_labels.png   the 3D pseudo-labels from above
    scenes/<scene_id>/status.json         written LAST: marks the scene complete (stats, timings)
    shards/stage1/<scene_id>.parquet      single-view partial clouds + that view's independent masks
    shards/stage2/<scene_id>.parquet      multi-view chunks + tracked ids
    shards/stage3/<scene_id>.parquet      the full scene + lifted tracked ids
                                          (``.npz`` with ``--shard-format npz``; lifting.shards)
    pred/<scene_id>.txt + pred/pred_mask/ the pseudo-labels in ScanNet prediction format (scored by eval)
    manifest.json                         per scene: status, frames, skipped frames, timings, error

A rerun skips scenes whose ``status.json`` says ``complete`` and redoes the rest. A failing scene is
recorded with its reason and the job goes on. Every file is written to a temporary key and moved into place
(:mod:`tracklift.storage`); temporaries left by a killed run are swept at the start and end of a run.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from tracklift import storage
from tracklift.datasets.formats import list_scenes, open_scene
from tracklift.datasets.scene import Scene
from tracklift.datasets.tracklift_format import write_int_lines
from tracklift.errors import ConfigError, DataError
from tracklift.lifting import (
    LiftConfig,
    LiftStats,
    SampleConfig,
    VisibilityConfig,
    lift_independent,
    lift_tracked,
    stage1_samples,
    stage2_samples,
    stage3_sample,
    write_pseudo_labels,
    write_samples,
)
from tracklift.lifting.shards import SHARD_SUFFIXES
from tracklift.tracking.base import MaskGenerator, MaskTracker
from tracklift.tracking.consistent import ConsistencyConfig, GranularityConsistentTracker, generate_masks


@dataclass
class LabelConfig:
    """``tracklift label``: pseudo-label a scan corpus, one scene at a time in this process."""

    scenes: str = field(
        default="runs/synth", metadata={"help": "corpus root, scene folder, or list file URL"}
    )
    out: str = field(default="runs/labels", metadata={"help": "output URL"})
    format: str = field(default="auto", metadata={"help": "scan format (auto-detected by default)"})
    generator: str = field(default="weightless", metadata={"help": "mask generator: weightless | sam2"})
    tracker: str = field(default="geometric", metadata={"help": "mask tracker: geometric | sam2"})
    method: str = field(
        default="tracked",
        metadata={"help": "tracked (granularity-consistent) | independent (per-frame baseline)"},
    )
    sam2_checkpoint: str | None = field(
        default=None, metadata={"help": "SAM2 checkpoint URL (sam2 backends)"}
    )
    sam2_config: str = field(
        default="configs/sam2.1/sam2.1_hiera_t.yaml", metadata={"help": "SAM2 model config"}
    )
    sam2_image_size: int = field(default=1024, metadata={"help": "SAM2 input size"})
    device: str = field(default="cpu", metadata={"help": "torch device of the 2D models"})
    independent_step: int = field(
        default=5, metadata={"help": "independent method: frames between mask frames"}
    )
    granularity_policy: str = field(
        default="score", metadata={"help": "how overlapping proposals become one id map per frame"}
    )
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    write_shards: bool = field(default=True, metadata={"help": "write the stage 1/2/3 training shards"})
    pictures: bool = field(
        default=True, metadata={"help": "write tracks.png (frames + id maps) and pseudo_labels.png per scene"}
    )
    voxel_size: float = field(default=0.02, metadata={"help": "stage 1/2 sample voxel size (m)"})
    window: int = field(default=10, metadata={"help": "stage 2 chunk length (frames)"})
    stride: int = field(default=5, metadata={"help": "stage 2 chunk spacing (frames)"})
    min_points: int = field(default=100, metadata={"help": "instances under this many points are dropped"})
    min_votes: int = field(default=2, metadata={"help": "lifting: votes a vertex label needs"})
    min_ratio: float = field(
        default=0.5, metadata={"help": "lifting: share of a vertex's views its label needs"}
    )
    depth_abs_tol: float = field(
        default=0.05,
        metadata={"help": "lifting: visibility depth tolerance, metres (plus depth_rel_tol * depth)"},
    )
    depth_rel_tol: float = field(
        default=0.02, metadata={"help": "lifting: relative visibility depth tolerance"}
    )
    limit: int | None = field(default=None, metadata={"help": "label at most this many scenes"})
    shard_format: Literal["parquet", "npz"] = field(
        default="parquet", metadata={"help": "curriculum shard files: parquet | npz"}
    )
    # --- where it runs (the per-scene work above is the same in both runners) ---
    runner: Literal["auto", "local", "ray"] = field(
        default="auto",
        metadata={
            "help": "local: one process; ray: a Ray Data actor pool on a local Ray or the cluster at "
            "--address; auto: ray when --address or RAY_ADDRESS is set, else local"
        },
    )
    address: str | None = field(
        default=None,
        metadata={"help": "Ray cluster address (auto, host:port, ray://host:10001); default RAY_ADDRESS"},
    )
    num_actors: int = field(
        default=2, metadata={"help": "ray: labeling actors (each builds its models once)"}
    )
    num_cpus: float = field(default=1.0, metadata={"help": "ray: CPUs reserved per labeling actor"})
    num_gpus: float = field(
        default=0.0, metadata={"help": "ray: GPUs per labeling actor (0 on CPU-only clusters)"}
    )
    scene_retries: int = field(
        default=2,
        metadata={"help": "ray: times a scene is redone on a restarted actor after its actor died"},
    )
    storage_retries: int = field(
        default=5,
        metadata={
            "help": "ray: attempts of a storage read/write step (exponential backoff) before a scene fails"
        },
    )

    def __post_init__(self):
        if self.shard_format not in ("parquet", "npz"):
            raise ConfigError(f"shard_format must be parquet or npz, got {self.shard_format!r}")
        if self.runner not in ("auto", "local", "ray"):
            raise ConfigError(f"runner must be auto, local or ray, got {self.runner!r}")
        if self.num_actors < 1 or self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError("num_actors must be >= 1 and num_cpus / num_gpus >= 0")

    @property
    def shard_suffix(self) -> str:
        return "." + self.shard_format

    def ray_address(self) -> str | None:
        """The Ray address to use: ``address``, else ``RAY_ADDRESS``, else None (start a local Ray)."""
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def uses_ray(self) -> bool:
        return self.runner == "ray" or (self.runner == "auto" and self.ray_address() is not None)


def build_generator(cfg: LabelConfig) -> MaskGenerator:
    if cfg.generator == "weightless":
        from tracklift.tracking.weightless import WeightlessMaskGenerator

        return WeightlessMaskGenerator()
    if cfg.generator == "sam2":
        from tracklift.tracking.sam2_backend import build_sam2_backends

        return build_sam2_backends(_sam2_config(cfg))[0]
    raise ConfigError(f"unknown generator {cfg.generator!r} (weightless | sam2)")


def build_tracker(cfg: LabelConfig) -> MaskTracker:
    if cfg.tracker == "geometric":
        from tracklift.tracking.geometric import GeometricTracker

        return GeometricTracker()
    if cfg.tracker == "sam2":
        from tracklift.tracking.sam2_backend import build_sam2_backends

        return build_sam2_backends(_sam2_config(cfg))[1]
    raise ConfigError(f"unknown tracker {cfg.tracker!r} (geometric | sam2)")


def _sam2_config(cfg: LabelConfig):
    from tracklift.tracking.sam2_loading import Sam2Config

    return Sam2Config(
        model_config=cfg.sam2_config,
        checkpoint=cfg.sam2_checkpoint,
        device=cfg.device,
        image_size=cfg.sam2_image_size,
    )


@dataclass
class SceneLabels:
    """Everything labeling produced for one scene (in memory)."""

    scene_id: str
    labels: object  # lifting.PseudoLabels
    tracked_maps: dict[int, np.ndarray]  # position → id map (tracked method), else {}
    single_maps: dict[int, np.ndarray]  # position → independent id map (stage-1 views)
    stats: dict


def label_scene(
    scene: Scene, cfg: LabelConfig, generator: MaskGenerator, tracker: MaskTracker | None, log=None
) -> SceneLabels:
    """Run the 2D stage and the lifting on one scene."""
    from tracklift.tracking.weightless import select_granularity

    if len(scene) == 0:
        raise DataError(scene.source, "scene has no usable frames")
    vis = VisibilityConfig(depth_abs_tol=cfg.depth_abs_tol, depth_rel_tol=cfg.depth_rel_tol)
    lcfg = LiftConfig(visibility=vis, min_votes=cfg.min_votes, min_ratio=cfg.min_ratio)
    stats: dict = {"frames": len(scene), "skipped_frames": len(scene.skipped)}
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
        labels = lift_tracked(scene, tracked.id_maps, lcfg, lift_stats)
        tracked_maps = tracked.id_maps
    elif cfg.method == "independent":
        single_maps = {}
        tg = time.perf_counter()
        for pos in range(0, len(scene), max(1, cfg.independent_step)):
            masks = generate_masks(generator, scene.frame(pos))
            single_maps[pos] = select_granularity(masks, cfg.granularity_policy, rng=rng, shape=shape)
        stats["tracking"] = {"generate_s": time.perf_counter() - tg, "keyframes": len(single_maps)}
        t_lift = time.perf_counter()
        labels = lift_independent(scene, single_maps, lcfg, lift_stats)
        tracked_maps = {}
    else:
        raise ConfigError(f"unknown method {cfg.method!r} (tracked | independent)")
    stats["lift_s"] = time.perf_counter() - t_lift
    stats["label_s"] = time.perf_counter() - t0
    stats["instances"] = len(labels.instance_ids(cfg.min_points))
    return SceneLabels(scene.scene_id, labels, tracked_maps, single_maps, stats)


def write_scene_outputs(out: str, scene: Scene, result: SceneLabels, cfg: LabelConfig) -> None:
    """Write a scene's products; ``status.json`` last, so a killed job never looks complete."""
    from tracklift.evaluation import write_predictions

    sid = scene.scene_id
    base = storage.join(out, "scenes", sid)
    write_pseudo_labels(
        storage.join(base, "pseudo_labels.npz"),
        result.labels,
        sid,
        meta={"generator": cfg.generator, "tracker": cfg.tracker, "method": cfg.method},
    )
    ids = result.labels.filtered_ids(cfg.min_points)
    write_int_lines(storage.join(base, "pseudo_labels.txt"), ids)
    write_predictions(storage.join(out, "pred"), sid, result.labels.to_instances(cfg.min_points))
    if cfg.write_shards:
        scfg = SampleConfig(
            voxel_size=cfg.voxel_size, min_points=cfg.min_points, window=cfg.window, stride=cfg.stride
        )
        t0 = time.perf_counter()
        s1 = list(stage1_samples(scene, result.single_maps, scfg))
        maps2 = result.tracked_maps or None
        s2 = list(stage2_samples(scene, maps2, scfg)) if maps2 else []
        s3 = [stage3_sample(scene, result.labels, scfg)]
        for stage, samples in ((1, s1), (2, s2), (3, s3)):
            folder = storage.join(out, "shards", f"stage{stage}")
            if samples:
                write_samples(storage.join(folder, sid + cfg.shard_suffix), samples)
            # a shard of this scene in the other format (an earlier run) would be read twice by training
            for suffix in SHARD_SUFFIXES:
                if suffix != cfg.shard_suffix or not samples:
                    storage.remove(storage.join(folder, sid + suffix))
        result.stats["samples"] = {"stage1": len(s1), "stage2": len(s2), "stage3": len(s3)}
        result.stats["shards_s"] = time.perf_counter() - t0
    if cfg.pictures:
        write_pictures(base, scene, result)
    storage.write_text(
        storage.join(base, "status.json"),
        json.dumps({"status": "complete", **result.stats}, indent=1, default=float),
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
    url = storage.join(out, "scenes", scene_id, "status.json")
    if not storage.exists(url):
        return None
    try:
        status = json.loads(storage.read_text(url))
    except (json.JSONDecodeError, DataError):
        return None
    return status if isinstance(status, dict) and status.get("status") == "complete" else None


def scene_is_complete(out: str, scene_id: str) -> bool:
    return scene_status(out, scene_id) is not None


Retry = Callable[[Callable[[], object], str], object]


def _no_retry(fn: Callable[[], object], what: str) -> object:
    return fn()


def label_one(
    url: str,
    cfg: LabelConfig,
    generator: MaskGenerator,
    tracker: MaskTracker | None,
    retry: Retry = _no_retry,
    log=None,
) -> tuple[str, dict]:
    """Label one scene URL and write its outputs; never raises for a bad scene.

    Both runners call this per scene. Storage-bound steps go through ``retry(fn, what)`` (the Ray actor
    passes an exponential-backoff retry of transient storage errors; the default calls ``fn`` once).

    Args:
        url: scene folder URL.
        cfg: labeling config (``out`` is where the outputs go).
        generator, tracker: built once per process / actor (:func:`build_generator`, :func:`build_tracker`).
        retry: wraps each storage-bound step.
        log: passed to the tracker (per-frame progress), or None.

    Returns:
        ``(scene_id, manifest entry)``; the entry has ``status`` (``complete`` or ``failed``), ``url``,
        ``seconds`` and either the scene's stats (frames, skipped_frames, instances, timings, samples) or
        ``error`` and ``traceback``. A scene complete from an earlier run is skipped (``skipped_rerun``) and
        its entry carries the stats of its ``status.json``.
    """
    sid = storage.basename(url)
    t0 = time.perf_counter()
    try:
        scene = retry(lambda: open_scene(url, cfg.format), "open the scene")
        sid = scene.scene_id
        done = retry(lambda: scene_status(cfg.out, sid), "read status.json")
        if done is not None:
            entry = {**done, "status": "complete", "skipped_rerun": True, "url": url}
        else:
            result = retry(
                lambda: label_scene(scene, cfg, generator, tracker, log=log), "label (reads frames)"
            )
            retry(lambda: write_scene_outputs(cfg.out, scene, result, cfg), "write the outputs")
            entry = {"status": "complete", "url": url, **result.stats}
    except Exception as e:  # one bad scene never stops the corpus
        entry = {
            "status": "failed",
            "url": url,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=5),
        }
    entry["seconds"] = time.perf_counter() - t0
    return sid, entry


class Progress:
    """Progress lines: scenes done / total, failures, rate (scenes/min) and ETA.

    Args:
        total: scenes in the run.
        log: sink for the lines.
        prefix: line prefix, e.g. ``[label]``.
    """

    def __init__(self, total: int, log: Callable[[str], None], prefix: str = "[label]"):
        self.total, self.log, self.prefix = total, log, prefix
        self.done = self.failed = self.skipped = 0
        self.t0 = time.perf_counter()

    def update(self, sid: str, entry: dict) -> None:
        self.done += 1
        self.failed += entry["status"] != "complete"
        self.skipped += bool(entry.get("skipped_rerun"))
        elapsed = time.perf_counter() - self.t0
        worked = max(self.done - self.skipped, 0)
        rate = worked / elapsed * 60 if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.1f} min" if rate > 0 else "-"
        if entry["status"] != "complete":
            what = f"FAILED: {entry.get('error', '?')}"
        elif entry.get("skipped_rerun"):
            what = "complete, skipped"
        else:
            what = f"{entry.get('frames', '?')} frames, {entry.get('instances', '?')} instances"
        self.log(
            f"{self.prefix} {self.done}/{self.total} {sid}: {what} ({entry.get('seconds', 0.0):.1f} s) | "
            f"{rate:.2f} scenes/min, ETA {eta}, {self.failed} failed"
        )


def corpus_urls(cfg: LabelConfig) -> list[str]:
    """The scene URLs a run labels (``cfg.limit`` applied); no scene is a :class:`DataError`."""
    urls = list_scenes(cfg.scenes, cfg.format)
    if cfg.limit is not None:
        urls = urls[: cfg.limit]
    if not urls:
        raise DataError(cfg.scenes, "no scenes found")
    return urls


def write_manifest(cfg: LabelConfig, scenes: dict[str, dict], run: dict | None = None) -> dict:
    """Write ``<out>/manifest.json`` (atomically) and return it: the config, run facts, per-scene entries."""
    manifest: dict = {"config": asdict(cfg), "scenes": dict(sorted(scenes.items()))}
    if run is not None:
        manifest["run"] = run
    storage.write_text(storage.join(cfg.out, "manifest.json"), json.dumps(manifest, indent=1, default=float))
    return manifest


def label_corpus(cfg: LabelConfig, log=print) -> dict:
    """Label every scene of ``cfg.scenes``: in this process, or on Ray when ``cfg`` asks for it.

    Returns: the manifest (also written to ``<out>/manifest.json``).
    """
    if cfg.uses_ray():
        from tracklift.actors.pipeline import label_corpus_ray

        return label_corpus_ray(cfg, log=log)
    urls = corpus_urls(cfg)
    storage.remove_temporaries(cfg.out)  # leftovers of a killed run; nothing writes here now
    generator = build_generator(cfg)
    tracker = build_tracker(cfg) if cfg.method == "tracked" else None
    progress = Progress(len(urls), log)
    scenes: dict[str, dict] = {}
    for url in urls:
        sid, entry = label_one(url, cfg, generator, tracker)
        scenes[sid] = entry
        progress.update(sid, entry)
    run = {"runner": "local", "seconds": time.perf_counter() - progress.t0}
    manifest = write_manifest(cfg, scenes, run)
    n_ok = sum(1 for e in scenes.values() if e["status"] == "complete")
    log(f"[label] {n_ok}/{len(urls)} scenes complete; manifest: {storage.join(cfg.out, 'manifest.json')}")
    return manifest
