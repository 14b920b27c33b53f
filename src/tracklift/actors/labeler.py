"""The labeling actor: builds the 2D mask generator and tracker once, then labels one scene URI per call.

Ray Data instantiates :class:`LabelActor` once per pool slot (``map_batches(LabelActor,
compute=ActorPoolStrategy(...))``) and calls it with batches of scene URIs. The per-scene work is the
one-process job's :func:`tracklift.labeling.label_one` (open, label, write, ``status.json`` last); the actor
only adds retries with exponential backoff around its storage steps, says which worker did the scene, and
gives up a scene whose earlier tries each killed the actor's process (counted by the job: ``attempts``).
The class holds no Ray import, so it also runs (and is tested) as a plain object in one process.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable

import numpy as np

from tracklift import storage
from tracklift.actors.retry import RetryPolicy, call_with_retry
from tracklift.labeling import LabelConfig, build_generator, build_tracker, label_one


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker: the host name is the best id there is
        pass
    return socket.gethostname()


class LabelActor:
    """Label scenes: a Ray Data callable class, or a plain object.

    Args:
        cfg: the labeling config (``out`` must be a URL every worker can reach).
        storage_options: :func:`tracklift.storage.configured_options` of the driver, so the workers use the
            same S3 endpoint and settings.
        retry: backoff of storage steps; default ``RetryPolicy(attempts=cfg.storage_retries)``.
        log: where retry and per-scene lines go (a Ray worker's stdout reaches the driver's log).
        attempts: called with a scene URL as each try of it starts; returns the try's number (from 1),
            counted outside this process so that it survives the process (the Ray job's counter). A try
            numbered above ``cfg.scene_retries + 1`` means every earlier one killed its actor: the scene is
            given up with a failed entry instead of being labelled again. None: no count (one process).
    """

    def __init__(
        self,
        cfg: LabelConfig,
        storage_options: dict[str, dict] | None = None,
        retry: RetryPolicy | None = None,
        log: Callable[[str], None] | None = None,
        attempts: Callable[[str], int] | None = None,
    ):
        for protocol, options in (storage_options or {}).items():
            storage.configure(protocol, **options)
        t0 = time.perf_counter()
        self.cfg = cfg
        self.policy = retry or RetryPolicy(attempts=max(1, cfg.storage_retries))
        self.log = log or (lambda msg: print(msg, flush=True))
        self.generator = build_generator(cfg)
        self.tracker = build_tracker(cfg) if cfg.method == "tracked" else None
        self.worker = {"pid": os.getpid(), "node": _node_id(), "host": socket.gethostname()}
        self.build_s = time.perf_counter() - t0
        self.scenes_done = 0
        self.attempts = attempts

    def _retry(self, fn, what: str):
        return call_with_retry(fn, what, self.policy, log=self.log)

    def label(self, url: str) -> tuple[str, dict]:
        """Label one scene URL; returns ``(scene_id, manifest entry)`` with a ``worker`` record."""
        sid, entry = label_one(url, self.cfg, self.generator, self.tracker, retry=self._retry)
        self.scenes_done += 1
        entry["worker"] = {**self.worker, "scene_number": self.scenes_done, "build_s": self.build_s}
        state = entry["status"] if not entry.get("skipped_rerun") else "complete (skipped, done before)"
        self.log(f"[label-actor {self.worker['pid']}] {sid}: {state} ({entry['seconds']:.1f} s)")
        return sid, entry

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch: ``{"url": (B,) str}`` in, ``{"scene_id", "url", "status", "entry"}`` out.

        ``entry`` is the manifest entry as JSON text (one string column keeps the block schema fixed
        whatever the stats hold).
        """
        rows: dict[str, list] = {"scene_id": [], "url": [], "status": [], "entry": []}
        for url in batch["url"]:
            tries = self.attempts(str(url)) if self.attempts is not None else 1
            if tries > self.cfg.scene_retries + 1:
                sid, entry = storage.basename(str(url)), died_entry(str(url), tries - 1)
                self.log(f"[label-actor {self.worker['pid']}] {sid}: given up ({entry['error']})")
            else:
                sid, entry = self.label(str(url))
            rows["scene_id"].append(sid)
            rows["url"].append(str(url))
            rows["status"].append(entry["status"])
            rows["entry"].append(json.dumps(entry, default=float))
        return {k: np.array(v, dtype=object) for k, v in rows.items()}


def died_entry(url: str, tries: int) -> dict:
    """The manifest entry of a scene given up because its actor died on each of ``tries`` tries."""
    return {
        "status": "failed",
        "url": url,
        "error": f"WorkerDied: the labeling actor died on each of {tries} tries of this scene "
        "(out of memory? see the Ray logs)",
        "seconds": 0.0,
    }
