"""``tracklift <command>``: one entry point, one config dataclass per command.

Every command takes ``--config FILE.yaml`` and one flag per config field (``tracklift <command> --help``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from tracklift import config as config_lib
from tracklift.errors import TrackliftError
from tracklift.openvocab.config import ClipConfig
from tracklift.training.config import TrainConfig
from tracklift.training.distributed import RayTrainOptions


@dataclass
class EvalConfig:
    """``tracklift eval``: score ScanNet-format predictions against per-vertex GT files."""

    pred: str = field(default="", metadata={"help": "prediction folder URL (<scene>.txt + pred_mask/)"})
    gt: str = field(default="", metadata={"help": "GT folder URL (<scene>.txt, one id per vertex)"})
    preset: str = field(default="all_annotated", metadata={"help": "all_annotated | scannet200_198"})
    json: str | None = field(default=None, metadata={"help": "write the metrics as JSON to this URL"})


@dataclass
class TrainCommandConfig:
    """``tracklift train``: the three-stage curriculum on the shards written by ``tracklift label``.

    ``--train.<field>`` sets the curriculum (:class:`~tracklift.training.TrainConfig`, e.g.
    ``--train.epochs 3,3,6``), ``--ray.<field>`` how it runs on Ray Train
    (:class:`~tracklift.training.RayTrainOptions`).
    """

    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "the curriculum"})
    ray: RayTrainOptions = field(default_factory=RayTrainOptions, metadata={"help": "ray runner options"})
    stage: str = field(
        default="all",
        metadata={
            "help": "all | 1 | 2 | 3 (a single stage starts from the previous one's checkpoint when it exists)"
        },
    )
    runner: str = field(
        default="auto",
        metadata={
            "help": "local: one process; ray: Ray Train DDP workers on a local Ray or the cluster at "
            "--ray.address; auto: ray when --ray.address or RAY_ADDRESS is set, else local"
        },
    )


@dataclass
class PredictConfig:
    """``tracklift predict``: segment every scene's mesh vertices; writes ScanNet prediction files."""

    checkpoint: str = field(default="", metadata={"help": "model checkpoint URL"})
    scenes: str = field(default="", metadata={"help": "corpus root, scene folder, or list file URL"})
    out: str = field(
        default="runs/pred", metadata={"help": "prediction folder URL (scored by tracklift eval)"}
    )
    backend: str | None = field(
        default=None,
        metadata={"help": "sparse-conv backend: torch | minkowski | spconv (default: the checkpoint's)"},
    )
    device: str = field(default="cpu", metadata={"help": "torch device"})
    clip: ClipConfig = field(
        default_factory=ClipConfig,
        metadata={"help": "with --clip.checkpoint: also write <out>/<scene>_clip.npz (CLIP features)"},
    )


@dataclass
class QueryConfig:
    """``tracklift query``: rank predicted instances by CLIP similarity to a text prompt."""

    pred: str = field(default="", metadata={"help": "prediction folder URL (with <scene>_clip.npz files)"})
    text: str = field(default="", metadata={"help": "the prompt, e.g. 'a wooden chair'"})
    scenes: str = field(
        default="", metadata={"help": "scans of the predictions: computes missing <scene>_clip.npz first"}
    )
    top_k: int = field(default=10, metadata={"help": "instances to print (0 = all)"})
    clip: ClipConfig = field(default_factory=ClipConfig, metadata={"help": "the CLIP model of the features"})


def _cmd_train(cfg: TrainCommandConfig) -> int:
    import logging

    from tracklift import storage
    from tracklift.cluster.session import choose_runner
    from tracklift.training import checkpoint_url, train_curriculum, train_stage
    from tracklift.training.distributed import train_curriculum_ray, train_stage_ray

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if cfg.stage not in ("all", "1", "2", "3"):
        raise TrackliftError(f"--stage must be all, 1, 2 or 3, got {cfg.stage!r}")
    tcfg = cfg.train
    use_ray = choose_runner(cfg.runner, cfg.ray.address) == "ray"
    if cfg.stage == "all":
        urls = train_curriculum_ray(tcfg, cfg.ray) if use_ray else train_curriculum(tcfg)
    else:
        n = int(cfg.stage)
        prev = checkpoint_url(tcfg.out, n - 1) if n > 1 else None
        init = prev if prev and storage.exists(prev) else None
        stage_cfg = tcfg.stages[n - 1]
        if use_ray:
            urls = {n: train_stage_ray(tcfg, stage_cfg, init, cfg.ray)}
        else:
            urls = {n: train_stage(tcfg, stage_cfg, init)}
    for n, url in sorted(urls.items()):
        print(f"stage {n}: {url}")
    return 0


def _cmd_predict(cfg: PredictConfig) -> int:
    import time

    from tracklift.datasets.formats import list_scenes, open_scene
    from tracklift.evaluation import write_predictions
    from tracklift.models import Segmenter

    if not cfg.checkpoint or not cfg.scenes:
        raise TrackliftError("tracklift predict needs --checkpoint and --scenes")
    if not cfg.clip.checkpoint and (cfg.clip.model_config or cfg.clip.model != ClipConfig().model):
        raise TrackliftError("--clip.model needs --clip.checkpoint (CLIP weights are user-supplied)")
    model = Segmenter.from_checkpoint(cfg.checkpoint, device=cfg.device, backend=cfg.backend)
    encoder = None
    if cfg.clip.checkpoint:
        from tracklift.openvocab import ClipEncoder, write_scene_features

        encoder = ClipEncoder.from_config(cfg.clip)
    urls = list_scenes(cfg.scenes)
    for i, url in enumerate(urls):
        scene = open_scene(url)
        t0 = time.perf_counter()
        inst = model.predict(scene.vertices, scene.colors)
        write_predictions(cfg.out, scene.scene_id, inst)
        if encoder is not None:
            write_scene_features(cfg.out, scene, inst, encoder, cfg.clip)
        print(
            f"[predict] {i + 1}/{len(urls)} {scene.scene_id}: {len(inst)} instances "
            f"({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    return 0


def _cmd_query(cfg: QueryConfig) -> int:
    from tracklift.openvocab import ClipEncoder, fill_missing_features, query_predictions

    if not cfg.pred or not cfg.text:
        raise TrackliftError("tracklift query needs --pred and --text")
    if not cfg.clip.checkpoint:
        raise TrackliftError("tracklift query needs --clip.checkpoint (CLIP weights are user-supplied)")
    encoder = ClipEncoder.from_config(cfg.clip)
    if cfg.scenes:
        for scene_id in fill_missing_features(cfg.pred, cfg.scenes, encoder, cfg.clip):
            print(f"[query] computed CLIP features of {scene_id}", flush=True)
    hits = query_predictions(cfg.pred, cfg.text, encoder, top_k=cfg.top_k or None)
    print(f"{'rank':>4}  {'similarity':>10}  scene  instance")
    for rank, h in enumerate(hits, start=1):
        sim = f"{h.similarity:10.4f}" if h.seen else f"{'unseen':>10}"
        print(f"{rank:>4}  {sim}  {h.scene_id}  {h.mask}")
    return 0


def _cmd_synth(cfg) -> int:
    from tracklift.datasets.corpus import synthesize_corpus

    synthesize_corpus(cfg)
    return 0


def _cmd_eval(cfg: EvalConfig) -> int:
    import json

    from tracklift import storage
    from tracklift.evaluation import evaluate_dirs, format_table

    if not cfg.pred or not cfg.gt:
        raise TrackliftError("tracklift eval needs --pred and --gt")
    result = evaluate_dirs(cfg.pred, cfg.gt, preset=cfg.preset)
    print(format_table({storage.basename(cfg.pred): result}))
    if cfg.json:
        storage.write_text(cfg.json, json.dumps(result, indent=2, default=float))
    return 0


def _cmd_render(cfg) -> int:
    from tracklift.evaluation.render import render_scene

    for url in render_scene(cfg):
        print(url)
    return 0


def _cmd_label(cfg) -> int:
    if cfg.uses_ray():
        from tracklift.actors.pipeline import label_corpus_ray

        manifest = label_corpus_ray(cfg)
    else:
        from tracklift.labeling import label_corpus

        manifest = label_corpus(cfg)
    from tracklift.labeling.manifest import exit_status

    return exit_status(manifest)


def _cmd_serve(cfg) -> int:
    from tracklift.serving.app import serve_forever

    serve_forever(cfg.validate())
    return 0


def _cmd_run(cfg) -> int:
    from tracklift.main_job import run

    run(cfg)
    return 0


def _commands() -> dict[str, tuple[str, type, Callable]]:
    from tracklift.datasets.corpus import SynthCommandConfig
    from tracklift.evaluation.render import RenderConfig
    from tracklift.labeling import LabelConfig
    from tracklift.main_job import RunConfig
    from tracklift.serving.config import ServeConfig

    return {
        "run": (
            "the main job: synthesise, label, train, evaluate, serve (embedded default)",
            RunConfig,
            _cmd_run,
        ),
        "synth": ("write a synthetic RGB-D scan corpus with ground truth", SynthCommandConfig, _cmd_synth),
        "train": (
            "three-stage curriculum training on the pseudo-label shards",
            TrainCommandConfig,
            _cmd_train,
        ),
        "predict": (
            "segment scenes with a trained checkpoint (ScanNet prediction format)",
            PredictConfig,
            _cmd_predict,
        ),
        "query": (
            "rank predicted instances by CLIP similarity to a text prompt",
            QueryConfig,
            _cmd_query,
        ),
        "label": (
            "2D masks → tracked ids → 3D pseudo-labels + curriculum shards (one process or Ray actors)",
            LabelConfig,
            _cmd_label,
        ),
        "eval": ("ScanNet-protocol class-agnostic AP / AP50 / AP25", EvalConfig, _cmd_eval),
        "serve": (
            "Ray Serve HTTP API: segment clouds / stored scenes, CLIP text queries (blocks until Ctrl-C)",
            ServeConfig,
            _cmd_serve,
        ),
        "render": (
            "PNG + coloured PLY of a scene by GT, pseudo-labels or predictions",
            RenderConfig,
            _cmd_render,
        ),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracklift",
        description="Class-agnostic 3D instance segmentation from RGB-D scans via granularity-consistent "
        "2D mask tracking. Each command takes --config FILE.yaml and per-field flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (help_text, cls, _) in _commands().items():
        p = sub.add_parser(name, help=help_text, description=(cls.__doc__ or help_text).strip())
        config_lib.add_arguments(p, cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    _, cls, fn = _commands()[args.command]
    try:
        cfg = config_lib.from_args(cls, args)
        return fn(cfg)
    except (TrackliftError, ValueError) as e:
        print(f"tracklift {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
