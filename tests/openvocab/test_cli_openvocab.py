"""``tracklift predict --clip.*`` writes features beside the predictions; ``tracklift query`` ranks them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.openvocab.conftest import TINY
from tests.openvocab.scenes import wall_scene
from tracklift import storage
from tracklift.cli import main
from tracklift.datasets.formats import write_scene
from tracklift.evaluation import write_predictions
from tracklift.openvocab import read_clip_features


def _clip_flags(cfg) -> list[str]:
    return [
        "--clip.model",
        TINY,
        "--clip.model-config",
        cfg.model_config,
        "--clip.checkpoint",
        cfg.checkpoint,
    ]


@pytest.mark.slow  # mostly the segmenter and the PLY reader, not CLIP: 13 s on a busy 2-core machine
def test_predict_writes_clip_features_and_query_prints_them(tiny_clip, tmp_path, capsys):
    from tracklift.datasets.synthetic import generate_scene
    from tracklift.datasets.synthetic.config import SynthConfig
    from tracklift.models import Segmenter
    from tracklift.models.checkpoint import save_checkpoint
    from tracklift.models.config import ModelConfig

    cfg, _ = tiny_clip
    root, pred = str(tmp_path / "corpus"), str(tmp_path / "pred")
    data = generate_scene(7, SynthConfig.classic(width=160, height=120, n_frames=6, n_groups=2))
    write_scene(data, storage.join(root, data.scene_id))
    torch.manual_seed(0)
    seg_ckpt = str(tmp_path / "seg.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), seg_ckpt)
    argv = ["predict", "--checkpoint", seg_ckpt, "--scenes", root, "--out", pred, *_clip_flags(cfg)]
    assert main(argv) == 0
    listing = storage.read_text(storage.join(pred, f"{data.scene_id}.txt")).splitlines()
    cf = read_clip_features(storage.join(pred, f"{data.scene_id}_clip.npz"))
    assert cf.features.shape == (len(listing), 32) and cf.model == TINY and cf.checkpoint == cfg.checkpoint
    assert cf.masks == [line.split()[0] for line in listing]
    capsys.readouterr()
    assert main(["query", "--pred", pred, "--text", "a chair", "--top-k", "2", *_clip_flags(cfg)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["rank", "similarity", "scene", "instance"]
    assert 1 <= len(lines) - 1 <= 2
    for line in lines[1:]:
        rank, sim, scene_id, mask = line.split()
        assert scene_id == data.scene_id and mask in cf.masks


def test_query_computes_missing_features_from_the_scans(tiny_clip, tmp_path, capsys):
    cfg, enc = tiny_clip
    data, inst, names = wall_scene()
    root, pred = str(tmp_path / "corpus"), str(tmp_path / "pred")
    write_scene(data, storage.join(root, data.scene_id))
    write_predictions(pred, data.scene_id, inst)
    argv = [
        "query",
        "--pred",
        pred,
        "--scenes",
        root,
        "--text",
        "a red square",
        "--top-k",
        "0",
        *_clip_flags(cfg),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    # progress is logged (stderr); stdout holds the table only
    assert f"query: computed CLIP features of {data.scene_id}" in captured.err
    out = captured.out.splitlines()
    assert out[0].split() == ["rank", "similarity", "scene", "instance"]
    rows = [line.split() for line in out[1:]]
    assert len(rows) == len(inst)
    # the never-seen instances (far, hidden) come last, marked unseen
    assert [r[3] for r in rows[-2:]] == [f"pred_mask/{data.scene_id}_{k}.txt" for k in (4, 5)]
    assert [r[1] for r in rows[-2:]] == ["unseen", "unseen"]
    sims = [float(r[1]) for r in rows[:-2]]
    assert sims == sorted(sims, reverse=True)
    # equal to ranking the stored features by the prompt's embedding directly
    cf = read_clip_features(storage.join(pred, f"{data.scene_id}_clip.npz"))
    t = enc.encode_text(["a red square"])[0]
    expected = np.sort(cf.features[:4] @ t)[::-1]
    np.testing.assert_allclose(sims, expected, atol=1e-4)
    # a second query reuses the file instead of recomputing
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "computed CLIP features" not in captured.out + captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "--pred", "x"], "needs --pred and --text"),
        (["query", "--pred", "x", "--text", "chair"], "needs --clip.checkpoint"),
        (
            ["predict", "--checkpoint", "c.pt", "--scenes", "s", "--clip.model", "ViT-L-14"],
            "needs --clip.checkpoint",
        ),
    ],
)
def test_cli_errors_are_messages(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err
