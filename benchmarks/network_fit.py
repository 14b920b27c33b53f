"""Does the network fit its own pseudo-labels? Recall against GT of labels, network and two oracles.

The curriculum benchmark says the network scores below its pseudo-labels; this says where the gap comes
from. For the stage-3 scenes of each split (``--splits``) of a ``bench_curriculum.py`` work folder (``train``: scenes the
network trained on; ``heldout``; or a ``val`` split of unseen training-style scenes this script
synthesizes and labels, layout seeds 300+) it reports, over the vertices seen at least twice:

  - AP / AP50 / AP25 of the pseudo-labels and of each checkpoint (ScanNet protocol, class-agnostic);
  - recall: the share of GT objects (>= 100 seen vertices) that some predicted mask covers at IoU > 0.5
    (and > 0.25), whatever its score. A network far below its labels in recall on the very scenes it
    trained on under-fits them; one that fits them but not held-out scenes over-fits;
  - for each checkpoint, the GT objects its labels find (IoU > 0.5) and it does not, sorted by what its
    best mask for them does: ``merged`` (the mask covers at least half of the object, so at IoU <= 0.5 it
    spills beyond it: the object was joined to a neighbour), ``split`` (it covers less than half of the
    object and lies at least half inside it: the object was cut into parts), ``other``; with the median size
    (seen vertices) of the objects found by both and of those missed;
  - two oracles, the best any mask built from a unit could do: each GT object as the union of the
    superpoints (the point-cloud segmentator's, as training and inference use) or of the voxels of the
    model's size that it holds the majority of. A low oracle means the representation, not the training,
    caps recall.

    .venv/bin/python benchmarks/network_fit.py --work /tmp/tracklift_bench_curriculum --prior controlled-low \\
        --splits train,heldout --scenes 8 --checkpoint stage3=/path/last.pt [--checkpoint name=url ...] \\
        [--out benchmarks/results/network_fit.json]

Writes ``{"splits": {split: {"rows": {row: {AP, AP50, AP25, recall50, recall25, gt_objects,
instances_per_scene}}, "scenes": [...]}}, "meta": {...}}`` (fractions; oracle rows have recall only).

Tune on ``train`` and ``val`` only; ``heldout`` is for reporting. Synthetic scans, CPU-sized training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_curriculum as bc  # noqa: E402

from tracklift import storage  # noqa: E402
from tracklift.geometry.voxels import voxel_index  # noqa: E402
from tracklift.lifting import read_pseudo_labels  # noqa: E402
from tracklift.models.segmenter import Segmenter  # noqa: E402
from tracklift.structures import Instances  # noqa: E402
from tracklift.training import load_stage_samples  # noqa: E402
from tracklift.training.data import with_superpoints  # noqa: E402
from tracklift.training.evaluate import predict_sample  # noqa: E402

VAL_SEED = 300
MIN_GT_VERTICES = 100
SPLITS = ("train", "val", "heldout")


def recall(masks_of: dict[str, np.ndarray], truth: dict) -> dict:
    """Share of GT objects (>= 100 seen vertices) some mask covers at IoU > 0.5 / > 0.25.

    Args:
        masks_of: scene id → (K, N) bool masks over the scene's vertices.
        truth: scene id → (GT ids, seen counts) per vertex.
    """
    hits50 = hits25 = total = 0
    for sid, ok, objects in _seen_objects(truth):
        masks = np.asarray(masks_of[sid], bool)[:, ok]
        for obj in objects:
            best = _best_overlap(masks, obj)[0]
            total += 1
            hits50 += best > 0.5
            hits25 += best > 0.25
    return {"recall50": hits50 / max(total, 1), "recall25": hits25 / max(total, 1), "gt_objects": total}


def _seen_objects(truth: dict):
    """Yield ``(scene id, seen, objects)`` per scene: ``seen`` (N,) bool marks the vertices seen at least
    ``MIN_SEEN`` times, ``objects`` the masks over those seen vertices of the GT objects that have at least
    ``MIN_GT_VERTICES`` of them."""
    for sid, (gt, seen_count) in truth.items():
        seen = seen_count >= bc.MIN_SEEN
        g = gt[seen]
        objects = [g == gi for gi in np.unique(g[g != 0])]
        yield sid, seen, [obj for obj in objects if int(obj.sum()) >= MIN_GT_VERTICES]


def _best_overlap(masks: np.ndarray, obj: np.ndarray) -> tuple[float, float, float]:
    """(IoU, share of the object covered, share of the mask inside the object) of the mask of ``masks``
    ((K, N) bool) with the highest IoU with ``obj`` ((N,) bool); zeros without masks."""
    if len(masks) == 0:
        return 0.0, 0.0, 0.0
    inter = (masks & obj).sum(1)
    size = masks.sum(1)
    iou = inter / np.maximum(size + int(obj.sum()) - inter, 1)
    i = int(iou.argmax())
    return float(iou[i]), float(inter[i] / max(int(obj.sum()), 1)), float(inter[i] / max(int(size[i]), 1))


def misses(net_of: dict[str, np.ndarray], labels_of: dict[str, np.ndarray], truth: dict) -> dict:
    """What a network does with the GT objects (>= 100 seen vertices) its labels find at IoU > 0.5.

    Args:
        net_of, labels_of: scene id → (K, N) bool masks over the scene's vertices.
        truth: scene id → (GT ids, seen counts) per vertex.

    Returns:
        counts ``both``, ``labels_only``, ``network_only``, ``neither``; the ``labels_only`` objects by
        the network's best mask (``merged``, ``split``, ``other``, see the module docstring); and the
        median seen-vertex count of the ``both`` and ``labels_only`` objects.
    """
    counts = dict.fromkeys(("both", "labels_only", "network_only", "neither"), 0)
    kinds = dict.fromkeys(("merged", "split", "other"), 0)
    sizes: dict[str, list[int]] = {"both": [], "labels_only": []}
    for sid, ok, objects in _seen_objects(truth):
        net = np.asarray(net_of[sid], bool)[:, ok]
        lab = np.asarray(labels_of[sid], bool)[:, ok]
        for obj in objects:
            n_iou, covered, inside = _best_overlap(net, obj)
            found = (n_iou > 0.5, _best_overlap(lab, obj)[0] > 0.5)
            key = {(True, True): "both", (False, True): "labels_only", (True, False): "network_only"}.get(
                found, "neither"
            )
            counts[key] += 1
            if key in sizes:
                sizes[key].append(int(obj.sum()))
            if key == "labels_only":
                kinds["merged" if covered >= 0.5 else "split" if inside >= 0.5 else "other"] += 1
    median = {f"median_vertices_{k}": float(np.median(v)) if v else None for k, v in sizes.items()}
    return {**counts, "labels_only_by_network_mask": kinds, **median}


def oracle_masks(groups: np.ndarray, gt: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per GT object, the union of the groups (superpoints, voxels) whose seen vertices it holds the
    majority of: the best mask made of those units. (K, N) bool."""
    ok = seen >= bc.MIN_SEEN
    groups = np.asarray(groups, np.int64)
    n_groups = int(groups.max(initial=-1)) + 1
    all_count = np.bincount(groups[ok], minlength=n_groups)
    out = []
    for gi in np.unique(gt[ok & (gt != 0)]):
        inside = np.bincount(groups[ok & (gt == gi)], minlength=n_groups)
        out.append((2 * inside > all_count)[groups])
    return np.array(out, bool).reshape(-1, len(gt))


def run_split(args, split: str) -> dict:
    """Rows of one split (module docstring)."""
    scan_args = bc.parse_args(["--scans", "fused", "--frames", str(args.frames), "--vote-unit", "auto"])
    if split == "val":
        labels = bc.prepare(args.work, "val", VAL_SEED, args.scenes, scan_args, args.prior)
    else:
        labels = os.path.join(args.work, f"{split}_labels_{args.prior}")
        if not storage.exists(labels):
            raise SystemExit(
                f"{labels}: no labels there (run bench_curriculum.py with --work {args.work} first)"
            )
    samples = load_stage_samples(labels, 3)[: args.scenes]
    truth = bc.held_out_truth(os.path.join(args.work, f"{split}_corpus"), labels, samples)
    rows: dict = {}

    def add(name: str, preds: dict[str, Instances] | None, masks: dict[str, np.ndarray] | None = None):
        row = dict(bc.score(preds, truth)) if preds is not None else {}
        row.pop("all_vertices", None)
        row.update(recall(masks or {k: p.masks for k, p in preds.items()}, truth))
        if preds is not None:
            row["instances_per_scene"] = float(np.mean([len(p.scores) for p in preds.values()]))
        rows[name] = row
        print(
            f"{split:8s} {name:28s} " + " ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "gt_objects"),
            flush=True,
        )

    pseudo = {
        s.scene_id: read_pseudo_labels(storage.join(labels, "scenes", s.scene_id, "pseudo_labels.npz"))[
            0
        ].to_instances(MIN_GT_VERTICES)
        for s in samples
    }
    add("pseudo_labels", pseudo)
    label_masks = {k: p.masks for k, p in pseudo.items()}
    add(
        "oracle_superpoints",
        None,
        {s.scene_id: oracle_masks(with_superpoints(s).superpoints, *truth[s.scene_id]) for s in samples},
    )
    add(
        f"oracle_voxels_{args.voxel_size:g}m",
        None,
        {
            s.scene_id: oracle_masks(voxel_index(s.points, args.voxel_size)[0], *truth[s.scene_id])
            for s in samples
        },
    )
    for spec in args.checkpoint:
        name, url = spec.split("=", 1)
        model = Segmenter.from_checkpoint(url)
        preds = {s.scene_id: predict_sample(model, s) for s in samples}
        add(name, preds)
        rows[name]["versus_labels"] = misses({k: p.masks for k, p in preds.items()}, label_masks, truth)
        print(f"{split:8s} {name:28s} versus labels: {rows[name]['versus_labels']}", flush=True)
    return {"rows": rows, "scenes": sorted(truth)}


def run(args) -> dict:
    t0 = time.perf_counter()
    splits = {split: run_split(args, split) for split in args.splits}
    meta = {
        "work": args.work,
        "prior": args.prior,
        "scenes_per_split": args.scenes,
        "checkpoints": dict(spec.split("=", 1) for spec in args.checkpoint),
        "protocol": "ScanNet class-agnostic AP (all_annotated) and recall over vertices seen >= 2 times; "
        f"GT objects of >= {MIN_GT_VERTICES} seen vertices; synthetic scans",
        "command": "python " + " ".join(sys.argv),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return {"splits": splits, "meta": meta}


def _splits(text: str) -> list[str]:
    splits = text.split(",")
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown split(s) {', '.join(unknown)} ({', '.join(SPLITS)})")
    return splits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="a bench_curriculum.py --work folder")
    ap.add_argument("--prior", choices=bc.PRIORS, default="controlled-low")
    ap.add_argument("--splits", type=_splits, default=["train"], help="comma-separated: train, val, heldout")
    ap.add_argument("--scenes", type=int, default=8, help="first N stage-3 scenes of the split")
    ap.add_argument("--frames", type=int, default=40, help="kept frames of val scans (as the curriculum's)")
    ap.add_argument("--voxel-size", type=float, default=0.08, help="voxel oracle's voxel (the model's)")
    ap.add_argument("--checkpoint", action="append", default=[], help="name=checkpoint URL (repeatable)")
    ap.add_argument("--out", default=None, help="JSON path (printed only when omitted)")
    args = ap.parse_args(argv)
    result = run(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
