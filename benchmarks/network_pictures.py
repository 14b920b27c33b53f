"""The README's network pictures: one held-out room of a ``bench_curriculum.py`` work folder coloured by
ground truth, by its tracked pseudo-labels and by the predictions of trained checkpoints, side by side.

    .venv/bin/python benchmarks/network_pictures.py --work W --prior controlled-low \
        --checkpoint "stage 3 (curriculum)=W/ckpt_controlled-low_seed0/curriculum/stage3/last.pt" \
        [--scene synth6000_00] [--out docs/network_controlled-low.png]

``W`` is the ``--work`` folder of a finished ``bench_curriculum.py`` run (its held-out corpus, labels
and checkpoints). Walls and ceiling are hidden (GT label 1) so the room is seen from above; grey
vertices belong to no instance. The labels and the network cover only what the scan saw (vertices
seen by at least two frames are what the benchmark scores); the ground truth covers the whole mesh.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from tracklift import storage
from tracklift.datasets.formats import open_scene
from tracklift.evaluation.pictures import hstack_images, id_colors, png_bytes, render_overview
from tracklift.evaluation.render import NO_INSTANCE_COLOR, per_vertex_ids, wall_vertices
from tracklift.training import load_stage_samples
from tracklift.training.evaluate import evaluate_checkpoint


def picture(
    work: str,
    prior: str,
    scene_id: str | None,
    checkpoints: dict[str, str],
    width: int,
    split: str = "heldout",
) -> np.ndarray:
    """GT | pseudo-labels | one panel per checkpoint, for one scene of ``work``'s ``split``."""
    labels = os.path.join(work, f"{split}_labels_{prior}")
    samples = load_stage_samples(labels, 3)
    if not samples:
        raise SystemExit(
            f"{labels}: no stage-3 samples (is {work} a finished bench_curriculum.py work folder?)"
        )
    by_id = {s.scene_id: s for s in samples}
    scene_id = scene_id or samples[0].scene_id
    if scene_id not in by_id:
        raise SystemExit(f"{scene_id}: not a scene of {labels} (known: {', '.join(sorted(by_id))})")
    scene = open_scene(os.path.join(work, f"{split}_corpus", scene_id))
    panels = [
        ("ground truth", per_vertex_ids(scene, "gt")),
        (f"pseudo-labels ({prior}, tracked)", per_vertex_ids(scene, "pred:" + storage.join(labels, "pred"))),
    ]
    for name, url in checkpoints.items():
        pred = evaluate_checkpoint(url, [by_id[scene_id]]).predictions[scene_id]
        panels.append((f"network: {name}", pred.to_ids()))
    hide, height = wall_vertices(scene), round(width * 3 / 4)
    return hstack_images(
        [
            render_overview(
                scene.mesh,
                id_colors(ids, none_color=NO_INSTANCE_COLOR),
                width,
                height,
                hide=hide,
                title=f"{scene_id}: {t}",
            )
            for t, ids in panels
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="a finished bench_curriculum.py --work folder")
    ap.add_argument("--prior", required=True, help="the prior whose labels and checkpoints to show")
    ap.add_argument("--scene", default=None, help="scene id (default: the split's first)")
    ap.add_argument(
        "--split", default="heldout", help="corpus of the work folder (bench_recipe.py's: val, train)"
    )
    ap.add_argument(
        "--checkpoint", action="append", default=[], metavar="NAME=URL", help="a panel per checkpoint"
    )
    ap.add_argument("--width", type=int, default=480, help="width of each panel")
    ap.add_argument("--out", default=None, help="PNG path (default: docs/network_<prior>.png)")
    args = ap.parse_args()
    checkpoints = {}
    for item in args.checkpoint:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            ap.error(f"--checkpoint takes NAME=URL, got {item!r}")
        checkpoints[name] = url
    out = args.out or os.path.join(os.path.dirname(__file__), "..", "docs", f"network_{args.prior}.png")
    img = picture(args.work, args.prior, args.scene, checkpoints, args.width, args.split)
    storage.write_bytes(out, png_bytes(img))
    print("wrote", out)


if __name__ == "__main__":
    main()
