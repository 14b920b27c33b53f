"""``label_one``: open, label and write one scene; what every runner (local, Ray actor) calls per scene."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from tracklift import storage
from tracklift.datasets.formats import open_scene
from tracklift.labeling.config import LabelConfig
from tracklift.labeling.outputs import inspect_scene, write_scene_outputs
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
        ``(scene_id, manifest entry)``; the entry has ``status`` (``complete``, ``failed`` or ``refused``),
        ``url``, ``seconds`` and either the scene's stats (frames, skipped frames and why, reader notes,
        instances, timings, samples, config hash) or ``error`` (and ``traceback``). A scene complete from an
        earlier run, with every output still as written and the same settings, is skipped
        (``skipped_rerun``; its entry carries the stats of its ``status.json``); one whose outputs are
        missing or changed is labeled again (``redone`` says why); one made with other settings is
        ``refused`` unless ``cfg.force``.
    """
    sid = storage.basename(url)
    t0 = time.perf_counter()
    try:
        scene = retry(lambda: open_scene(url, cfg.format), "open the scene")
        sid = scene.scene_id
        check = retry(lambda: inspect_scene(cfg.out, sid, cfg), "check the scene's outputs")
        if check.state == "mismatch" and not cfg.force:
            entry = {"status": "refused", "url": url, "error": f"ConfigMismatch: {check.reason}"}
        elif check.state == "complete":
            entry = {**_stats_of(check.status), "status": "complete", "skipped_rerun": True, "url": url}
        else:
            result = retry(
                lambda: label_scene(scene, cfg, generator, tracker, log=log), "label (reads frames)"
            )
            retry(lambda: write_scene_outputs(cfg.out, scene, result, cfg), "write the outputs")
            entry = {"status": "complete", "url": url, **result.stats, "config_hash": cfg.config_hash()}
            if check.state != "new":  # say why a scene complete before was labeled again
                entry["redone"] = check.reason or "--force"
    except Exception as e:  # one bad scene never stops the corpus
        entry = {
            "status": "failed",
            "url": url,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=5),
        }
    entry["seconds"] = time.perf_counter() - t0
    return sid, entry


def _stats_of(status: dict) -> dict:
    """A ``status.json`` without its per-file record (the manifest keeps the stats and the hash)."""
    return {k: v for k, v in status.items() if k not in ("outputs", "settings")}
