"""The main job (``tracklift run``): the whole system on its embedded default.

Default: local files under ``runs/demo``, a small synthetic corpus, a local Ray started by the job. Steps:

1. synthesise a training corpus and a held-out corpus (different seeds);
2. pseudo-label both on Ray actors (granularity-consistent tracking, :func:`tracklift.actors.label_corpus_ray`)
   and the held-out corpus also with the independent per-frame baseline (in this process: it is fast);
3. train the three curriculum stages on the training corpus with Ray Train
   (:func:`tracklift.training.distributed.train_curriculum_ray`);
4. score on the held-out scenes, with the ScanNet protocol: two references (ground truth itself, mesh
   connected components), both pseudo-label kinds and the network after every stage;
5. deploy the final checkpoint on Ray Serve and send it a held-out scene over HTTP;
6. print the table and write ``report.md`` (with pictures) and ``results.json``.

Numbers are on synthetic scans and CPU-sized training; they check that the system works end to end.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from tracklift import storage
from tracklift.cluster.session import connect, resolve_address
from tracklift.datasets.corpus import SYNTH_META, SynthCommandConfig, gt_url, synthesize_corpus
from tracklift.datasets.formats import open_scene
from tracklift.datasets.synthetic import SynthConfig
from tracklift.labeling.layout import OutputLayout
from tracklift.tracking.consistent import ConsistencyConfig
from tracklift.tracking.geometric import GeometricConfig
from tracklift.tracking.weightless import WeightlessConfig

log = logging.getLogger(__name__)

# Vertices seen in at least this many frames of the held-out scan form the "seen" evaluation set.
MIN_SEEN = 2


@dataclass
class RunConfig:
    """``tracklift run``: the end-to-end main job."""

    out: str = field(default="runs/demo", metadata={"help": "run folder URL (file path, s3://, memory://)"})
    scenes: int = field(
        default=20,
        metadata={
            "help": "synthetic training scenes (6 before session 20: too few rooms for the network to learn "
            "objects rather than its rooms)"
        },
    )
    held_out: int = field(
        default=8,
        metadata={
            "help": "synthetic held-out scenes (evaluation only); since session 21 a run repeats to the "
            "digit (fixed sample order); four sample orders gave stage-3 AP50 24.5-32.9 at 8 scenes"
        },
    )
    seed: int = field(default=1000, metadata={"help": "seed of the first training scene"})
    train_seed: int = field(
        default=0,
        metadata={
            "help": "seed of the network's initialisation, shuffling and subsampling (a run repeats with "
            "the same seeds; another train seed shows the seed-to-seed spread)"
        },
    )
    held_out_seed: int = field(default=2000, metadata={"help": "seed of the first held-out scene"})
    width: int = field(default=320, metadata={"help": "synthetic image width"})
    height: int = field(default=240, metadata={"help": "synthetic image height"})
    frames: int = field(
        default=40,
        metadata={"help": "kept frames per synthetic scan (fused: spread over the whole-room walk)"},
    )
    scans: Literal["classic", "fused"] = field(
        default="fused",
        metadata={
            "help": "fused: scans made as real ones are (whole-room walks subsampled to --frames, "
            "TSDF-fused meshes with voted GT, styles); classic: the older wandering scans with piecewise "
            "meshes (every part a separate mesh piece)"
        },
    )
    preset: str = field(default="all_annotated", metadata={"help": "evaluation preset"})
    vote_unit: Literal["vertex", "superpoint"] = field(
        default="superpoint",
        metadata={
            "help": "lifting vote unit (both labeling methods): superpoint pools each superpoint's votes "
            "(chosen on training seeds 10-12 for the weightless prior: 25.7 against 15.3 AP50 per vertex at "
            "40 spread frames)"
        },
    )
    depth_abs_tol: float = field(
        default=0.02, metadata={"help": "lifting visibility tolerance (m); synthetic depth is clean"}
    )
    weightless: WeightlessConfig = field(
        default_factory=WeightlessConfig,
        metadata={"help": "weightless mask generator settings (--weightless.*, as tracklift label)"},
    )
    consistency: ConsistencyConfig = field(
        default_factory=ConsistencyConfig,
        metadata={"help": "granularity-consistent tracker thresholds (--consistency.*, as tracklift label)"},
    )
    geometric: GeometricConfig = field(
        default_factory=GeometricConfig,
        metadata={"help": "geometric tracker settings (--geometric.*, as tracklift label)"},
    )
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster address (default: $RAY_ADDRESS, else a local Ray)"}
    )
    num_actors: int = field(default=2, metadata={"help": "labeling actors"})
    num_workers: int = field(default=2, metadata={"help": "Ray Train workers"})
    model: str = field(
        default="default",
        metadata={"help": "network preset (default: superpoint decoder; tiny, small, base: point decoder)"},
    )
    voxel_size: float = field(default=0.08, metadata={"help": "network voxel size (m)"})
    epochs: str = field(
        default="1,1,18",
        metadata={
            "help": "epochs of stages 1,2,3 (one pass over views and chunks, then full rooms: the split "
            "chosen on training seeds, docs/recipe.md; 18 epochs of 20 rooms are the 180 stage-3 steps "
            "60 epochs of 6 rooms were)"
        },
    )
    lr: float = field(
        default=3e-3,
        metadata={
            "help": "AdamW learning rate (all stages): 3e-3 beat 1e-3 by 8.6 validation AP50 on training-side "
            "seeds, 1e-2 diverged (benchmarks/results/recipe_lr.json)"
        },
    )
    handoff: Literal["all", "backbone"] = field(
        default="all",
        metadata={
            "help": "what stages 2 and 3 take from the stage before: all weights, or the backbone with a fresh "
            "query decoder (on training-side seeds backbone gained 2.6 validation AP50 for one prior and lost "
            "3.3 and 3.7 for the two others: benchmarks/results/recipe_handoff.json)"
        },
    )
    lr_schedule: Literal["constant", "cosine", "onecycle"] = field(
        default="cosine", metadata={"help": "learning-rate schedule of each stage"}
    )
    warmup: float = field(default=0.1, metadata={"help": "share of each stage's steps spent warming up"})
    lr_span: Literal["stage", "curriculum"] = field(
        default="curriculum",
        metadata={
            "help": "what one schedule spans: each stage (a warm-up and decay per stage) or the curriculum "
            "(warm up in stage 1, hold, decay in stage 3: +1.3 validation AP50 over the three priors on "
            "training-side seeds, benchmarks/results/recipe_lr_span.json)"
        },
    )
    augment: bool = field(
        default=False,
        metadata={
            "help": "training augmentations (rotation, flips, ...); off: with them the network did not fit "
            "its labels at this budget (benchmarks/results/recipe_stage3.json, docs/recipe.md)"
        },
    )
    max_points: int = field(default=30_000, metadata={"help": "training samples are subsampled to this"})
    serve: bool = field(default=True, metadata={"help": "deploy the final checkpoint and send it a request"})
    port: int = field(default=0, metadata={"help": "Serve HTTP port on 127.0.0.1 (0: a free one)"})


def _log(msg: str) -> None:
    print(msg, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage_epochs(text: str) -> list[int]:
    try:
        epochs = [int(x) for x in text.split(",")]
    except ValueError:
        epochs = []
    if len(epochs) != 3 or min(epochs) < 0:
        from tracklift.errors import ConfigError

        raise ConfigError(f"--epochs must be three non-negative integers like 3,3,6, got {text!r}")
    return epochs


def label_configs(cfg: RunConfig, corpora: dict, labels: dict, independent: str):
    """The label stage's settings: ``({split: tracked LabelConfig}, held-out independent LabelConfig)``.

    Both methods use the run's ``weightless`` generator settings and lift with the same visibility test
    and vote unit; the tracked ones use the run's ``consistency`` and ``geometric`` settings
    (``tracklift run --geometric.stride 1`` ...).
    """
    from tracklift.labeling import LabelConfig
    from tracklift.lifting import LiftConfig, VisibilityConfig

    vis = VisibilityConfig(depth_abs_tol=cfg.depth_abs_tol, depth_rel_tol=cfg.depth_abs_tol / 2)
    lift = LiftConfig(visibility=vis, vote_unit=cfg.vote_unit)
    tracked = {
        split: LabelConfig(
            scenes=corpora[split],
            out=labels[split],
            method="tracked",
            lift=lift,
            weightless=cfg.weightless,
            consistency=cfg.consistency,
            geometric=cfg.geometric,
        )
        for split in corpora
    }
    independent_cfg = LabelConfig(
        scenes=corpora["held_out"],
        out=independent,
        method="independent",
        lift=lift,
        weightless=cfg.weightless,
        pictures=False,
    )
    return tracked, independent_cfg


def run(cfg: RunConfig) -> dict:
    """Run the main job; returns the results and writes ``<out>/report.md`` and ``results.json``."""
    import ray

    from tracklift.actors.pipeline import label_corpus_ray
    from tracklift.labeling import label_corpus
    from tracklift.serving.config import proxy_ready_env

    epochs = _stage_epochs(cfg.epochs)
    cfg = replace(cfg, out=storage.absolute(cfg.out))
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    corpora = {
        "train": storage.join(cfg.out, "corpus_train"),
        "held_out": storage.join(cfg.out, "corpus_held_out"),
    }
    _log(f"[1/6] synthesising {cfg.scenes} training and {cfg.held_out} held-out scenes under {cfg.out}")
    urls = {}
    for split, n, seed in (("train", cfg.scenes, cfg.seed), ("held_out", cfg.held_out, cfg.held_out_seed)):
        synth = SynthCommandConfig(
            out=corpora[split], scenes=n, seed=seed, width=cfg.width, height=cfg.height, frames=cfg.frames
        )
        scans = None  # "fused": the generator's defaults (whole-room walk, TSDF-fused mesh)
        if cfg.scans == "classic":
            scans = SynthConfig.classic(width=cfg.width, height=cfg.height, n_frames=cfg.frames)
        urls[split] = synthesize_corpus(synth, log=_log, synth=scans)
    timings["synthesise"] = time.perf_counter() - t_start
    scans = _scan_facts(urls)

    address = resolve_address(cfg.address)
    # Ray Data's per-operator progress bars would bury the job's own progress lines; Serve's controller
    # reads its proxy readiness timeout when it starts, so it must be in the environment Ray starts with
    # (Serve's 5 s killed the proxy of a run on a loaded machine)
    job_env = {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", **proxy_ready_env()}
    if not ray.is_initialized():
        _log(f"[2/6] Ray: {'connecting to ' + address if address else 'starting a local Ray'}")
        os.environ.update(job_env)
    started = connect(
        address, include_dashboard=False, logging_level="WARNING", runtime_env={"env_vars": job_env}
    )
    try:
        t = time.perf_counter()
        labels = {split: storage.join(cfg.out, f"labels_{split}") for split in corpora}
        independent = storage.join(cfg.out, "labels_held_out_independent")
        tracked_cfgs, icfg = label_configs(cfg, corpora, labels, independent)
        for split, lcfg in tracked_cfgs.items():
            _log(f"[2/6] pseudo-labels of the {split} corpus on {cfg.num_actors} Ray actors (tracked)")
            _check_manifest(label_corpus_ray(lcfg, num_actors=cfg.num_actors, log=_log), labels[split])
        _log("[2/6] pseudo-labels of the held-out corpus, independent per-frame masks (baseline, in process)")
        _check_manifest(label_corpus(icfg, log=_log), independent)
        timings["label"] = time.perf_counter() - t

        t = time.perf_counter()
        checkpoints = _train(cfg, epochs, labels["train"])
        timings["train"] = time.perf_counter() - t

        t = time.perf_counter()
        _log(f"[4/6] evaluating on the held-out scenes (ScanNet protocol, preset {cfg.preset})")
        results, table = _evaluate(
            cfg, corpora["held_out"], urls["held_out"], labels["held_out"], independent, checkpoints
        )
        timings["evaluate"] = time.perf_counter() - t

        serving = None
        if cfg.serve:
            t = time.perf_counter()
            serving = _serve_step(cfg, checkpoints[3], urls["held_out"][0])
            timings["serve"] = time.perf_counter() - t
    finally:
        if started:
            ray.shutdown()

    _log(table)
    elapsed = time.perf_counter() - t_start
    timings = {k: round(v, 1) for k, v in timings.items()}
    summary = {
        "config": asdict(cfg),
        "scans": scans,
        "results": results,
        "serve": serving,
        "seconds": round(elapsed, 1),
        "seconds_per_step": timings,
        "checkpoints": checkpoints,
    }
    storage.write_text(storage.join(cfg.out, "results.json"), json.dumps(summary, indent=2, default=float))
    _write_report(cfg, urls, scans, table, serving, timings, elapsed)
    if serving and "error" in serving:
        raise RuntimeError(
            f"the Ray Serve step failed ({serving['error']}); the evaluation, results.json and report.md "
            f"were written to {cfg.out}"
        )
    _log(f"done in {elapsed:.0f} s; report: {storage.join(cfg.out, 'report.md')}")
    return summary


def _scan_facts(urls: dict[str, list[str]]) -> list[dict]:
    """Per synthetic scene (both splits): how the scan was made, from the generator's ``synth.json``."""
    keys = ("frames", "coverage", "vertices", "largest_component_share", "route_length_m")
    facts = []
    for split, scene_urls in urls.items():
        for url in scene_urls:
            meta_url = storage.join(url, SYNTH_META)
            meta = json.loads(storage.read_text(meta_url)) if storage.exists(meta_url) else {}
            facts.append({"scene": storage.basename(url), "split": split, **{k: meta.get(k) for k in keys}})
    return facts


def _scans_table(scans: list[dict]) -> list[str]:
    """Markdown rows of :func:`_scan_facts` (coverage: GT surface seen by at least two kept frames)."""
    rows = ["| scene | split | kept frames | coverage | vertices | route (m) |", "|---|---|---|---|---|---|"]
    for f in scans:
        cov = "?" if f["coverage"] is None else f"{f['coverage']:.2f}"
        rows.append(
            f"| {f['scene']} | {f['split']} | {f['frames']} | {cov} | {f['vertices']} | {f['route_length_m']} |"
        )
    return rows


def _check_manifest(manifest: dict, where: str) -> None:
    """A failed scene does not stop a labeling job, but the demo corpus is ours: every scene must work."""
    failed = {s: e.get("error") for s, e in manifest["scenes"].items() if e["status"] != "complete"}
    if failed:
        raise RuntimeError(f"labeling {where}: scenes failed: {failed}")


def _train(cfg: RunConfig, epochs: list[int], labels: str) -> dict[int, str]:
    from tracklift.training import RayTrainOptions, TrainConfig
    from tracklift.training.augment import AugmentConfig
    from tracklift.training.distributed import train_curriculum_ray

    tcfg = TrainConfig(
        labels=labels,
        out=storage.join(cfg.out, "checkpoints"),
        model=cfg.model,
        model_overrides={"voxel_size": cfg.voxel_size},
        epochs=epochs,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        warmup=cfg.warmup,
        lr_span=cfg.lr_span,
        handoff=cfg.handoff,
        augment=AugmentConfig(enabled=cfg.augment),
        max_points=cfg.max_points,
        seed=cfg.train_seed,
        log_every=0,
    )
    _log(
        f"[3/6] training stages 1, 2, 3 ({', '.join(map(str, epochs))} epochs, model {cfg.model}) "
        f"on Ray Train with {cfg.num_workers} workers"
    )
    return train_curriculum_ray(tcfg, RayTrainOptions(num_workers=cfg.num_workers))


def _seen_masks(labels_url: str, scene_ids: list[str]) -> dict[str, np.ndarray]:
    """Per scene: vertices seen in >= MIN_SEEN frames (from the tracked labeling run, which uses every frame)."""
    from tracklift.lifting import read_pseudo_labels

    out = {}
    for sid in scene_ids:
        pl, _ = read_pseudo_labels(OutputLayout(labels_url).pseudo_labels(sid))
        out[sid] = pl.seen >= MIN_SEEN
    return out


def _evaluate(
    cfg: RunConfig, corpus: str, urls: list[str], labels: str, independent: str, checkpoints: dict[int, str]
) -> tuple[dict, str]:
    from tracklift.evaluation import evaluate_dirs, format_table, write_predictions
    from tracklift.evaluation.baselines import mesh_connected_components
    from tracklift.structures import Instances
    from tracklift.training import evaluate_checkpoint, load_stage_samples

    preds = {
        "gt_as_prediction": storage.join(cfg.out, "pred", "gt"),
        "mesh_connected_components": storage.join(cfg.out, "pred", "mesh_cc"),
        "pseudo_labels_independent": OutputLayout(independent).pred_dir,
        "pseudo_labels_tracked": OutputLayout(labels).pred_dir,
    }
    scene_ids = []
    for url in urls:
        scene = open_scene(url)
        scene_ids.append(scene.scene_id)
        gt = scene.gt_instance
        write_predictions(
            preds["gt_as_prediction"], scene.scene_id, Instances.from_ids(np.where(gt >= 1000, gt, 0))
        )
        cc_ids, cc_scores = mesh_connected_components(scene.mesh)
        write_predictions(
            preds["mesh_connected_components"], scene.scene_id, Instances.from_ids(cc_ids, cc_scores)
        )
    samples = load_stage_samples(labels, 3)
    for stage, url in sorted(checkpoints.items()):
        name = f"network_stage{stage}"
        preds[name] = storage.join(cfg.out, "pred", name)
        for sid, inst in evaluate_checkpoint(url, samples).predictions.items():
            write_predictions(preds[name], sid, inst)

    gt_dir = storage.join(corpus, "gt")
    seen = _seen_masks(labels, scene_ids)
    unseen = {sid: ~mask for sid, mask in seen.items()}
    seen_results = {
        name: evaluate_dirs(url, gt_dir, preset=cfg.preset, scenes=scene_ids, ignore=unseen)
        for name, url in preds.items()
    }
    whole = {
        name: evaluate_dirs(url, gt_dir, preset=cfg.preset, scenes=scene_ids) for name, url in preds.items()
    }
    table = (
        f"held-out scenes, vertices the scans saw (>= {MIN_SEEN} frames):\n"
        + format_table(seen_results)
        + "\n\nheld-out scenes, whole mesh (includes surfaces the scans never saw):\n"
        + format_table(whole)
    )
    return {"seen_vertices": seen_results, "whole_mesh": whole}, table


def _serve_step(cfg: RunConfig, checkpoint: str, scene_url: str) -> dict:
    """:func:`_serve_once`, or ``{"error": ...}`` when it fails: a Serve failure must not lose the
    evaluation before it (:func:`run` writes the results and the report, then raises)."""
    try:
        return _serve_once(cfg, checkpoint, scene_url)
    except Exception as e:  # noqa: BLE001 (reported, then raised by run() once the results are written)
        log.exception("the Ray Serve step failed")
        _log(f"[5/6] Ray Serve step FAILED: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}


def _serve_once(cfg: RunConfig, checkpoint: str, scene_url: str) -> dict:
    """Deploy ``checkpoint`` on Ray Serve, segment one scene's vertices over HTTP, check it against the same
    model in this process, and shut the deployment down."""
    from ray import serve

    from tracklift.models import Segmenter
    from tracklift.serving.app import start
    from tracklift.serving.client import Client
    from tracklift.serving.config import ServeConfig

    port = cfg.port or _free_port()
    scfg = ServeConfig(checkpoint=checkpoint, host="127.0.0.1", port=port)
    _log(f"[5/6] Ray Serve: deploying {checkpoint} on http://127.0.0.1:{port}")
    t = time.perf_counter()
    start(scfg)
    up_s = time.perf_counter() - t
    try:
        scene = open_scene(scene_url)
        with Client(f"http://127.0.0.1:{port}") as client:
            health = client.health()
            t = time.perf_counter()
            result = client.segment(scene.vertices, scene.colors)
            request_ms = 1000 * (time.perf_counter() - t)
        local = Segmenter.from_checkpoint(checkpoint).predict(scene.vertices, scene.colors)
        same = len(local.scores) == len(result.instances.scores) and bool(
            np.array_equal(local.masks, result.instances.masks)
        )
        info = {
            "url": f"http://127.0.0.1:{port}",
            "health": health,
            "scene": scene.scene_id,
            "points": int(len(scene.vertices)),
            "instances": int(len(result.instances.scores)),
            "request_ms": round(request_ms, 1),
            "server_timings_ms": result.timings_ms,
            "deploy_seconds": round(up_s, 1),
            "matches_in_process_prediction": same,
        }
        _log(
            f"[5/6] POST /v1/segment {scene.scene_id} ({len(scene.vertices)} points): "
            f"{info['instances']} instances in {request_ms:.0f} ms; same as in-process prediction: {same}"
        )
        return info
    finally:
        serve.shutdown()


def _breakdown(timings_ms: dict) -> str:
    """``receive 5, decode 5, ..., total 1215`` from the server's ``timings_ms``."""
    return ", ".join(f"{k} {v:.0f}" for k, v in timings_ms.items() if k != "batch_size")


def _write_report(
    cfg: RunConfig,
    urls: dict,
    scans: list[dict],
    table: str,
    serving: dict | None,
    timings: dict,
    elapsed: float,
) -> None:
    from tracklift.evaluation.render import RenderConfig, render_scene

    _log("[6/6] writing the report")
    held = urls["held_out"][0]
    sid = storage.basename(held)
    pics = []
    sources = {
        "ground truth": "gt",
        "pseudo-labels (tracked)": "pred:" + OutputLayout(storage.join(cfg.out, "labels_held_out")).pred_dir,
        "network after stage 3": "pred:" + storage.join(cfg.out, "pred", "network_stage3"),
    }
    for title, labels in sources.items():
        name = title.split(" (")[0].replace(" ", "_")
        written = render_scene(
            RenderConfig(
                scene=held, labels=labels, out=storage.join(cfg.out, "pictures", name), width=640, height=480
            )
        )
        pics.append((title, f"pictures/{name}/{storage.basename(written[0])}"))
    tracks = f"labels_held_out/scenes/{sid}/tracks.png"
    serve_lines = []
    if serving and "error" in serving:
        serve_lines = ["## Serving", "", f"The Ray Serve step failed: `{serving['error']}`.", ""]
    elif serving:
        serve_lines = [
            "## Serving",
            "",
            f"The stage-3 checkpoint was deployed on Ray Serve ({serving['deploy_seconds']} s to come up) and "
            f"`POST /v1/segment` got scene `{serving['scene']}` ({serving['points']} points): "
            f"{serving['instances']} instances in {serving['request_ms']} ms "
            f"(server side, ms: {_breakdown(serving['server_timings_ms'])}). Identical to the same checkpoint "
            f"predicting in-process: {serving['matches_in_process_prediction']}.",
            "",
        ]
    lines = [
        "# tracklift run report",
        "",
        f"Synthetic corpus: {cfg.scenes} training scenes (seeds {cfg.seed}..{cfg.seed + cfg.scenes - 1}) and "
        f"{cfg.held_out} held-out scenes (seeds {cfg.held_out_seed}..{cfg.held_out_seed + cfg.held_out - 1}), "
        f"{cfg.frames} frames of {cfg.width}x{cfg.height} each"
        + (" spread over a whole-room walk" if cfg.scans == "fused" else "")
        + ". **All numbers are on synthetic scans and "
        "CPU-sized training; none is a ScanNet number.**",
        "",
        f"Pseudo-labels: weightless mask generator + granularity-consistent tracker on {cfg.num_actors} Ray "
        f"actors, votes lifted per {cfg.vote_unit}. Network: preset `{cfg.model}`, voxel {cfg.voxel_size} m, "
        f"stages 1/2/3 for {cfg.epochs} epochs on Ray Train with {cfg.num_workers} workers, train seed "
        f"{cfg.train_seed}.",
        "",
        "Scans (coverage: share of the GT surface seen by at least two kept frames):",
        "",
        *_scans_table(scans),
        "",
        f"Evaluation: ScanNet protocol, class-agnostic, preset `{cfg.preset}` (AP, AP50, AP25 in %).",
        "",
        "```",
        table,
        "```",
        "",
        *serve_lines,
        "## Pictures (first held-out scene)",
        "",
        *[f"{title}:\n\n![{title}]({path})\n" for title, path in pics],
        f"Tracked 2D ids (same colour = same id across frames):\n\n![tracked ids]({tracks})",
        "",
        f"Seconds per step: {timings}; total {elapsed:.0f} s. Ground truth per scene: "
        f"`{gt_url('corpus_held_out', '<scene>')}`.",
    ]
    storage.write_text(storage.join(cfg.out, "report.md"), "\n".join(lines) + "\n")
