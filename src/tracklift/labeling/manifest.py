"""A run's scene list, its progress lines, and ``manifest.json`` (what both runners write at the end)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

from tracklift import storage
from tracklift.datasets.formats import list_scenes
from tracklift.errors import DataError
from tracklift.labeling.config import LabelConfig
from tracklift.labeling.layout import OutputLayout
from tracklift.labeling.outputs import read_status


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
            what = f"{entry['status'].upper()}: {entry.get('error', '?')}"
        elif entry.get("skipped_rerun"):
            what = "complete, skipped"
        else:
            what = f"{entry.get('frames', '?')} frames, {entry.get('instances', '?')} instances"
            if entry.get("redone"):
                what += f", redone: {entry['redone']}"
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


# ``tracklift label``'s exit status when some scenes of the run failed and the others are complete
EXIT_PARTIAL = 3


def exit_status(manifest: dict) -> int:
    """0: every scene of the run complete; :data:`EXIT_PARTIAL`: some failed or refused; 1: all of them."""
    entries = [e for e in manifest["scenes"].values() if e.get("in_this_run", True)]
    failed = sum(1 for e in entries if e["status"] != "complete")
    if failed == 0:
        return 0
    return 1 if failed == len(entries) else EXIT_PARTIAL


def _earlier_scenes(out: str, known: dict[str, dict]) -> dict[str, dict]:
    """Entries for the scenes in ``<out>/scenes/`` that this run did not touch (an earlier run's)."""
    layout = OutputLayout(out)
    if not storage.isdir(layout.scenes_dir):
        return {}
    entries = {}
    for sid in storage.listdir(layout.scenes_dir):
        if sid in known:
            continue
        status = read_status(out, sid) or {}
        entries[sid] = {
            "status": status.get("status", "incomplete"),
            "in_this_run": False,
            "config_hash": status.get("config_hash"),
            **{k: status[k] for k in ("frames", "instances") if k in status},
        }
    return entries


def write_manifest(cfg: LabelConfig, scenes: dict[str, dict], run: dict | None = None) -> dict:
    """Write ``<out>/manifest.json`` (atomically) and return it: the config and its hash, run facts, and an
    entry per scene in the output folder (this run's, and any earlier run's with ``in_this_run: false``)."""
    every = {**_earlier_scenes(cfg.out, scenes), **scenes}
    manifest: dict = {
        "config": asdict(cfg),
        "config_hash": cfg.config_hash(),
        "scenes": dict(sorted(every.items())),
    }
    if run is not None:
        manifest["run"] = run
    storage.write_text(OutputLayout(cfg.out).manifest, json.dumps(manifest, indent=1, default=float))
    return manifest
