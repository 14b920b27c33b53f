"""The command line end to end: synth → label → train → predict → eval, and errors as messages."""

import json

import pytest

from tracklift import storage
from tracklift.cli import main


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
