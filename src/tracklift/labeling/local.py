"""The local runner: label a corpus one scene at a time in this process.

The Ray runner is :func:`tracklift.actors.pipeline.label_corpus_ray`; which one a command uses is
:func:`tracklift.cluster.session.choose_runner` (``LabelConfig.uses_ray``).
"""

from __future__ import annotations

import time

from tracklift import storage
from tracklift.labeling.config import LabelConfig, build_generator, build_tracker
from tracklift.labeling.layout import OutputLayout
from tracklift.labeling.manifest import Progress, corpus_urls, write_manifest
from tracklift.labeling.work import label_one


def label_corpus(cfg: LabelConfig, log=print) -> dict:
    """Label every scene of ``cfg.scenes`` in this process (whatever ``cfg.runner`` says).

    Returns: the manifest (also written to ``<out>/manifest.json``).
    """
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
    log(f"[label] {n_ok}/{len(urls)} scenes complete; manifest: {OutputLayout(cfg.out).manifest}")
    return manifest
