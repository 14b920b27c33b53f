"""The torch sparse backend against dense 3D convolution on the scattered voxel grid, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tracklift.models.backends.registry import get_backend
from tracklift.models.sparse import SparseTensor, parent_index, voxelize


def random_cloud(n=400, batch=2, extent=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g, dtype=torch.float64) * extent
    pts[n // 2 :] += 0.37  # second scene shifted: voxelize must remove the offset
    offsets = torch.tensor([n // 2, n]) if batch == 2 else torch.tensor([n])
    feats = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return pts, offsets, feats


def to_dense(x: SparseTensor, shape) -> torch.Tensor:
    """(B, C, *shape) dense grid with x's features at its voxels, zeros elsewhere."""
    grid = x.feats.new_zeros(x.batch_size, x.channels, *shape)
    b, i, j, k = x.coords.T
    grid[b, :, i, j, k] = x.feats
    return grid


def at(grid: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    b, i, j, k = coords.T
    return grid[b, :, i, j, k]


def grid_shape(coords: torch.Tensor, even: bool = True) -> tuple[int, int, int]:
    m = coords[:, 1:].max(0).values + 1
    if even:
        m = m + (m % 2)
    return tuple(int(v) for v in m)


@pytest.fixture
def vox():
    pts, offsets, feats = random_cloud()
    v = voxelize(pts, offsets, feats, voxel_size=0.1)
    return v


def _leaf(x: SparseTensor) -> SparseTensor:
    return x.replace(x.feats.detach().clone().requires_grad_(True))


def test_submanifold_matches_dense_forward_and_backward(vox):
    backend = get_backend("torch")
    x = _leaf(vox.tensor)
    w = torch.randn(27, 3, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = backend.submanifold_conv(x, w, bias)
    assert torch.equal(y.coords, x.coords)

    xd = to_dense(x.replace(x.feats.detach()), grid_shape(x.coords)).requires_grad_(True)
    wd = w.detach().reshape(3, 3, 3, 3, 5).permute(4, 3, 0, 1, 2).contiguous().requires_grad_(True)
    yd = F.conv3d(xd, wd, bias.detach(), padding=1)
    torch.testing.assert_close(y.feats, at(yd, x.coords))

    r = torch.randn_like(y.feats)
    (y.feats * r).sum().backward()
    (at(yd, x.coords) * r).sum().backward()
    torch.testing.assert_close(x.feats.grad, at(xd.grad, x.coords))
    torch.testing.assert_close(w.grad, wd.grad.permute(2, 3, 4, 1, 0).reshape(27, 3, 5))
    torch.testing.assert_close(bias.grad, r.sum(0))


def test_strided_matches_dense_forward_and_backward(vox):
    backend = get_backend("torch")
    x = _leaf(vox.tensor)
    w = torch.randn(8, 3, 4, dtype=torch.float64, requires_grad=True)
    y = backend.strided_conv(x, w)
    assert y.stride == 2
    # Coarse voxels are exactly the occupied cells of the 2x grid, sorted batch-major.
    expect = x.coords.clone()
    expect[:, 1:] //= 2
    expect = torch.unique(expect, dim=0)
    assert torch.equal(y.coords, expect)

    xd = to_dense(x.replace(x.feats.detach()), grid_shape(x.coords)).requires_grad_(True)
    wd = w.detach().reshape(2, 2, 2, 3, 4).permute(4, 3, 0, 1, 2).contiguous().requires_grad_(True)
    yd = F.conv3d(xd, wd, stride=2)
    torch.testing.assert_close(y.feats, at(yd, y.coords))

    r = torch.randn_like(y.feats)
    (y.feats * r).sum().backward()
    (at(yd, y.coords) * r).sum().backward()
    torch.testing.assert_close(x.feats.grad, at(xd.grad, x.coords))
    torch.testing.assert_close(w.grad, wd.grad.permute(2, 3, 4, 1, 0).reshape(8, 3, 4))


@pytest.mark.parametrize("shared_cache", [True, False])
def test_transposed_matches_dense_forward_and_backward(vox, shared_cache):
    backend = get_backend("torch")
    fine = vox.tensor
    coarse = backend.strided_conv(fine, torch.randn(8, 3, 6, dtype=torch.float64))
    x = _leaf(coarse)
    target = fine if shared_cache else SparseTensor(fine.coords, fine.feats, 1, fine.batch_size)
    w = torch.randn(8, 6, 2, dtype=torch.float64, requires_grad=True)
    y = backend.transposed_conv(x, w, target)
    assert torch.equal(y.coords, fine.coords)

    xd = to_dense(x.replace(x.feats.detach()), grid_shape(x.coords, even=False)).requires_grad_(True)
    wd = w.detach().reshape(2, 2, 2, 6, 2).permute(3, 4, 0, 1, 2).contiguous().requires_grad_(True)
    yd = F.conv_transpose3d(xd, wd, stride=2)
    torch.testing.assert_close(y.feats, at(yd, fine.coords))

    r = torch.randn_like(y.feats)
    (y.feats * r).sum().backward()
    (at(yd, fine.coords) * r).sum().backward()
    torch.testing.assert_close(x.feats.grad, at(xd.grad, x.coords))
    torch.testing.assert_close(w.grad, wd.grad.permute(2, 3, 4, 0, 1).reshape(8, 6, 2))


def test_gradcheck_submanifold_small():
    pts, offsets, feats = random_cloud(n=40, batch=1, extent=0.3, seed=3)
    x = _leaf(voxelize(pts, offsets, feats, 0.1).tensor)
    w = torch.randn(27, 3, 2, dtype=torch.float64, requires_grad=True)
    backend = get_backend("torch")
    assert torch.autograd.gradcheck(
        lambda f, w: backend.submanifold_conv(x.replace(f), w).feats, (x.feats, w)
    )


def test_voxelize_round_trip_and_means():
    pts, offsets, feats = random_cloud(n=500)
    v = voxelize(pts, offsets, feats, voxel_size=0.1)
    n_vox = v.tensor.num_voxels
    # Every point lands in the voxel holding its grid cell (relative to its scene's minimum).
    b = torch.repeat_interleave(torch.arange(2), torch.tensor([250, 250]))
    cell = torch.floor(pts / 0.1).long() - v.origin[b]
    assert torch.equal(v.tensor.coords[v.point2voxel], torch.cat([b[:, None], cell], 1))
    assert int(v.tensor.coords[:, 1:].min()) == 0
    # Voxel features are the means of their points; devoxelize gives each point its voxel's value.
    for vi in [0, n_vox // 2, n_vox - 1]:
        members = v.voxel2point[v.voxel_ptr[vi] : v.voxel_ptr[vi + 1]]
        assert torch.all(v.point2voxel[members] == vi)
        torch.testing.assert_close(v.tensor.feats[vi], feats[members].mean(0))
    assert int(v.counts.sum()) == 500
    ids = torch.arange(n_vox, dtype=torch.float64)[:, None]
    assert torch.equal(v.devoxelize(ids)[:, 0].long(), v.point2voxel)
    # Sorted batch-major, scenes contiguous.
    o = v.tensor.batch_offsets()
    assert o[0] == 0 and o[-1] == n_vox
    assert torch.all(v.tensor.coords[o[0] : o[1], 0] == 0) and torch.all(v.tensor.coords[o[1] :, 0] == 1)


def test_voxelize_rejects_bad_input():
    pts, offsets, feats = random_cloud(n=10, batch=1)
    bad = pts.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        voxelize(bad, offsets, feats, 0.1)
    with pytest.raises(ValueError, match="offsets"):
        voxelize(pts, torch.tensor([4, 3]), feats, 0.1)
    far = pts.clone()
    far[0, 0] = 1e5
    with pytest.raises(ValueError, match="spans"):
        voxelize(far, offsets, feats, 0.1)


def test_kernel_maps_are_cached_per_level(vox, monkeypatch):
    from tracklift.models.backends import torch_backend

    calls = []
    real = torch_backend.lookup
    monkeypatch.setattr(torch_backend, "lookup", lambda *a: calls.append(1) or real(*a))
    backend = get_backend("torch")
    x = vox.tensor
    w = torch.randn(27, 3, 3, dtype=torch.float64)
    backend.submanifold_conv(x, w)
    first = len(calls)
    assert first == 1  # all 26 neighbour offsets in one lookup
    backend.submanifold_conv(backend.submanifold_conv(x, w), w)
    assert len(calls) == first  # same voxels: the map is reused
    down = backend.strided_conv(x, torch.randn(8, 3, 3, dtype=torch.float64))
    backend.submanifold_conv(down, w)
    assert len(calls) == 2 * first  # a new level: one new map
    assert parent_index(x, down).shape == (x.num_voxels,)
