"""The sparse UNet keeps the input voxels and their order, and builds each level's kernel map once."""

from __future__ import annotations

import pytest
import torch

from tracklift.models import ModelConfig, SparseUNet, available_backends, get_backend, voxelize
from tracklift.models.backends import torch_backend


def _input(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 1.5, 1.0])
    return voxelize(pts, torch.tensor([n // 3, n]), torch.randn(n, 6, generator=g), voxel_size=0.1)


def test_unet_levels_shapes_and_order():
    cfg = ModelConfig.preset("tiny")
    unet = SparseUNet.from_config(cfg.unet, 6, "torch")
    vox = _input()
    x = vox.tensor
    levels = unet(x)
    assert len(levels) == 3
    assert torch.equal(levels[0].coords, x.coords)  # same voxels, same order
    assert [lv.channels for lv in levels] == [16, 32, 64]
    assert [lv.stride for lv in levels] == [1, 2, 4]
    assert levels[1].num_voxels < x.num_voxels and levels[2].num_voxels < levels[1].num_voxels
    # Scenes stay separate and contiguous at every level.
    for lv in levels:
        o = lv.batch_offsets()
        assert o[-1] == lv.num_voxels and torch.all(lv.coords[o[1] :, 0] == 1)


def test_unet_output_follows_input_permutation_of_points():
    # Shuffling the points does not change the voxels, so the output must be identical.
    torch.manual_seed(0)
    unet = SparseUNet(6, [8, 8, 16], 1).eval()
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(300, 3, generator=g)
    feats = torch.randn(300, 6, generator=g)
    perm = torch.randperm(300, generator=g)
    a = unet(voxelize(pts, torch.tensor([300]), feats, 0.1).tensor)[0].feats
    b = unet(voxelize(pts[perm], torch.tensor([300]), feats[perm], 0.1).tensor)[0].feats
    torch.testing.assert_close(a, b)


def test_unet_backward_reaches_every_weight():
    unet = SparseUNet(6, [8, 16, 16], 1)
    levels = unet(_input().tensor)
    sum(lv.feats.square().mean() for lv in levels).backward()
    missing = [n for n, p in unet.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_each_level_map_computed_once_per_forward(monkeypatch):
    calls = {"subm": 0}
    real_lookup = torch_backend.lookup

    def count_lookup(*a):
        calls["subm"] += 1
        return real_lookup(*a)

    monkeypatch.setattr(torch_backend, "lookup", count_lookup)
    unet = SparseUNet(6, [8, 8, 8], depth=2, backend=get_backend("torch"))
    vox = _input()
    unet(vox.tensor)
    # 3 levels: one submanifold map each, although each level runs 2 * depth + 1 or more convolutions.
    assert calls["subm"] == 3


def test_unknown_backend_is_a_clear_error():
    assert "torch" in available_backends()
    with pytest.raises(ValueError, match="unknown sparse backend 'nope'"):
        get_backend("nope")
