"""The command line end to end: synth → label → train → predict → eval, and errors as messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tracklift import storage
from tracklift.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.slow
def test_synth_label_train_predict_eval(tmp_path, capsys):
    root, labels, ckpt, pred = (str(tmp_path / d) for d in ("corpus", "labels", "train", "pred"))
    assert (
        main(
            [
                "synth",
                "--out",
                root,
                "--scenes",
                "1",
                "--seed",
                "7",
                "--width",
                "160",
                "--height",
                "120",
                "--frames",
                "8",
            ]
        )
        == 0
    )
    assert main(["label", "--scenes", root, "--out", labels, "--lift.visibility.depth-abs-tol", "0.02"]) == 0
    assert (
        main(
            [
                "train",
                "--train.labels",
                labels,
                "--train.out",
                ckpt,
                "--train.model",
                "tiny",
                "--train.epochs",
                "1,1,1",
                "--train.max-points",
                "5000",
            ]
        )
        == 0
    )
    for stage in (1, 2, 3):
        assert storage.exists(storage.join(ckpt, f"stage{stage}", "last.pt"))
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                storage.join(ckpt, "stage3", "last.pt"),
                "--scenes",
                root,
                "--out",
                pred,
            ]
        )
        == 0
    )
    metrics = str(tmp_path / "m.json")
    assert main(["eval", "--pred", pred, "--gt", storage.join(root, "gt"), "--json", metrics]) == 0
    result = json.loads(open(metrics).read())
    assert set(result["per_threshold"]) == {
        f"{t:.2f}" for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.25)
    }
    assert 0.0 <= result["AP"] <= 1.0 and result["num_scenes"] == 1
    assert "synth0007_00" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "s.txt").write_text("1\n" * 10)
    assert main(["eval", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path / "gt")]) == 1
    err = capsys.readouterr().err
    assert "tracklift eval: error:" in err and "nope: prediction folder not found" in err
    assert main(["train", "--train.labels", str(tmp_path / "none"), "--train.epochs", "1,1"]) == 1
    assert "three numbers" in capsys.readouterr().err


# ------------------------------------------------------------------------------- own data: predict --input


def _run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``tracklift <argv>`` as a user runs it (a subprocess with this checkout's sources first)."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tracklift.cli", *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    import torch

    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    torch.manual_seed(0)
    url = str(tmp_path_factory.mktemp("cli") / "tiny.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), url)
    return url


def _user_files(folder: Path) -> dict[str, int]:
    """The files a user has: name → number of points (PLY mesh binary / ASCII, bare PLY with and without
    colours, PCD, NPY, NPZ)."""
    from .datasets.test_pointclouds import room, write_pcd, write_user_ply

    folder.mkdir(parents=True, exist_ok=True)
    pts, rgb, faces = room(1500)
    pts = pts * 2.0
    write_user_ply(folder / "mesh_binary.ply", pts, rgb, faces)
    write_user_ply(folder / "mesh_ascii.ply", pts, rgb, faces, text=True)
    write_user_ply(folder / "points_rgb_be.ply", pts, rgb, byte_order=">")
    write_user_ply(folder / "points_bare.ply", pts, text=True)
    write_pcd(folder / "lidar.pcd", pts, rgb)
    np.save(folder / "array.npy", np.concatenate([pts, rgb / 255.0], axis=1))
    np.savez(folder / "arrays.npz", xyz=pts.astype(np.float32), rgb=rgb)
    return {
        name: 1500
        for name in ("mesh_binary", "mesh_ascii", "points_rgb_be", "points_bare", "lidar", "array", "arrays")
    }


@pytest.mark.slow  # a subprocess that imports torch: ~15 s on a busy 2-core machine
def test_predict_input_segments_a_folder_of_user_files_and_skips_a_bad_one(tiny_checkpoint, tmp_path):
    from tracklift.evaluation.scannet_io import read_predictions

    files = _user_files(tmp_path / "scans")
    # a PLY header declaring a billion vertices over 24 bytes: reported, skipped, the others still run
    (tmp_path / "scans" / "broken.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + b"\0" * 24
    )
    out = tmp_path / "out"
    proc = _run_cli(
        "predict", "--checkpoint", tiny_checkpoint, "--input", str(tmp_path / "scans"), "--output", str(out)
    )
    assert proc.returncode == 3, proc.stderr  # some failed, the others complete (like tracklift label)
    assert "broken.ply: PLY header declares 1000000000 'vertex' rows" in proc.stderr
    assert "Traceback" not in proc.stderr
    failed = json.loads((out / "failed.json").read_text())
    assert [storage.basename(f["input"]) for f in failed] == ["broken.ply"]
    for name, n in files.items():
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary["num_points"] == n and (out / f"{name}_instances.ply").exists()
        inst = read_predictions(str(out), name, n)
        assert len(inst) == summary["num_instances"]
    assert json.loads((out / "mesh_ascii.json").read_text())["num_faces"] == 1498
    # the same cloud as binary and ASCII PLY gives the same segmentation
    assert (out / "mesh_binary.txt").read_text() == (out / "mesh_ascii.txt").read_text().replace(
        "mesh_ascii", "mesh_binary"
    )


@pytest.mark.slow  # a subprocess that imports torch: ~15 s on a busy 2-core machine
def test_predict_input_single_file_with_quiet_logging(tiny_checkpoint, tmp_path):
    _user_files(tmp_path)
    proc = _run_cli(
        "--log-level", "warning", "predict", "--checkpoint", tiny_checkpoint,
        "--input", str(tmp_path / "lidar.pcd"), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --log-level warning: no progress lines
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "lidar.json", "lidar.txt", "lidar_instances.ply", "pred_mask",
    ]  # fmt: skip


def test_predict_input_errors_are_messages(tiny_checkpoint, tmp_path, capsys):
    assert main(["predict", "--checkpoint", tiny_checkpoint, "--input", str(tmp_path / "nope.ply")]) == 1
    assert "nope.ply: file or folder not found" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", tiny_checkpoint, "--input", "x.ply", "--scenes", "y"]) == 1
    assert "one of --scenes or --input" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((4, 4)))
    assert main(["predict", "--checkpoint", tiny_checkpoint, "--input", str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err
    assert "bad.npy: expected an (N, 3) or (N, 6) array" in err and "Traceback" not in err


@pytest.mark.s3
@pytest.mark.slow
def test_predict_input_reads_an_s3_prefix_and_writes_back(tiny_checkpoint, s3_bucket, tmp_path):
    import boto3

    files = _user_files(tmp_path / "local")
    for name in ("mesh_binary.ply", "arrays.npz"):
        storage.write_bytes(f"{s3_bucket}/scans/{name}", (tmp_path / "local" / name).read_bytes())
    proc = _run_cli(
        "predict",
        "--checkpoint",
        tiny_checkpoint,
        "--input",
        f"{s3_bucket}/scans/",
        "--output",
        f"{s3_bucket}/pred",
    )
    assert proc.returncode == 0, proc.stderr
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    bucket = s3_bucket.removeprefix("s3://")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="pred/")["Contents"]}
    assert {
        "pred/mesh_binary.json",
        "pred/arrays.json",
        "pred/arrays_instances.ply",
        "pred/mesh_binary.txt",
    } <= keys
    summary = json.loads(s3.get_object(Bucket=bucket, Key="pred/arrays.json")["Body"].read())
    assert summary["input"] == f"{s3_bucket}/scans/arrays.npz" and summary["num_points"] == files["arrays"]


# ---------------------------------------------------------------------------------------- the command line


def test_version_and_log_level(capsys):
    from tracklift import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"tracklift {__version__}"
    with pytest.raises(SystemExit) as done:
        main(["--log-level", "loud", "eval"])
    assert done.value.code == 2 and "invalid choice: 'loud'" in capsys.readouterr().err


def test_help_is_short_and_lists_choices(capsys):
    from tracklift.cli import _commands, build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name in _commands():
        description, epilog = subs[name].description, subs[name].epilog or ""
        assert "\n\n" not in description and len(description) < 500, name  # one short paragraph
        for text in (description, epilog):
            assert "Args:" not in text and "``" not in text and ":class:" not in text, name
    assert "Exit status: 0 when every scene is complete" in subs["label"].epilog
    text = subs["predict"].format_help()
    assert "--backend {minkowski,spconv,torch}" in text and "--input INPUT" in text and "--output OUT" in text
    assert "--preset {all_annotated,scannet200_198}" in subs["eval"].format_help()
    train = subs["train"].format_help()
    assert "--stage {all,1,2,3}" in train and "--runner {auto,local,ray}" in train
    label = subs["label"].format_help()
    assert "--generator {weightless,sam2}" in label and "--tracker {geometric,sam2}" in label
    assert "--mesh {fused,parts}" in subs["synth"].format_help()
    # model flags offer every preset ModelConfig.preset knows (the CLI lists them without importing torch)
    from tracklift.models.config import PRESETS

    for command, flag in (("run", "--model"), ("train", "--train.model")):
        action = next(a for a in subs[command]._actions if flag in a.option_strings)
        assert list(action.choices) == list(PRESETS), (command, action.choices)
    # a flag outside the choices is refused by argparse, naming the choices
    with pytest.raises(SystemExit):
        parser.parse_args(["label", "--generator", "sam3"])
    err = capsys.readouterr().err
    assert "invalid choice: 'sam3'" in err and "weightless" in err
