"""Query decoder: shapes, masked attention, voxel subsampling, determinism at inference; config loading."""

from __future__ import annotations

import pytest
import torch

from tracklift.config import from_dict
from tracklift.models import DecoderConfig, ModelConfig, QueryDecoder, SparseUNet, voxelize
from tracklift.models.decoder import DecoderOutput


def _levels(n=800, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0])
    vox = voxelize(pts, torch.tensor([n // 2, n]), torch.randn(n, 6, generator=g), 0.08)
    torch.manual_seed(0)
    return SparseUNet(6, [8, 16, 16], 1).eval()(vox.tensor)


@pytest.mark.parametrize("masked", [True, False])
def test_decoder_shapes_and_finite(masked):
    levels = _levels()
    dec = QueryDecoder([8, 16, 16], hidden_dim=16, num_queries=5, num_heads=2, ffn_dim=32, num_layers=4,
                       attn_levels=[2, 1, 0], masked_attention=masked)  # fmt: skip
    out = dec(levels)
    assert isinstance(out, DecoderOutput) and out.num_stages == 5
    vo = levels[0].batch_offsets()
    for stage in range(5):
        assert out.objectness[stage].shape == (2, 5)
        for b in range(2):
            m = out.mask_logits[stage][b]
            assert m.shape == (5, int(vo[b + 1] - vo[b])) and torch.isfinite(m).all()


def test_attention_block_pools_fine_masks_to_the_level():
    levels = _levels()
    from tracklift.models.sparse import parent_index

    fine, coarse = levels[0], levels[2]
    parent = parent_index(fine, coarse)
    fo, co = fine.batch_offsets(), coarse.batch_offsets()
    n0, n2 = int(fo[1]), int(co[1])
    # Query 0 covers exactly the children of coarse voxel 3 of scene 0; query 1 covers nothing.
    logits = torch.full((2, n0), -10.0)
    logits[0, parent[:n0] == 3] = 10.0
    block = QueryDecoder._attention_block(logits, parent, 0, n0, 0, n2)
    assert block.shape == (2, n2)
    assert torch.nonzero(~block[0])[:, 0].tolist() == [3]
    assert bool(block[1].all())


def test_subsampling_caps_attended_voxels_and_is_deterministic_in_eval(monkeypatch):
    levels = _levels()
    torch.manual_seed(1)
    dec = QueryDecoder([8, 16, 16], hidden_dim=16, num_queries=4, num_heads=2, ffn_dim=32, num_layers=2,
                       attn_levels=[0], max_attn_voxels=50)  # fmt: skip
    seen = []
    real = torch.nn.MultiheadAttention.forward

    def spy(self, query, key, value, **kw):
        if query.shape[1] != key.shape[1]:  # cross-attention
            seen.append(key.shape[1])
        return real(self, query, key, value, **kw)

    monkeypatch.setattr(torch.nn.MultiheadAttention, "forward", spy)
    dec.eval()
    a, b = dec(levels), dec(levels)
    assert seen and max(seen) <= 50
    assert torch.equal(a.objectness[-1], b.objectness[-1])
    dec.train()
    dec(levels)  # random subsets in training still give finite outputs
    assert max(seen) <= 50


def test_model_config_from_yaml_dict_and_presets():
    cfg = from_dict(ModelConfig, {"voxel_size": 0.05, "unet": {"widths": [8, 16], "depth": 1},
                                  "decoder": {"attn_levels": [1, 0], "num_heads": 4, "hidden_dim": 32}})  # fmt: skip
    assert cfg.validate().unet.widths == [8, 16] and cfg.in_channels == 6
    with pytest.raises(ValueError, match="attn_levels"):
        from_dict(ModelConfig, {"unet": {"widths": [8, 16]}}).validate()  # default attn_levels reach level 3
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig.preset("tiny", decoder=DecoderConfig(hidden_dim=30, num_heads=4, attn_levels=[0]))
    for name in ("tiny", "small", "base"):
        assert ModelConfig.preset(name).validate() is not None


def test_final_stage_only_equals_last_of_all_stages():
    levels = _levels()
    torch.manual_seed(2)
    dec = QueryDecoder(
        [8, 16, 16], hidden_dim=16, num_queries=3, num_heads=2, ffn_dim=16, num_layers=3
    ).eval()
    full, last = dec(levels), dec(levels, all_stages=False)
    assert full.num_stages == 4 and last.num_stages == 1
    assert torch.equal(full.objectness[-1], last.objectness[0])
    assert torch.equal(full.mask_logits[-1][1], last.mask_logits[0][1])
