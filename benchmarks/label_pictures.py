"""The README's labeling pictures: one held-out fused whole-room scan (layout seed 5000, style 90000),
weightless generator + geometric tracker, written as docs/label_tracks.png (frames and their tracked ids)
and docs/label_pseudo_labels.png (the lifted 3D pseudo-labels).

    .venv/bin/python benchmarks/label_pictures.py [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.labeling import LabelConfig, label_scene, write_pictures
from tracklift.tracking.geometric import GeometricTracker
from tracklift.tracking.weightless import WeightlessMaskGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--style-seed", type=int, default=90000)
    args = ap.parse_args()
    data = generate_scene(args.seed, replace(SynthConfig(), style_seed=args.style_seed))
    scene = data.as_scene()
    result = label_scene(
        scene,
        LabelConfig(pictures=True, write_shards=False),
        WeightlessMaskGenerator(intrinsics=scene.intrinsics),
        GeometricTracker(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for url in write_pictures(tmp, scene, result):
            name = "label_" + Path(url).name
            shutil.copy(url, Path(args.out) / name)
            print("wrote", Path(args.out) / name)


if __name__ == "__main__":
    main()
