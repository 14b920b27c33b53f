"""``tracklift <command>``: one entry point, one config dataclass per command.

Every command takes ``--config FILE.yaml`` and one flag per config field (``tracklift <command> --help``).
``tracklift --log-level debug <command>`` sets how much progress is logged (to stderr; results that
scripts read stay on stdout), ``tracklift --version`` prints the version.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import re
import shutil
import sys
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tracklift import __version__, logs
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
    preset: Literal["all_annotated", "scannet200_198"] = field(
        default="all_annotated", metadata={"help": "which GT instances count (evaluation preset)"}
    )
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
    stage: Literal["all", "1", "2", "3"] = field(
        default="all",
        metadata={"help": "a single stage starts from the previous one's checkpoint when it exists"},
    )
    runner: Literal["auto", "local", "ray"] = field(
        default="auto",
        metadata={
            "help": "local: one process; ray: Ray Train DDP workers on a local Ray or the cluster at "
            "--ray.address; auto: ray when --ray.address or RAY_ADDRESS is set, else local"
        },
    )


@dataclass
class PredictConfig:
    """``tracklift predict``: segment scans (``--scenes``) or your own point clouds (``--input``).

    ``--scenes`` takes a corpus of scans (ScanNet, ScanNet++, tracklift layouts) and writes ScanNet
    prediction files. ``--input`` takes a PLY (mesh or cloud), PCD, NPY or NPZ file, a folder of them or an
    S3 prefix, and writes per file the ScanNet prediction files, ``<name>_instances.ply`` (coloured by
    instance) and ``<name>.json`` (a summary); a file that cannot be read is reported and skipped.
    """

    checkpoint: str = field(default="", metadata={"help": "model checkpoint URL"})
    scenes: str = field(default="", metadata={"help": "corpus root, scene folder, or list file URL"})
    input: str = field(
        default="",
        metadata={"help": "a .ply/.pcd/.npy/.npz file, a folder of them, or an s3:// prefix (own data)"},
    )
    out: str = field(
        default="runs/pred",
        metadata={"help": "prediction folder URL (scored by tracklift eval); --output is the same flag"},
    )
    backend: str | None = field(
        default=None,
        metadata={"help": "sparse-conv backend (default: the checkpoint's)"},
    )
    device: str = field(default="cpu", metadata={"help": "torch device"})
    max_points: int = field(
        default=50_000_000, metadata={"help": "--input: refuse files holding or declaring more points"}
    )
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


log = logging.getLogger("tracklift.cli")


def _cmd_train(cfg: TrainCommandConfig) -> int:
    from tracklift import storage
    from tracklift.cluster.session import choose_runner
    from tracklift.training import checkpoint_url, train_curriculum, train_stage
    from tracklift.training.distributed import train_curriculum_ray, train_stage_ray

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

    if not cfg.checkpoint or bool(cfg.scenes) == bool(cfg.input):
        raise TrackliftError("tracklift predict needs --checkpoint and one of --scenes or --input")
    if not cfg.clip.checkpoint and (cfg.clip.model_config or cfg.clip.model != ClipConfig().model):
        raise TrackliftError("--clip.model needs --clip.checkpoint (CLIP weights are user-supplied)")
    if cfg.input and cfg.clip.checkpoint:
        raise TrackliftError("--clip.* works with --scenes only (CLIP features need the scans' frames)")
    model = Segmenter.from_checkpoint(cfg.checkpoint, device=cfg.device, backend=cfg.backend)
    if cfg.input:
        return _predict_inputs(cfg, model)
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
        log.info(
            "predict %d/%d %s: %d instances (%.1f s)",
            i + 1,
            len(urls),
            scene.scene_id,
            len(inst),
            time.perf_counter() - t0,
        )
    return 0


def _predict_inputs(cfg: PredictConfig, model) -> int:
    """``--input``: every file segmented on its own; an unreadable one is logged, listed in
    ``<out>/failed.json`` and skipped. Exit 0 when all succeeded, 3 when some failed, 1 when all did."""
    import json

    from tracklift import storage
    from tracklift.api import output_names, segment_file
    from tracklift.datasets.pointclouds import list_point_clouds
    from tracklift.errors import DataError
    from tracklift.labeling.manifest import EXIT_PARTIAL

    urls = list_point_clouds(cfg.input)
    failed = []
    for i, (url, name) in enumerate(zip(urls, output_names(urls))):
        try:
            summary = segment_file(url, model, cfg.out, name=name, max_points=cfg.max_points)
        except DataError as e:
            log.error("predict %d/%d skipped: %s", i + 1, len(urls), e)
            failed.append({"input": url, "error": str(e)})
            continue
        log.info(
            "predict %d/%d %s: %d points, %d instances -> %s",
            i + 1,
            len(urls),
            url,
            summary["num_points"],
            summary["num_instances"],
            summary["outputs"]["json"],
        )
    failed_url = storage.join(cfg.out, "failed.json")
    if failed:
        storage.write_text(failed_url, json.dumps(failed, indent=2))
    elif storage.exists(failed_url):
        storage.remove(failed_url)  # an earlier run's failures are not this run's
    if not failed:
        return 0
    return 1 if len(failed) == len(urls) else EXIT_PARTIAL


def _cmd_query(cfg: QueryConfig) -> int:
    from tracklift.openvocab import ClipEncoder, fill_missing_features, query_predictions

    if not cfg.pred or not cfg.text:
        raise TrackliftError("tracklift query needs --pred and --text")
    if not cfg.clip.checkpoint:
        raise TrackliftError("tracklift query needs --clip.checkpoint (CLIP weights are user-supplied)")
    encoder = ClipEncoder.from_config(cfg.clip)
    if cfg.scenes:
        for scene_id in fill_missing_features(cfg.pred, cfg.scenes, encoder, cfg.clip):
            log.info("query: computed CLIP features of %s", scene_id)
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


# Flags of configs typed plain ``str`` whose values form a fixed set: argparse lists and checks them.
# (Fields typed ``Literal[...]`` get their choices from config.add_arguments; these rows can go once the
# owning dataclasses are typed that way.) Sets that a table in the code defines are read from it.
def _choices() -> dict[tuple[str, str], list[str]]:
    from tracklift.datasets.formats import FORMATS
    from tracklift.evaluation.presets import PRESETS
    from tracklift.models.backends.registry import BACKENDS

    backends = sorted(BACKENDS)
    # tracklift.models.config.PRESETS (not imported: the models package imports torch, which a plain
    # `pip install .` lacks; tests/test_cli.py checks the two lists agree)
    models = ["default", "tiny", "small", "base"]
    return {
        ("predict", "backend"): backends,
        ("serve", "backend"): backends,
        ("train", "train.backend"): backends,
        ("train", "train.model"): models,
        ("run", "model"): models,
        ("run", "preset"): sorted(PRESETS),
        ("synth", "format"): list(FORMATS),
        ("synth", "mesh"): ["fused", "parts"],
        ("synth", "capture"): ["room", "walk"],
        ("label", "format"): ["auto", *FORMATS],
        ("label", "generator"): ["weightless", "sam2"],
        ("label", "tracker"): ["geometric", "sam2"],
        ("label", "method"): ["tracked", "independent"],
    }


def _plain(text: str) -> str:
    """One line, without reST markup (``x`` and :class:`~a.b` become x and a.b)."""
    return re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), " ".join(text.split()))


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring on one line, without reST markup (``--help`` descriptions)."""
    return _plain(inspect.cleandoc(doc or "").split("\n\n", 1)[0])


def docstring_notes(doc: str | None) -> list[str]:
    """The paragraphs after the first, up to an ``Args:`` / ``Attributes:`` section (whose entries become
    the flags' help instead), each on one line: the ``--help`` epilog."""
    notes = []
    for para in inspect.cleandoc(doc or "").split("\n\n")[1:]:
        if re.match(r"(Args|Attributes|Returns|Raises|Example)s?:", para.strip()):
            break
        notes.append(_plain(para))
    return [n for n in notes if n]


def _wrap(paragraphs: list[str]) -> str | None:
    width = min(shutil.get_terminal_size().columns, 100) - 2
    return "\n\n".join(textwrap.fill(p, width) for p in paragraphs) or None


def docstring_args(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Args:`` (or ``Attributes:``) section of a dataclass docstring."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    m = re.search(r"^(?:Args|Attributes):\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
    out: dict[str, str] = {}
    if not m:
        return out
    for name, text in re.findall(r"^ {4}(\w+)(?: \([^)]*\))?: (.*(?:\n {8}.*)*)", m.group(1), re.M):
        out[name] = first_paragraph(text)
    return out


def _field_docs(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted leaf field name → its ``Args:`` text, through nested config sections."""
    docs = {prefix + k: v for k, v in docstring_args(cls).items()}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        section = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or [tp]
        if f.init and dataclasses.is_dataclass(section[0]):
            docs.update(_field_docs(section[0], prefix + f.name + "."))
    return docs


def _polish_flags(p: argparse.ArgumentParser, command: str, cls: type) -> None:
    """Help text from the docstring for flags without one; choices from :func:`_choices`."""
    docs = _field_docs(cls)
    choices = _choices()
    for action in p._actions:
        if not action.dest.startswith("cfg:"):
            continue
        name = action.dest[4:]
        if action.help and action.help.startswith(" (default") or not action.help:
            action.help = docs.get(name, "") + (action.help or "")
        values = choices.get((command, name))
        if values and action.choices is None:
            action.choices = values
            action.metavar = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracklift",
        description="Class-agnostic 3D instance segmentation from RGB-D scans via granularity-consistent "
        "2D mask tracking. Each command takes --config FILE.yaml and per-field flags.",
    )
    parser.add_argument("--version", action="version", version=f"tracklift {__version__}")
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default=logs.DEFAULT_LEVEL,
        help="progress and diagnostics on stderr (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (help_text, cls, _) in _commands().items():
        # short: the docstring's first paragraph on top, its other notes (exit status...) below the flags
        p = sub.add_parser(
            name,
            help=help_text,
            description=_wrap([first_paragraph(cls.__doc__) or help_text]),
            epilog=_wrap(docstring_notes(cls.__doc__)),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        config_lib.add_arguments(p, cls)
        _polish_flags(p, name, cls)
        if name == "predict":
            p.add_argument("--output", dest="output_alias", metavar="OUT", help="same as --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup_logging(args.log_level)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "output_alias", None):
        setattr(args, "cfg:out", args.output_alias)
    _, cls, fn = _commands()[args.command]
    try:
        cfg = config_lib.from_args(cls, args)
        return fn(cfg)
    except (TrackliftError, ValueError) as e:
        print(f"tracklift {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
