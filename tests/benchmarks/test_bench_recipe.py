"""benchmarks/bench_recipe.py: variants' augmentations, and a tiny stage-3 run scored on validation and on
the training scenes it fitted."""

import json
import subprocess
import sys

import pytest

from . import BENCHMARKS, load_benchmark


def test_augmentation_variants():
    bench = load_benchmark("bench_recipe")
    assert not bench.augment_config(bench.VARIANTS["cosine"]).enabled
    full = bench.augment_config(bench.VARIANTS["augment+cosine"])
    assert full.enabled and full.elastic and full.color_jitter
    rigid = bench.augment_config(bench.VARIANTS["rigid_augment+cosine"])
    assert rigid.enabled and rigid.rotate_z and rigid.flip and rigid.scale
    assert not (rigid.elastic or rigid.color_jitter or rigid.auto_contrast)


@pytest.mark.slow
def test_stage3_and_curriculum_runs_score_validation_and_training_fit(tmp_path):
    out = tmp_path / "recipe.json"
    recipe_args = [
        *("--scans", "classic", "--frames", "6", "--width", "96", "--height", "72"),
        *("--prior", "controlled-low", "--model", "tiny", "--voxel-size", "0.1", "--max-points", "3000"),
        *("--train-scenes", "2", "--val-scenes", "1", "--score-train", "1", "--epochs3", "1"),
        *("--seeds", "0", "--threads", "1", "--work", str(tmp_path / "work")),
    ]
    cmd = [sys.executable, str(BENCHMARKS / "bench_recipe.py"), "--stage3-only", *recipe_args]
    cmd += ["--variants", "cosine,rigid_augment+cosine", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["meta"]["config"]["prior"] == "controlled-low" and r["meta"]["config"]["score_train"] == 1
    for variant in ("cosine", "rigid_augment+cosine"):
        assert set(r[variant]) == {"stage3", "train_stage3"}
        assert [row["seed"] for row in r[variant]["train_stage3"]["per_seed"]] == [0]
    for row in (r["pseudo_labels"], r["train_pseudo_labels"], r["cosine"]["train_stage3"]):
        assert 0.0 <= row["AP"] <= row["AP50"] <= row["AP25"] <= 1.0
    # the controlled prior's labels of a training scene are close to its GT
    assert r["train_pseudo_labels"]["AP50"] > 0.3
    assert "train_stage3" in done.stdout
    # the README's network pictures from the same work folder: GT | labels | one panel per checkpoint
    pic = tmp_path / "pic.png"
    ckpt = tmp_path / "work" / "ckpt_cosine_seed0" / "stage3" / "last.pt"
    cmd = [sys.executable, str(BENCHMARKS / "network_pictures.py"), "--work", str(tmp_path / "work")]
    cmd += ["--split", "val", "--prior", "controlled-low", "--width", "120", "--out", str(pic)]
    done = subprocess.run([*cmd, "--checkpoint", f"net={ckpt}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from PIL import Image

    with Image.open(pic) as im:
        assert im.size == (3 * 120 + 2 * 6, 90)  # three panels, 6-pixel gaps
    bad = subprocess.run([*cmd, "--scene", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "nope: not a scene of" in bad.stderr
    # the curriculum path on the same work folder (the trainer's own curriculum: a 0-epoch stage is skipped)
    cmd = [
        sys.executable,
        str(BENCHMARKS / "bench_recipe.py"),
        *recipe_args,
        "--epochs1",
        "1",
        "--epochs2",
        "0",
        "--variants",
        "cosine+backbone_handoff",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["cosine+backbone_handoff"]
    assert set(rows) == {"stage1", "stage3", "train_stage1", "train_stage3"}
