"""Writing a synthetic corpus and the benchmark ground-truth folder that goes with it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from tracklift import storage
from tracklift.datasets.formats import FORMATS, scene_dir, write_scene
from tracklift.datasets.superpoints import compute_superpoints
from tracklift.datasets.tracklift_format import write_int_lines
from tracklift.errors import DataError

COMPLETE_MARKER = ".complete"
SYNTH_META = "synth.json"  # per scene: the generator's metadata (coverage, frames, style, mesh statistics)


@dataclass
class SynthCommandConfig:
    """``tracklift synth``: write N procedurally generated, fully labelled scans."""

    out: str = field(default="runs/synth", metadata={"help": "corpus root URL (file path, s3://, memory://)"})
    scenes: int = field(default=4, metadata={"help": "number of scenes"})
    seed: int = field(default=0, metadata={"help": "seed of the first scene; scene i uses seed+i"})
    format: str = field(default="tracklift", metadata={"help": f"scan layout: {', '.join(FORMATS)}"})
    width: int = field(default=320, metadata={"help": "image width in pixels"})
    height: int = field(default=240, metadata={"help": "image height in pixels"})
    frames: int = field(
        default=0, metadata={"help": "kept frames per scan; 0 = the whole-room walk (100-300 frames)"}
    )
    frames_span: str = field(
        default="route",
        metadata={
            "help": "what --frames covers: route (spread over the whole-room walk) | start (the walk's "
            "beginning at the default pace: a corner of the room)"
        },
    )
    frame_skip: int = field(default=10, metadata={"help": "keep every k-th frame of the rendered video"})
    mesh: str = field(
        default="fused", metadata={"help": "fused (TSDF of the depth frames) | parts (procedural)"}
    )
    capture: str = field(default="room", metadata={"help": "room (walk the whole room) | walk (wander)"})
    style_seed: int | None = field(
        default=None,
        metadata={
            "help": "appearance seed of the first scene (scene i uses style_seed+i); default: its seed"
        },
    )


def gt_url(root: str, scene_id: str) -> str:
    """Benchmark GT file (ScanNet text format) of a scene: ``<root>/gt/<scene_id>.txt``."""
    return storage.join(root, "gt", f"{scene_id}.txt")


def synthesize_corpus(cfg: SynthCommandConfig, log: Callable[[str], None] = print, synth=None) -> list[str]:
    """Generate ``cfg.scenes`` scenes into ``cfg.out``; scenes already complete are skipped (resumable).

    Args:
        cfg: command config.
        log: progress sink.
        synth: optional full :class:`~tracklift.datasets.synthetic.SynthConfig` (overrides size and frames).

    Returns: the URLs of the scenes written (or already complete), in order; a scene whose generation
    fails with a :class:`DataError` is logged and left out.
    """
    from tracklift.datasets import synthetic

    if cfg.format not in FORMATS:
        raise ValueError(f"unknown format {cfg.format!r}; choose from {', '.join(FORMATS)}")
    scfg = synth or synthetic.SynthConfig(
        width=cfg.width,
        height=cfg.height,
        n_frames=cfg.frames or None,
        frames_span=cfg.frames_span,
        frame_skip=cfg.frame_skip,
        mesh=cfg.mesh,
        capture=cfg.capture,
    )
    urls = []
    for i in range(cfg.scenes):
        seed = cfg.seed + i
        if cfg.style_seed is not None:
            scfg = replace(scfg, style_seed=cfg.style_seed + i)
        scene_id = f"synth{seed:04d}_00"
        url = scene_dir(cfg.out, scene_id, cfg.format)
        marker = storage.join(url, COMPLETE_MARKER)
        urls.append(url)
        if storage.exists(marker) and storage.exists(gt_url(cfg.out, scene_id)):
            log(f"[synth] {i + 1}/{cfg.scenes} {scene_id}: already complete, skipped")
            continue
        t0 = time.perf_counter()
        try:
            data = synthetic.generate_scene(seed, scfg, scene_id=scene_id)
        except DataError as e:  # a failing scene is reported and the corpus goes on
            log(f"[synth] {i + 1}/{cfg.scenes} {scene_id}: FAILED, skipped ({e})")
            urls.pop()
            continue
        if data.superpoints is None:  # real scans ship superpoints: so do ours, in the format's own file
            data.superpoints = compute_superpoints(data.mesh, source=url)
        write_scene(data, url, cfg.format)
        if data.meta:  # how the scan was made: coverage, frames, style… (format-independent side file)
            storage.write_text(storage.join(url, SYNTH_META), json.dumps(data.meta, indent=1))
        write_int_lines(gt_url(cfg.out, scene_id), data.gt_instance)
        storage.write_text(marker, f"seed={seed}\n")
        n_inst = len(np.unique(data.gt_instance[data.gt_instance >= 1000]))
        log(
            f"[synth] {i + 1}/{cfg.scenes} {scene_id}: {len(data.frames)} frames {scfg.width}x{scfg.height}, "
            f"{len(data.mesh.vertices)} vertices, {n_inst} instances, "
            f"{int(data.superpoints.max(initial=-1)) + 1} superpoints, coverage "
            f"{data.meta.get('coverage', float('nan')):.2f} ({time.perf_counter() - t0:.1f} s)"
        )
    return urls
