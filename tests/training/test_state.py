"""A stage's starting state: initialising from another stage's checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tracklift import storage
from tracklift.errors import DataError
from tracklift.models import ModelConfig, Segmenter, save_checkpoint
from tracklift.training.state import init_from

torch.set_num_threads(1)


def test_init_from_copies_shared_queries_when_the_count_changes(tmp_path):
    torch.manual_seed(0)
    old = Segmenter.from_config(ModelConfig.preset("tiny"))
    url = str(tmp_path / "old.pt")
    save_checkpoint(old, url)
    cfg = ModelConfig.preset("tiny")
    new = Segmenter.from_config(
        dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, num_queries=5))
    )
    init_from(new, url)
    assert torch.equal(new.decoder.query_feat.weight, old.decoder.query_feat.weight[:5])
    assert torch.equal(new.backbone.stem.conv.weight, old.backbone.stem.conv.weight)
    wider = Segmenter.from_config(ModelConfig.preset("small"))
    with pytest.raises(DataError, match="another architecture"):
        init_from(wider, url)


def test_a_checkpoint_is_read_once_per_load(tmp_path, monkeypatch):
    """Building a model from a checkpoint and initialising a stage from one read the file once."""
    url = str(tmp_path / "ckpt.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), url)
    reads = []
    real = storage.read_bytes

    def counting(u, *a, **kw):
        reads.append(u)
        return real(u, *a, **kw)

    monkeypatch.setattr(storage, "read_bytes", counting)
    Segmenter.from_checkpoint(url)
    assert reads == [url]
    reads.clear()
    init_from(Segmenter.from_config(ModelConfig.preset("tiny")), url)
    assert reads == [url]


def test_backbone_handoff_keeps_a_fresh_decoder(tmp_path):
    torch.manual_seed(0)
    old = Segmenter.from_config(ModelConfig.preset("tiny"))
    url = str(tmp_path / "old.pt")
    save_checkpoint(old, url)
    cfg = ModelConfig.preset("tiny")
    torch.manual_seed(1)
    new = Segmenter.from_config(
        dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, num_queries=7))
    )
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    init_from(new, url, handoff="backbone")
    for name, value in new.state_dict().items():
        if name.startswith("decoder."):
            assert torch.equal(value, fresh[name]), name
        else:
            assert torch.equal(value, old.state_dict()[name]), name
    wider = Segmenter.from_config(ModelConfig.preset("small"))
    with pytest.raises(DataError, match="another backbone"):
        init_from(wider, url, handoff="backbone")
