"""``label_one``: open, label and write one scene; what every runner (local, Ray actor) calls per scene."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from tracklift import storage
from tracklift.datasets.formats import open_scene
from tracklift.labeling.config import LabelConfig
from tracklift.labeling.outputs import scene_status, write_scene_outputs
from tracklift.labeling.scene import label_scene
from tracklift.tracking.base import MaskGenerator, MaskTracker

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
