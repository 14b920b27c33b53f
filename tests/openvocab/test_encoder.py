"""ClipEncoder: shapes, unit rows, batching, and real checkpoint loading with clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.openvocab.conftest import TINY, TINY_CONFIG
from tracklift import storage
from tracklift.errors import ConfigError, DataError
from tracklift.openvocab import ClipConfig, ClipEncoder

PROMPTS = ["a chair", "a red table", "", "a very long prompt " * 30]


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in ((40, 70), (64, 64), (9, 5))]


def _embed(enc: ClipEncoder) -> tuple[np.ndarray, np.ndarray]:
    return enc.encode_text(PROMPTS), enc.encode_images(_images())


def test_embeddings_are_unit_rows_of_the_model_dimension(tiny_clip):
    _, enc = tiny_clip
    text, img = _embed(enc)
    assert enc.dim == TINY_CONFIG["embed_dim"]
    assert text.shape == (len(PROMPTS), enc.dim) and text.dtype == np.float32
    assert img.shape == (3, enc.dim) and img.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    # different inputs give different embeddings (the model is not collapsed)
    assert np.abs(text[0] - text[1]).max() > 1e-3 and np.abs(img[0] - img[1]).max() > 1e-3
    assert enc.encode_text([]).shape == (0, enc.dim)
    assert enc.encode_images([]).shape == (0, enc.dim)


def test_batch_size_does_not_change_embeddings(tiny_clip):
    _, enc = tiny_clip
    one = ClipEncoder(enc.model, enc.tokenizer, enc.preprocess, enc.dim, batch_size=1)
    t8, i8 = _embed(enc)
    t1, i1 = _embed(one)
    np.testing.assert_allclose(t1, t8, atol=1e-5)
    np.testing.assert_allclose(i1, i8, atol=1e-5)


def test_saved_and_reloaded_checkpoint_gives_identical_embeddings(tiny_config_path, tmp_path):
    torch.manual_seed(1)
    base = ClipConfig(model=TINY, model_config=tiny_config_path)
    first = ClipEncoder.from_config(base)
    torch.manual_seed(2)
    other_random = ClipEncoder.from_config(base)
    sd = first.model.state_dict()
    plain = tmp_path / "plain.pt"
    torch.save(sd, plain)
    # a training checkpoint as open_clip writes it: DataParallel prefix under "state_dict"
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, wrapped)
    from safetensors.torch import save_file

    st = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))

    ref = _embed(first)
    assert np.abs(_embed(other_random)[1] - ref[1]).max() > 1e-3  # loading is what makes them equal
    for url in (str(plain), f"file://{wrapped}", str(st)):
        loaded = ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=url))
        got = _embed(loaded)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        assert loaded.checkpoint == url


@pytest.mark.s3
def test_checkpoint_from_s3(tiny_clip, s3_bucket):
    cfg, enc = tiny_clip
    url = f"{s3_bucket}/clip/tiny.pt"
    storage.write_bytes(url, storage.read_bytes(cfg.checkpoint))
    loaded = ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=url))
    np.testing.assert_array_equal(loaded.encode_text(PROMPTS), enc.encode_text(PROMPTS))


def _sd(tiny_clip) -> dict[str, torch.Tensor]:
    return dict(torch.load(tiny_clip[0].checkpoint, weights_only=True))


def test_missing_or_corrupt_checkpoint_is_a_data_error(tiny_clip, tmp_path):
    missing = str(tmp_path / "nope.pt")
    with pytest.raises(DataError, match="file not found") as e:
        ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=missing))
    assert e.value.url == missing
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(DataError, match="not a PyTorch checkpoint"):
        ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=str(junk)))
    not_tensors = tmp_path / "dict.pt"
    torch.save({"a": 1, "b": "x"}, not_tensors)
    with pytest.raises(DataError, match="not tensors"):
        ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=str(not_tensors)))


def test_checkpoint_keys_must_fit_the_architecture(tiny_clip, tmp_path):
    sd = _sd(tiny_clip)
    drop = dict(sd)
    del drop["visual.proj"]
    extra = dict(sd, **{"visual.extra_head.weight": torch.zeros(3)})
    for name, state, expect in (
        ("drop.pt", drop, r"1 missing: visual\.proj"),
        ("extra.pt", extra, r"1 unexpected: visual\.extra_head\.weight"),
    ):
        path = tmp_path / name
        torch.save(state, path)
        with pytest.raises(DataError, match=expect) as e:
            ClipEncoder.from_config(ClipConfig(model=TINY, checkpoint=str(path)))
        assert e.value.url == str(path)


def test_checkpoint_of_another_architecture_is_refused(tiny_clip, tmp_path):
    wide = dict(TINY_CONFIG, embed_dim=48)
    cfg_path = tmp_path / "wide.json"
    cfg_path.write_text(json.dumps(wide))
    cfg = ClipConfig(
        model="tracklift-test-wide", model_config=str(cfg_path), checkpoint=tiny_clip[0].checkpoint
    )
    with pytest.raises(DataError, match=r"shape mismatch: .*\(64, 32\) vs model \(64, 48\)"):
        ClipEncoder.from_config(cfg)


def test_unknown_architecture_and_bad_model_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown CLIP architecture"):
        ClipEncoder.from_config(ClipConfig(model="no-such-clip-model"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(DataError, match="lacks vision_cfg, text_cfg"):
        ClipEncoder.from_config(ClipConfig(model="tracklift-test-bad", model_config=str(bad)))


def test_bad_images_are_named(tiny_clip):
    _, enc = tiny_clip
    ok = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(DataError, match=r"images\[1\].*\(8, 8\)"):
        enc.encode_images([ok, np.zeros((8, 8), np.uint8)])
    with pytest.raises(DataError, match=r"images\[0\].*float32"):
        enc.encode_images([ok.astype(np.float32)])
    with pytest.raises(TypeError):
        enc.encode_text("a chair")


def test_config_validation():
    with pytest.raises(ConfigError):
        ClipConfig(frames_per_instance=0)
    with pytest.raises(ConfigError):
        ClipConfig(crop_scales=(1.0, -2.0))
    assert ClipConfig(crop_scales=[1, 2]).crop_scales == (1.0, 2.0)
