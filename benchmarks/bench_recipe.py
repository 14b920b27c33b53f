"""What each training-recipe choice buys: baseline → +augment → +cosine schedule → +self-training, etc.

Tuning benchmark: everything here is scored on TRAINING-SIDE seeds (a validation corpus, layout seeds
500+, disjoint from the training scenes 100+ and from the held-out 6000+ of bench_curriculum.py), so the
choices it informs never looked at held-out numbers. Each variant trains the full curriculum (stage 1 → 2
→ 3) once per training seed; the table gives the stage-3 network's AP / AP50 / AP25 over the vertices seen
at least twice, mean ± std over seeds, beside the pseudo-labels of the same validation scenes.

    .venv/bin/python benchmarks/bench_recipe.py [--variants baseline,augment,...] [--seeds 0,1,2]
        [--train-scenes 6] [--val-scenes 4] [--frames 20] [--work /tmp/tracklift_bench_recipe]

The stage-3 augmentation measurement of docs/recipe.md (controlled-low labels of 40 fused whole-room
scans; stage 3 alone; fit on the training scenes beside validation):

    .venv/bin/python benchmarks/bench_recipe.py --stage3-only --scans fused --frames 40 \
        --prior controlled-low --vote-unit auto --model default --voxel-size 0.08 --max-points 20000 \
        --train-scenes 40 --val-scenes 8 --score-train 8 --epochs3 20 \
        --stage1-frame-step 10 --stage2-stride 10 \
        --seeds 0,1 --variants cosine,augment+cosine --threads 1 --out benchmarks/results/recipe_stage3.json

Writes benchmarks/results/recipe.json. ALL NUMBERS ARE SYNTHETIC, small, and measured on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_curriculum as bc  # noqa: E402
import torch  # noqa: E402

from tracklift import storage  # noqa: E402
from tracklift.evaluation import read_predictions  # noqa: E402
from tracklift.lifting import SampleConfig  # noqa: E402
from tracklift.training import StageConfig, TrainConfig, evaluate_checkpoint, load_stage_samples  # noqa: E402
from tracklift.training.augment import AugmentConfig  # noqa: E402
from tracklift.training.config import span_curriculum  # noqa: E402
from tracklift.training.trainer import train_curriculum, train_stage  # noqa: E402

VAL_SEED = 500

# Each variant adds to the one before it (the order of the table), except where it says otherwise.
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "augment": {"augment": True},
    "augment+cosine": {"augment": True, "lr_schedule": "cosine", "warmup": 0.1},
    "augment+cosine+self_train_fill": {
        "augment": True,
        "lr_schedule": "cosine",
        "warmup": 0.1,
        "self_train": "fill",
    },
    "augment+cosine+self_train_replace": {
        "augment": True,
        "lr_schedule": "cosine",
        "warmup": 0.1,
        "self_train": "replace",
    },
    "augment+cosine+backbone_handoff": {
        "augment": True,
        "lr_schedule": "cosine",
        "warmup": 0.1,
        "handoff": "backbone",
    },
    "cosine": {"lr_schedule": "cosine", "warmup": 0.1},
    "cosine+self_train_fill": {"lr_schedule": "cosine", "warmup": 0.1, "self_train": "fill"},
    "cosine+self_train_replace": {"lr_schedule": "cosine", "warmup": 0.1, "self_train": "replace"},
    # the curriculum's hand-off: stage 3 keeps the backbone of stage 2 and starts a fresh query decoder
    "cosine+backbone_handoff": {"lr_schedule": "cosine", "warmup": 0.1, "handoff": "backbone"},
    # each superpoint's input colour / xyz mean and std beside its pooled backbone features
    "cosine+superpoint_stats": {"lr_schedule": "cosine", "warmup": 0.1, "model": {"superpoint_stats": True}},
    # one warm-up / hold / decay schedule across the curriculum instead of a warm-up and decay per stage
    "cosine+lr_span_curriculum": {"lr_schedule": "cosine", "warmup": 0.1, "lr_span": "curriculum"},
    # rotation about gravity, flips and scaling only: no elastic distortion, colour jitter or auto-contrast
    "rigid_augment+cosine": {"augment": "rigid", "lr_schedule": "cosine", "warmup": 0.1},
}


def augment_config(v: dict) -> AugmentConfig:
    """The variant's augmentations: off, all (the AugmentConfig defaults), or ``rigid`` (geometric only)."""
    mode = v.get("augment", False)
    if mode == "rigid":
        return AugmentConfig(enabled=True, elastic=False, color_jitter=False, auto_contrast=False)
    return AugmentConfig(enabled=bool(mode))


def _configs(labels: str, out: str, args, seed: int, v: dict, stage: int, epochs: int, self_train: str):
    cfg = TrainConfig(
        labels=labels,
        out=out,
        model=args.model,
        model_overrides={"voxel_size": args.voxel_size, **v.get("model", {})},
        log_every=0,
        self_train=self_train != "off",
        self_train_mode="fill" if self_train == "off" else self_train,
        self_train_threshold=args.self_train_threshold,
    )
    st = StageConfig(
        stage=stage,
        epochs=epochs,
        lr=args.lr,
        batch_size=args.batch,
        max_points=args.max_points,
        seed=seed,
        lr_schedule=v.get("lr_schedule", "constant"),
        warmup=v.get("warmup", 0.0),
        augment=augment_config(v),
        handoff=v.get("handoff", "all"),
    )
    return cfg, st


def train_variant(labels: str, out: str, args, seed: int, v: dict) -> dict[str, str]:
    """Variant ``v`` trained; returns ``{stage name: checkpoint URL}``.

    ``--stage3-only``: stage 3 (full scenes) alone for ``epochs3`` epochs; with self-training, the first
    half trains on the lifted labels and the second half starts from it with its confident predictions
    as labels (Segment3D's second phase; equal epoch budget). Otherwise the curriculum 1 → 2 → 3, where
    self-training uses the stage-2 model as teacher."""
    self_train = v.get("self_train", "off")
    if args.stage3_only:
        if self_train == "off":
            cfg, st = _configs(labels, out, args, seed, v, 3, args.epochs3, "off")
            return {"stage3": train_stage(cfg, st, None)}
        half = args.epochs3 // 2
        cfg, st = _configs(labels, os.path.join(out, "a"), args, seed, v, 3, half, "off")
        first = train_stage(cfg, st, None)
        cfg, st = _configs(labels, os.path.join(out, "b"), args, seed, v, 3, args.epochs3 - half, self_train)
        return {"stage3": train_stage(cfg, st, first)}
    epochs = bc.stage_epochs(args)
    configs = [_configs(labels, out, args, seed, v, s, epochs[s], self_train) for s in (1, 2, 3)]
    stages = [st for _, st in configs]
    if v.get("lr_span", "stage") == "curriculum":
        stages = span_curriculum(stages)
    # the trainer's own curriculum: each stage from the previous one, stages of 0 epochs skipped
    urls = train_curriculum(configs[0][0], stages)
    return {f"stage{s}": url for s, url in urls.items()}


def _split(work: str, corpus: str, labels: str, n: int | None = None):
    """The first ``n`` (all if None) stage-3 samples of a labelled split, their truth and pseudo-labels."""
    samples = load_stage_samples(labels, 3)[:n]
    truth = bc.held_out_truth(os.path.join(work, corpus), labels, samples)
    pseudo = {
        sid: read_predictions(storage.join(labels, "pred"), sid, len(gt)) for sid, (gt, _) in truth.items()
    }
    return samples, truth, pseudo


def run(args) -> dict:
    """Every variant for every seed, scored on the validation scenes (and, with ``--score-train N``, on
    the first N training scenes: how well the network fits the labels it trained on)."""
    work = args.work
    os.makedirs(work, exist_ok=True)
    t0 = time.perf_counter()
    train_labels = bc.prepare(work, "train", bc.TRAIN_SEED, args.train_scenes, args, args.prior)
    val_labels = bc.prepare(work, "val", VAL_SEED, args.val_scenes, args, args.prior)
    prep_s = time.perf_counter() - t0
    splits = {"val": _split(work, "val_corpus", val_labels)}
    if args.score_train:
        splits["train"] = _split(work, "train_corpus", train_labels, args.score_train)
    results: dict = {}
    for split, (_, truth, pseudo) in splits.items():
        key = "pseudo_labels" if split == "val" else "train_pseudo_labels"
        results[key] = bc.mean_std([{**bc.score(pseudo, truth), "seed": s} for s in args.seeds])
    seconds: dict = {}
    for name in args.variants:
        per_stage: dict[str, list[dict]] = {}
        t = time.perf_counter()
        for seed in args.seeds:
            out = os.path.join(work, f"ckpt_{name}_seed{seed}")
            shutil.rmtree(out, ignore_errors=True)
            urls = train_variant(train_labels, out, args, seed, VARIANTS[name])
            for stage, url in urls.items():
                for split, (samples, truth, _) in splits.items():
                    ev = evaluate_checkpoint(url, samples)
                    key = stage if split == "val" else f"train_{stage}"
                    per_stage.setdefault(key, []).append({**bc.score(ev.predictions, truth), "seed": seed})
            print(f"[{name}] seed {seed}: stage3 AP50 {per_stage['stage3'][-1]['AP50']:.3f}", flush=True)
        seconds[name] = round(time.perf_counter() - t, 1)
        results[name] = {stage: bc.mean_std(rows) for stage, rows in per_stage.items()}
    results["meta"] = {
        "synthetic": True,
        "tuning_set": f"validation layout seeds {VAL_SEED}..{VAL_SEED + args.val_scenes - 1} "
        "(training side; never the held-out 6000+)",
        "train_rows": "train_* rows: the same checkpoints on the first score_train training scenes "
        "(layout seeds from 100), against their GT; train_pseudo_labels: the labels they trained on",
        "command": "python " + " ".join(sys.argv),
        "nproc": os.cpu_count(),
        "note": "shared 2-core machine (other jobs running): seconds are upper bounds; tiny scale",
        "seconds_per_variant_all_seeds": seconds,
        "prepare_seconds": round(prep_s, 1),
        "train_samples_per_stage": {s: len(load_stage_samples(train_labels, s)) for s in (1, 2, 3)},
        "variants": {k: VARIANTS[k] for k in args.variants},
        "config": {
            k: getattr(args, k)
            for k in (
                "prior",
                "vote_unit",
                "scans",
                "seeds",
                "train_scenes",
                "val_scenes",
                "frames",
                "width",
                "height",
                "model",
                "voxel_size",
                "epochs1",
                "epochs2",
                "epochs3",
                "lr",
                "batch",
                "max_points",
                "self_train_threshold",
                "stage3_only",
                "score_train",
                "frames_span",
                "stage1_frame_step",
                "stage2_stride",
            )
        },
    }
    return results


def print_table(results: dict) -> None:
    print(f"\n{'variant':36s} {'stage':13s} {'AP':>12s} {'AP50':>12s} {'AP25':>12s}")
    for name, by_stage in results.items():
        if name == "meta":
            continue
        rows = {"-": by_stage} if name.endswith("pseudo_labels") else by_stage
        for stage, r in rows.items():
            cells = [f"{100 * r[k]:5.1f} ± {100 * r[k + '_std']:4.1f}" for k in bc.KEYS]
            print(f"{name:36s} {stage:13s} " + " ".join(f"{c:>12s}" for c in cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/tracklift_bench_recipe")
    ap.add_argument("--variants", default="baseline,augment,augment+cosine,augment+cosine+self_train_fill")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--scans", choices=("classic", "fused"), default="classic")
    ap.add_argument("--train-scenes", type=int, default=6)
    ap.add_argument("--val-scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=20)
    # the labeler's defaults (the recipe.json runs predate bench_curriculum's 10 / 10)
    samples = SampleConfig()
    ap.add_argument(
        "--stage1-frame-step",
        type=int,
        default=samples.frame_step,
        help="stage-1 samples from every N-th frame",
    )
    ap.add_argument(
        "--stage2-stride", type=int, default=samples.stride, help="stage-2 windows start every N frames"
    )
    ap.add_argument("--frames-span", choices=("route", "start"), default="route", help="fused scans only")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--depth-abs-tol", type=float, default=0.02)
    ap.add_argument("--depth-rel-tol", type=float, default=0.01)
    ap.add_argument("--prior", choices=bc.PRIORS, default="weightless", help="2D mask prior of the labels")
    ap.add_argument(
        "--vote-unit",
        choices=("vertex", "superpoint", "auto"),
        default="vertex",
        help="lifting vote unit; auto: superpoint for weightless, vertex for the controlled priors",
    )
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--voxel-size", type=float, default=0.05)
    ap.add_argument("--epochs1", type=int, default=2)
    ap.add_argument("--epochs2", type=int, default=3)
    ap.add_argument("--epochs3", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (1e-3 before session 17)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--max-points", type=int, default=12_000)
    ap.add_argument("--self-train-threshold", type=float, default=0.6)
    ap.add_argument("--stage3-only", action="store_true", help="train stage 3 alone (see train_variant)")
    ap.add_argument(
        "--score-train", type=int, default=0, help="also score on the first N training scenes (fit)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "recipe.json"))
    args = ap.parse_args()
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    print_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
