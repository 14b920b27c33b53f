"""Fixtures: a tiny open_clip model (random weights, registered from a JSON config) and its checkpoint.

No CLIP weights can be downloaded here, so every test builds this ~3.5M-parameter model: a ViT of width 64
with 2 layers at 64 px, and a 2-layer text transformer with open_clip's bundled BPE tokenizer. The tests
check mechanics, never semantics.
"""

from __future__ import annotations

import json

import pytest
import torch

TINY = "tracklift-test-tiny"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("clip") / "tiny.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip(tiny_config_path, tmp_path_factory):
    """``(ClipConfig with the checkpoint, its encoder)``: random weights saved to a file, loaded back."""
    from tracklift.openvocab import ClipConfig, ClipEncoder

    torch.manual_seed(0)
    random_model = ClipEncoder.from_config(ClipConfig(model=TINY, model_config=tiny_config_path))
    ckpt = tmp_path_factory.mktemp("clip") / "tiny.pt"
    torch.save(random_model.model.state_dict(), ckpt)
    cfg = ClipConfig(model=TINY, model_config=tiny_config_path, checkpoint=str(ckpt), batch_size=8)
    return cfg, ClipEncoder.from_config(cfg)
