"""Checkpoints: round trip through storage URLs, architecture mismatches, foreign files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tracklift import storage
from tracklift.errors import DataError
from tracklift.models import (
    ModelConfig,
    PointBatch,
    Segmenter,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from tracklift.models.config import UNetConfig


def _trained_a_little(cfg: ModelConfig) -> Segmenter:
    torch.manual_seed(0)
    model = Segmenter.from_config(cfg).train()
    pts, cols, ids = boxes_scene(60)
    batch = PointBatch.from_arrays(pts, cols, ids)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # move BN statistics and weights away from their initial values
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("where", ["file", "memory"])
def test_round_trip_gives_identical_outputs(tmp_path, where):
    cfg = ModelConfig.preset("tiny", voxel_size=0.1)
    model = _trained_a_little(cfg)
    url = str(tmp_path / "ckpt" / "model.pt") if where == "file" else "memory://ckpts/model.pt"
    save_checkpoint(model, url, extra={"stage": 2, "epoch": 7})
    loaded = load_checkpoint(url)
    assert loaded.config == model.config and not loaded.training
    pts, cols, _ = boxes_scene(50, seed=3)
    batch = PointBatch.from_arrays(pts, cols)
    a, b = model(batch).decoder, loaded(batch).decoder
    assert torch.equal(a.objectness[-1], b.objectness[-1])
    assert torch.equal(a.mask_logits[-1][0], b.mask_logits[-1][0])
    ia, ib = model.predict(pts, cols), loaded.predict(pts, cols)
    assert np.array_equal(ia.masks, ib.masks) and np.array_equal(ia.scores, ib.scores)

    fresh = Segmenter.from_config(cfg)
    assert load_weights(fresh, url) == {"stage": 2, "epoch": 7}
    fresh.eval()
    assert torch.equal(fresh(batch).decoder.objectness[-1], a.objectness[-1])


def test_other_architecture_is_a_clear_data_error(tmp_path):
    url = str(tmp_path / "tiny.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), url)
    other = Segmenter.from_config(
        ModelConfig.preset("tiny", unet=UNetConfig(widths=[16, 32, 48], depth=1), use_xyz=False)
    )
    with pytest.raises(DataError) as err:
        load_weights(other, url)
    msg = str(err.value)
    assert url in msg and "another architecture" in msg
    assert "unet.widths: [16, 32, 64] vs [16, 32, 48]" in msg and "use_xyz: True vs False" in msg


def test_inconsistent_or_foreign_checkpoints(tmp_path):
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    from tracklift.models.checkpoint import checkpoint_dict

    ckpt = checkpoint_dict(model)
    del ckpt["state_dict"]["decoder.query_feat.weight"]
    ckpt["state_dict"]["backbone.stem.conv.weight"] = torch.zeros(27, 6, 99)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    bad = str(tmp_path / "bad.pt")
    storage.write_bytes(bad, buf.getvalue())
    with pytest.raises(
        DataError, match=r"missing weights \['decoder.query_feat.weight'\].*stem.conv.weight: shape"
    ):
        load_checkpoint(bad)

    junk = str(tmp_path / "junk.pt")
    storage.write_bytes(junk, b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable torch checkpoint"):
        load_checkpoint(junk)
    foreign = str(tmp_path / "foreign.pt")
    buf = io.BytesIO()
    torch.save({"model": {}}, buf)
    storage.write_bytes(foreign, buf.getvalue())
    with pytest.raises(DataError, match="not a tracklift segmenter checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(DataError, match="file not found"):
        load_checkpoint(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path, bad):
    """A diverged run's checkpoint (NaN or inf weights) would predict nothing: every loader refuses it."""
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    with torch.no_grad():
        model.decoder.query_pos.weight[0, 0] = bad
        model.backbone.stem.conv.weight.fill_(float("nan"))  # earlier in the state dict: the first bad one
    url = str(tmp_path / "diverged.pt")
    save_checkpoint(model, url)
    for load in (
        load_checkpoint,
        lambda u: load_weights(Segmenter.from_config(ModelConfig.preset("tiny")), u),
    ):
        with pytest.raises(DataError, match="'backbone.stem.conv.weight' holds NaN or infinite") as err:
            load(url)
        assert err.value.url == url

    only = Segmenter.from_config(ModelConfig.preset("tiny"))
    with torch.no_grad():
        only.decoder.query_pos.weight[0, 0] = bad
    save_checkpoint(only, url)
    with pytest.raises(DataError, match="'decoder.query_pos.weight' holds NaN or infinite"):
        load_checkpoint(url)


def _old_format_checkpoint(model: Segmenter) -> dict:
    """The checkpoint dict tracklift wrote before superpoint decoding: version 1, a config without
    ``decoder_level`` and ``superpoints``."""
    import dataclasses

    config = dataclasses.asdict(model.config)
    del config["decoder_level"], config["superpoints"]
    return {
        "format": "tracklift.segmenter",
        "version": 1,
        "config": config,
        "backend": "torch",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": {"stage": 3},
    }


def _write(url: str, ckpt: dict) -> None:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    storage.write_bytes(url, buf.getvalue())


def test_old_point_level_checkpoint_loads_and_predicts_as_before(tmp_path):
    model = _trained_a_little(ModelConfig.preset("tiny", voxel_size=0.1))
    url = str(tmp_path / "old.pt")
    _write(url, _old_format_checkpoint(model))
    loaded = load_checkpoint(url)
    assert loaded.config.decoder_level == "point" and not loaded.superpoint_level
    pts, cols, _ = boxes_scene(50, seed=3)
    ia, ib = model.predict(pts, cols), loaded.predict(pts, cols)
    assert np.array_equal(ia.masks, ib.masks) and np.array_equal(ia.scores, ib.scores)
    # Into a superpoint-level model: refused, naming the field that differs.
    sp_model = Segmenter.from_config(ModelConfig.preset("tiny", voxel_size=0.1, decoder_level="superpoint"))
    with pytest.raises(DataError, match=r"old\.pt.*decoder_level: 'point' vs 'superpoint'"):
        load_weights(sp_model, url)
    # A version-1 file cannot hold a superpoint model.
    bad = _old_format_checkpoint(model)
    bad["config"]["decoder_level"] = "superpoint"
    _write(url, bad)
    with pytest.raises(DataError, match="version-1 checkpoint is point-level"):
        load_checkpoint(url)


def test_superpoint_checkpoint_round_trip(tmp_path):
    model = _trained_a_little(ModelConfig.preset("tiny", voxel_size=0.1, decoder_level="superpoint"))
    url = str(tmp_path / "sp.pt")
    save_checkpoint(model, url)
    loaded = load_checkpoint(url)
    assert loaded.superpoint_level and loaded.config == model.config
    pts, cols, _ = boxes_scene(50, seed=3)
    ia, ib = model.predict(pts, cols), loaded.predict(pts, cols)
    assert np.array_equal(ia.masks, ib.masks) and np.array_equal(ia.scores, ib.scores)
