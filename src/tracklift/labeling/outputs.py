"""Writing one scene's outputs (see :mod:`tracklift.labeling.layout`) and reading back whether it is done.

Every file is written whole or not at all (:mod:`tracklift.storage`: one PUT on object stores, a temporary
file renamed into place on file systems); ``status.json`` is written last, so a killed job never leaves a
scene that looks complete. ``status.json`` records every output
with its size in bytes, checked on storage (a HEAD on object stores) before it is written, and the hash of
the settings that made them (:meth:`LabelConfig.config_hash`). A rerun trusts a scene only when every
recorded output is still there with its size and the settings are the same (:func:`inspect_scene`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tracklift import storage
from tracklift.datasets.scene import Scene
from tracklift.datasets.tracklift_format import write_int_lines
from tracklift.errors import DataError, TrackliftError
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
    # a scene being redone is not complete until its new status.json is written
    storage.remove(layout.status(sid))
    written = [layout.pseudo_labels(sid), layout.scene_file(sid, "pseudo_labels.txt")]
    write_pseudo_labels(
        written[0],
        result.labels,
        sid,
        meta={"generator": cfg.generator, "tracker": cfg.tracker, "method": cfg.method},
    )
    ids = result.labels.filtered_ids(cfg.min_points)
    write_int_lines(written[1], ids)
    listing = write_predictions(layout.pred_dir, sid, result.labels.to_instances(cfg.min_points))
    written += [listing, *_listed_masks(layout.pred_dir, listing)]
    if cfg.write_shards:
        t0 = time.perf_counter()
        s1 = list(stage1_samples(scene, result.single_maps, cfg.samples))
        maps2 = result.tracked_maps or None
        s2 = list(stage2_samples(scene, maps2, cfg.samples)) if maps2 else []
        s3 = [stage3_sample(scene, result.labels, cfg.samples)]
        for stage, samples in ((1, s1), (2, s2), (3, s3)):
            if samples:
                written.append(layout.shard(stage, sid, cfg.shard_suffix))
                write_samples(written[-1], samples)
            # a shard of this scene in the other format (an earlier run) would be read twice by training
            for suffix in SHARD_SUFFIXES:
                if suffix != cfg.shard_suffix or not samples:
                    storage.remove(layout.shard(stage, sid, suffix))
        result.stats["samples"] = {"stage1": len(s1), "stage2": len(s2), "stage3": len(s3)}
        result.stats["shards_s"] = time.perf_counter() - t0
    if cfg.pictures:
        written += write_pictures(layout.scene_dir(sid), scene, result)
    status = {
        "status": "complete",
        **result.stats,
        "config_hash": cfg.config_hash(),
        "settings": cfg.output_settings(),
        "outputs": output_sizes(layout, written),
    }
    storage.write_text(layout.status(sid), json.dumps(status, indent=1, default=float))


class OutputsMissing(TrackliftError):
    """Outputs that were written are not on storage (or not whole) when ``status.json`` is due."""


def _size(url: str) -> int | None:
    """Bytes of the file at ``url`` as storage reports them now (a HEAD on S3), or None when absent."""
    fs, path = storage.filesystem(url)
    fs.invalidate_cache(path)  # s3fs answers from its listing cache otherwise
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    return None if info.get("type") == "directory" else int(info["size"])


def output_sizes(layout: OutputLayout, urls: list[str]) -> dict[str, int]:
    """``{path relative to the output root: bytes}`` of files just written, each checked on storage.

    Raises:
        OutputsMissing: a file is not there (an object store that lost it, a disk that did not keep it).
    """
    sizes, missing = {}, []
    for url in urls:
        size = _size(url)
        if size is None:
            missing.append(url)
        else:
            sizes[layout.relative(url)] = size
    if missing:
        raise OutputsMissing(f"written but not on storage: {', '.join(missing)}")
    return sizes


def output_problems(layout: OutputLayout, recorded: dict[str, int]) -> list[str]:
    """What no longer matches ``status.json``'s record: missing files and files of another size."""
    problems = []
    for rel, size in recorded.items():
        now = _size(layout.url(rel))
        if now is None:
            problems.append(f"{rel} missing")
        elif now != size:
            problems.append(f"{rel} is {now} bytes, {size} when written")
    return problems


def _listed_masks(pred_dir: str, listing: str) -> list[str]:
    """The mask files a ScanNet prediction listing names (first column, relative to the listing)."""
    lines = storage.read_text(listing).splitlines()
    return [storage.join(pred_dir, line.split()[0]) for line in lines if line.strip()]


def write_pictures(base: str, scene: Scene, result: SceneLabels, n_frames: int = 6) -> list[str]:
    """``tracks.png``: frames with their id maps (same colour = same id); ``pseudo_labels.png``: the 3D labels.

    Returns: the URLs written.
    """
    from tracklift.evaluation.pictures import frame_strip, id_colors, png_bytes, render_overview

    written = []
    maps = result.tracked_maps or result.single_maps
    if maps:
        keys = sorted(maps)
        pick = [keys[round(i)] for i in np.linspace(0, len(keys) - 1, min(n_frames, len(keys)))]
        colors = [scene.frame(p).color for p in pick]
        strip = frame_strip(colors, [maps[p] for p in pick], labels=[f"frame {p}" for p in pick])
        written.append(storage.join(base, "tracks.png"))
        storage.write_bytes(written[-1], png_bytes(strip))
    ids = result.labels.filtered_ids(1)
    img = render_overview(
        scene.mesh,
        id_colors(ids, none_color=(210, 210, 210)),
        640,
        480,
        title=f"{scene.scene_id}: 3D pseudo-labels",
    )
    written.append(storage.join(base, "pseudo_labels.png"))
    storage.write_bytes(written[-1], png_bytes(img))
    return written


def read_status(out: str, scene_id: str) -> dict | None:
    """A scene's ``status.json`` as written (any status), or None when absent or unreadable."""
    url = OutputLayout(out).status(scene_id)
    if not storage.exists(url):
        return None
    try:
        status = json.loads(storage.read_text(url))
    except (json.JSONDecodeError, DataError):
        return None
    return status if isinstance(status, dict) else None


def scene_status(out: str, scene_id: str) -> dict | None:
    """The ``status.json`` of a scene that says ``complete`` (its stats), else None (outputs not checked)."""
    status = read_status(out, scene_id)
    return status if status is not None and status.get("status") == "complete" else None


def scene_is_complete(out: str, scene_id: str) -> bool:
    return scene_status(out, scene_id) is not None


@dataclass
class SceneCheck:
    """What a rerun finds of a scene in the output folder.

    Args:
        state: ``new`` (no complete status: label it), ``complete`` (outputs intact, same settings: skip),
            ``redo`` (outputs missing or changed: label it again), ``mismatch`` (made with other settings).
        status: its ``status.json``, or None.
        reason: why ``redo`` or ``mismatch``, in words.
    """

    state: Literal["new", "complete", "redo", "mismatch"]
    status: dict | None = None
    reason: str = ""


def inspect_scene(out: str, scene_id: str, cfg: LabelConfig) -> SceneCheck:
    """Whether a scene's outputs under ``out`` can be reused by a run with ``cfg`` (see :class:`SceneCheck`)."""
    status = scene_status(out, scene_id)
    if status is None:
        return SceneCheck("new")
    if status.get("config_hash") != cfg.config_hash():
        if "config_hash" not in status:
            return SceneCheck(
                "redo", status, "status.json records no settings (written by an older tracklift)"
            )
        changed = _changed(status.get("settings", {}), cfg.output_settings())
        return SceneCheck(
            "mismatch",
            status,
            f"{scene_id} in {out} was labeled with other settings ({'; '.join(changed) or 'unknown'}); its "
            "outputs are kept. Rerun with --force to redo it with these settings, or use another --out",
        )
    problems = output_problems(OutputLayout(out), status.get("outputs") or {})
    if not status.get("outputs"):
        problems = ["status.json records no outputs"]
    if problems:
        return SceneCheck("redo", status, "; ".join(problems))
    return SceneCheck("complete", status)


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every (nested) setting that differs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out
