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


@dataclass
class EvalConfig:
    """``tracklift eval``: score ScanNet-format predictions against per-vertex GT files."""

    pred: str = field(default="", metadata={"help": "prediction folder URL (<scene>.txt + pred_mask/)"})
    gt: str = field(default="", metadata={"help": "GT folder URL (<scene>.txt, one id per vertex)"})
    preset: str = field(default="all_annotated", metadata={"help": "all_annotated | scannet200_198"})
    json: str | None = field(default=None, metadata={"help": "write the metrics as JSON to this URL"})


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
    from tracklift.render import render_scene

    for url in render_scene(cfg):
        print(url)
    return 0


def _cmd_label(cfg) -> int:
    from tracklift.labeling import label_corpus

    manifest = label_corpus(cfg)
    failed = [k for k, v in manifest["scenes"].items() if v["status"] != "complete"]
    return 1 if failed and len(failed) == len(manifest["scenes"]) else 0


def _cmd_run(cfg) -> int:
    from tracklift.pipeline import run

    run(cfg)
    return 0


def _commands() -> dict[str, tuple[str, type, Callable]]:
    from tracklift.datasets.corpus import SynthCommandConfig
    from tracklift.labeling import LabelConfig
    from tracklift.pipeline import RunConfig
    from tracklift.render import RenderConfig

    return {
        "run": (
            "the main job: synthesise, label, train, evaluate, serve (embedded default)",
            RunConfig,
            _cmd_run,
        ),
        "synth": ("write a synthetic RGB-D scan corpus with ground truth", SynthCommandConfig, _cmd_synth),
        "label": ("2D masks → tracked ids → 3D pseudo-labels + curriculum shards", LabelConfig, _cmd_label),
        "eval": ("ScanNet-protocol class-agnostic AP / AP50 / AP25", EvalConfig, _cmd_eval),
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
