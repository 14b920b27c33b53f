"""The main job (``tracklift run``): the whole pipeline on its embedded default.

Default: local files under ``runs/demo``, a small synthetic corpus, local execution. At this stage of the
project the job synthesises the corpus, pseudo-labels it (granularity-consistent tracking and the
independent per-frame baseline), scores both and two reference predictors with the ScanNet protocol and
writes a report with pictures; later stages (training, Ray, serving) plug in here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tracklift import storage
from tracklift.datasets.corpus import SynthCommandConfig, gt_url, synthesize_corpus
from tracklift.datasets.formats import open_scene


@dataclass
class RunConfig:
    """``tracklift run``: the end-to-end main job."""

    out: str = field(default="runs/demo", metadata={"help": "run folder URL (file path, s3://, memory://)"})
    scenes: int = field(default=3, metadata={"help": "synthetic scenes to generate"})
    seed: int = field(default=1000, metadata={"help": "seed of the first synthetic scene"})
    width: int = field(default=320, metadata={"help": "synthetic image width"})
    height: int = field(default=240, metadata={"help": "synthetic image height"})
    frames: int = field(default=40, metadata={"help": "frames per synthetic scan"})
    preset: str = field(default="all_annotated", metadata={"help": "evaluation preset"})
    label: bool = field(default=True, metadata={"help": "pseudo-label the corpus (tracked and independent)"})
    depth_abs_tol: float = field(
        default=0.02, metadata={"help": "lifting visibility tolerance (m); synthetic depth is clean"}
    )


def _log(msg: str) -> None:
    print(msg, flush=True)


def run(cfg: RunConfig) -> dict:
    """Run the main job; returns ``{method: metrics}`` and writes ``<out>/report.md`` and ``results.json``."""
    from tracklift.baselines import mesh_connected_components
    from tracklift.evaluation import evaluate_dirs, format_table, write_predictions
    from tracklift.structures import Instances

    t_start = time.perf_counter()
    corpus = storage.join(cfg.out, "corpus")
    _log(f"[1/4] synthesising {cfg.scenes} scenes into {corpus}")
    synth = SynthCommandConfig(
        out=corpus, scenes=cfg.scenes, seed=cfg.seed, width=cfg.width, height=cfg.height, frames=cfg.frames
    )
    urls = synthesize_corpus(synth, log=_log)

    _log("[2/4] reference predictions: ground truth itself, mesh connected components")
    preds = {
        "gt_as_prediction": storage.join(cfg.out, "pred", "gt"),
        "mesh_connected_components": storage.join(cfg.out, "pred", "mesh_cc"),
    }
    for url in urls:
        scene = open_scene(url)
        gt = scene.gt_instance
        ids = np.where(gt >= 1000, gt, 0)
        write_predictions(preds["gt_as_prediction"], scene.scene_id, Instances.from_ids(ids))
        cc_ids, cc_scores = mesh_connected_components(scene.mesh)
        write_predictions(
            preds["mesh_connected_components"], scene.scene_id, Instances.from_ids(cc_ids, cc_scores)
        )

    if cfg.label:
        from tracklift.labeling import LabelConfig, label_corpus

        for method in ("tracked", "independent"):
            _log(
                f"[3/4] pseudo-labels, {method} (weightless masks{', geometric tracker' if method == 'tracked' else ''})"
            )
            lcfg = LabelConfig(
                scenes=corpus,
                out=storage.join(cfg.out, f"labels_{method}"),
                method=method,
                depth_abs_tol=cfg.depth_abs_tol,
                depth_rel_tol=cfg.depth_abs_tol / 2,
            )
            label_corpus(lcfg, log=_log)
            preds[f"pseudo_labels_{method}"] = storage.join(lcfg.out, "pred")

    _log(f"[4/4] evaluating (ScanNet protocol, preset {cfg.preset})")
    gt_dir = storage.join(corpus, "gt")
    results = {name: evaluate_dirs(url, gt_dir, preset=cfg.preset) for name, url in preds.items()}
    table = "whole mesh:\n" + format_table(results)
    if cfg.label:
        # a short scan sees part of a room: also score only the vertices it saw in >= 2 frames
        seen = _seen_masks(storage.join(cfg.out, "labels_tracked"), urls)
        unseen = {sid: ~mask for sid, mask in seen.items()}
        seen_results = {
            name: evaluate_dirs(url, gt_dir, preset=cfg.preset, scenes=list(seen), ignore=unseen)
            for name, url in preds.items()
        }
        results = {"whole_mesh": results, "seen_vertices": seen_results}
        table += "\n\nvertices the scans saw (>= 2 frames):\n" + format_table(seen_results)
    _log(table)
    elapsed = time.perf_counter() - t_start
    summary = {"config": asdict(cfg), "results": results, "seconds": round(elapsed, 1)}
    storage.write_text(storage.join(cfg.out, "results.json"), json.dumps(summary, indent=2, default=float))
    _write_report(cfg, urls, table, elapsed)
    _log(f"done in {elapsed:.0f} s; report: {storage.join(cfg.out, 'report.md')}")
    return results


def _seen_masks(labels_url: str, urls: list[str]) -> dict[str, np.ndarray]:
    """Per scene: vertices seen in >= 2 frames (from the tracked labeling run, which uses every frame)."""
    from tracklift.lifting import read_pseudo_labels

    out = {}
    for url in urls:
        sid = storage.basename(url)
        labels, _ = read_pseudo_labels(storage.join(labels_url, "scenes", sid, "pseudo_labels.npz"))
        out[sid] = labels.seen >= 2
    return out


def _write_report(cfg: RunConfig, urls: list[str], table: str, elapsed: float) -> None:
    from tracklift.render import RenderConfig, render_scene

    pics = []
    for url in urls[:2]:
        written = render_scene(
            RenderConfig(scene=url, labels="gt", out=storage.join(cfg.out, "pictures"), width=640, height=480)
        )
        pics.append(storage.basename(written[0]))
    lines = [
        "# tracklift run report",
        "",
        f"Synthetic corpus: {len(urls)} scenes (seeds {cfg.seed}..{cfg.seed + len(urls) - 1}), "
        f"{cfg.frames} frames of {cfg.width}x{cfg.height} each. Numbers are on synthetic scans only.",
        "",
        f"Evaluation: ScanNet protocol, class-agnostic, preset `{cfg.preset}` (AP, AP50, AP25 in %).",
        "",
        "```",
        table,
        "```",
        "",
        "Pseudo-labels are scored over the whole mesh, including surfaces the short scans never saw "
        "(benchmarks/bench_pseudo_labels.py scores the seen part only).",
        "",
        *[f"![{p}](pictures/{p})" for p in pics],
        *(
            [
                f"![tracked ids]({storage.join('labels_tracked', 'scenes', storage.basename(urls[0]), 'tracks.png')})"
            ]
            if cfg.label and urls
            else []
        ),
        "",
        f"Total time: {elapsed:.0f} s. Ground truth per scene: `{gt_url('corpus', '<scene>')}`.",
    ]
    storage.write_text(storage.join(cfg.out, "report.md"), "\n".join(lines) + "\n")
