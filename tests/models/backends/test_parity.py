"""Every installed sparse backend gives the torch backend's results from the same weights.

Layer by layer (voxelize + submanifold, strided, transposed convolution, forward and where supported
backward), then the whole tiny Segmenter, then checkpoints written with one backend and run with another.
A backend whose package is missing is skipped, unless ``TRACKLIFT_REQUIRE_BACKENDS=1`` (set by CI's
``.ci/run``): then it fails, so CI cannot pass without testing them.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from tests.models.scenes import boxes_scene
from tracklift.errors import ConfigError, DataError
from tracklift.models import (
    ModelConfig,
    PointBatch,
    Segmenter,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    sparse,
)
from tracklift.models.backends.registry import get_backend
from tracklift.models.config import UNetConfig
from tracklift.models.sparse import SparseTensor, voxelize

OTHERS = ["minkowski", "spconv"]
# The other backends whose backward runs on CPU (spconv's CPU wheel is forward-only).
TRAINABLE = ["minkowski"]


def _backend(name: str):
    try:
        return get_backend(name)
    except ConfigError as e:
        if os.environ.get("TRACKLIFT_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"TRACKLIFT_REQUIRE_BACKENDS=1 but backend {name!r} does not load: {e}")
        pytest.skip(f"backend {name!r} not installed: {e}")


@pytest.fixture(params=OTHERS)
def other(request):
    return _backend(request.param)


@pytest.fixture(params=TRAINABLE)
def trainable(request):
    return _backend(request.param)


def cloud(n=600, seed=0, dtype=torch.float64):
    """Two scenes of random points in a 1 m cube (the second shifted), 3 random features per point."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g, dtype=torch.float64)
    pts[n // 2 :] += 0.37
    return pts, torch.tensor([n // 2, n]), torch.randn(n, 3, generator=g, dtype=dtype)


def weights(seed, *shapes, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_(True) for s in shapes]


def leaf(x: SparseTensor) -> SparseTensor:
    return x.replace(x.feats.detach().clone().requires_grad_(True))


def unet_chain(backend, seed=1, foreign_target=False):
    """voxelize → subm → strided → subm → transposed (onto the first level): every op of the interface.

    Returns:
        ``(levels, leaves)``: the four outputs and the tensors gradients are compared on.
    """
    pts, offsets, feats = cloud()
    x = leaf(backend.voxelize(pts, offsets, feats, 0.1).tensor)
    w1, b1, w2, w3, w4, b4 = weights(seed, (27, 3, 5), (5,), (8, 5, 4), (27, 4, 4), (8, 4, 2), (2,))
    a = backend.submanifold_conv(x, w1, b1)
    b = backend.strided_conv(a, w2)
    c = backend.submanifold_conv(b, w3)
    # A target from another voxelization (no shared cache) exercises the backends' general path.
    target = SparseTensor(a.coords.clone(), a.feats.detach(), 1, a.batch_size) if foreign_target else a
    d = backend.transposed_conv(c, w4, target, b4)
    return [a, b, c, d], [x.feats, w1, b1, w2, w3, w4, b4]


def assert_same_tensor(p: SparseTensor, q: SparseTensor, **tol):
    assert p.stride == q.stride
    assert torch.equal(p.coords, q.coords), "voxels or their order differ"
    torch.testing.assert_close(q.feats, p.feats, **tol)


@pytest.mark.parametrize("foreign_target", [False, True])
def test_forward_matches_torch(other, foreign_target):
    ref, _ = unet_chain(get_backend("torch"), foreign_target=foreign_target)
    out, _ = unet_chain(other, foreign_target=foreign_target)
    assert [t.stride for t in out] == [1, 2, 2, 1]
    for p, q in zip(ref, out):
        assert_same_tensor(p, q)
    # Not trivially equal: the outputs are non-zero and differ from level to level.
    assert float(ref[-1].feats.detach().abs().mean()) > 0.1


def test_forward_float32_and_kernel_order_is_not_symmetric(other):
    """float32 works, and a weight with one non-zero offset lands on the same neighbour in both
    backends (a mirrored or transposed offset order would fail here even if sums agree)."""
    pts, offsets, feats = cloud(dtype=torch.float32)
    tb = get_backend("torch")
    x = voxelize(pts.float(), offsets, feats, 0.1).tensor
    for k in (0, 5, 13, 21):
        w = torch.zeros(27, 3, 2)
        w[k] = torch.randn(3, 2)
        assert_same_tensor(tb.submanifold_conv(x, w), other.submanifold_conv(x, w), atol=1e-5, rtol=1e-5)
    for k in range(8):
        w = torch.zeros(8, 3, 2)
        w[k] = torch.randn(3, 2)
        assert_same_tensor(tb.strided_conv(x, w), other.strided_conv(x, w), atol=1e-5, rtol=1e-5)


def test_backward_matches_torch(trainable):
    ref, ref_leaves = unet_chain(get_backend("torch"))
    out, out_leaves = unet_chain(trainable)
    r = torch.randn(ref[-1].feats.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (ref[-1].feats * r).sum().backward()
    (out[-1].feats * r).sum().backward()
    for name, p, q in zip(["feats", "w1", "b1", "w2", "w3", "w4", "b4"], ref_leaves, out_leaves):
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, msg=f"gradient of {name}")
    assert float(ref_leaves[0].grad.abs().sum()) > 0


def test_spconv_cpu_backward_is_a_clear_error():
    backend = _backend("spconv")
    levels, leaves = unet_chain(backend)
    with pytest.raises(NotImplementedError, match="no backward pass on CPU.*'torch' or 'minkowski'"):
        levels[-1].feats.sum().backward()
    assert leaves[0].grad is None  # nothing half-computed was left behind


def test_multithreaded_forward_matches(other):
    """Two CPU threads (spconv 2.3.8's CPU scatter-add races between OpenMP threads; the backend must
    still be exact)."""
    backend = other
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pts, offsets, feats = cloud(n=4000, seed=3)
        x = voxelize(pts, offsets, feats, 0.05).tensor
        (w,) = weights(2, (27, 3, 16))
        with torch.no_grad():
            assert_same_tensor(get_backend("torch").submanifold_conv(x, w), backend.submanifold_conv(x, w))
        assert torch.get_num_threads() == 2  # restored after the call
    finally:
        torch.set_num_threads(before)


def test_kernel_maps_come_from_the_backends_own_library(other, monkeypatch):
    """The point of the optional backends: ME's coordinate manager / spconv's indice pairs build the maps,
    not tracklift's coordinate hashing (which must not be called on the usual UNet path)."""
    from tracklift.models.backends import torch_backend

    def forbidden(*args, **kwargs):
        raise AssertionError("tracklift's own kernel-map code was used")

    for name in ("submanifold_map", "downsample", "_strided_map", "lookup"):
        monkeypatch.setattr(torch_backend, name, forbidden)
    monkeypatch.setattr(sparse, "lookup", forbidden)
    own_module = sys.modules[type(other).__module__]
    if hasattr(own_module, "lookup"):  # spconv's module uses it only for a target from another cloud
        monkeypatch.setattr(own_module, "lookup", forbidden)
    levels, _ = unet_chain(other)
    assert levels[-1].num_voxels == levels[0].num_voxels


def test_transposed_onto_unrelated_voxels_is_an_error(other):
    pts, offsets, feats = cloud()
    x = voxelize(pts, offsets, feats, 0.1).tensor
    coarse = other.strided_conv(x, torch.randn(8, 3, 4, dtype=torch.float64))
    far = x.coords.clone()
    far[:, 1:] += 100  # no coarse parent among `coarse`'s voxels
    target = SparseTensor(far, x.feats, 1, x.batch_size)
    with pytest.raises(ValueError, match="coarse cell is not among the input voxels"):
        other.transposed_conv(coarse, torch.randn(8, 4, 2, dtype=torch.float64), target)


# -- the whole model -----------------------------------------------------------------------------------


def tiny_model(backend: str, level: str = "point") -> Segmenter:
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", voxel_size=0.1, decoder_level=level)
    return Segmenter.from_config(cfg, backend=backend)


def two_scenes(instance=True) -> PointBatch:
    pts, cols, ids = boxes_scene(80)
    pts2, cols2, ids2 = boxes_scene(50, seed=1, centers=[(0, 0, 0), (2, 0, 0.4)])
    return PointBatch.collate(
        [
            {"points": pts, "colors": cols, "instance": ids if instance else None},
            {"points": pts2, "colors": cols2, "instance": ids2 if instance else None},
        ]
    )


@pytest.mark.parametrize("level", ["point", "superpoint"])
def test_segmenter_forward_matches_torch(other, level):
    ref = tiny_model("torch", level).eval()
    model = tiny_model(other.name, level).eval()
    assert model.backend.name == other.name
    model.load_state_dict(ref.state_dict())  # same state dict keys and shapes on every backend
    batch = two_scenes(instance=False)
    with torch.no_grad():
        a, b = ref(batch), model(batch)
    for stage in range(len(a.decoder.mask_logits)):
        for p, q in zip(a.decoder.mask_logits[stage], b.decoder.mask_logits[stage]):
            torch.testing.assert_close(q, p, atol=1e-4, rtol=1e-4)
        for p, q in zip(a.decoder.objectness[stage], b.decoder.objectness[stage]):
            torch.testing.assert_close(q, p, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("level", ["point", "superpoint"])
def test_segmenter_training_step_matches_torch(trainable, level):
    ref = tiny_model("torch", level).train()
    model = tiny_model(trainable.name, level).train()
    model.load_state_dict(ref.state_dict())
    batch = two_scenes()
    # The losses subsample points and queries' attention voxels at random: same seed, same draws.
    torch.manual_seed(5)
    la = ref(batch)
    torch.manual_seed(5)
    lb = model(batch)
    assert set(la) == set(lb)
    for k in la:
        torch.testing.assert_close(lb[k], la[k], atol=1e-4, rtol=1e-4, msg=k)
    sum(la.values()).backward()
    sum(lb.values()).backward()
    grads_a = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        ga = grads_a[name].grad
        if ga is None:
            assert p.grad is None, name
            continue
        # Relative to the tensor's largest gradient; a few are mathematically ~0 (float noise of 1e-8).
        scale = max(float(ga.abs().max()), 1e-4)
        torch.testing.assert_close(p.grad / scale, ga / scale, atol=2e-4, rtol=0, msg=name)
    conv = model.backbone.stem.conv.weight.grad
    assert conv is not None and float(conv.abs().sum()) > 0


@pytest.mark.parametrize("direction", ["from_other", "to_other"])
def test_checkpoint_of_another_backend_loads_and_predicts_identically(other, tmp_path, direction):
    ref = tiny_model("torch").eval()
    pts, cols, _ = boxes_scene(80)
    saver = ref if direction == "to_other" else tiny_model(other.name).eval()
    if saver is not ref:
        saver.load_state_dict(ref.state_dict())
    url = str(tmp_path / "model.pt")
    save_checkpoint(saver, url)
    src_name = saver.backend.name
    dst_name = other.name if direction == "to_other" else "torch"
    loaded = load_checkpoint(url, backend=dst_name)
    assert loaded.backend.name == dst_name
    default = load_checkpoint(url)  # without an override: the backend it was saved with
    assert default.backend.name == src_name
    want = saver.predict(pts, cols)
    for model in (loaded, default):
        got = model.predict(pts, cols)
        assert len(got) == len(want) and len(want) > 0
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
        # Masks come from thresholded probabilities: allow a handful of borderline points to flip.
        assert (got.masks != want.masks).mean() < 1e-3


def test_checkpoint_of_another_architecture_is_still_an_error(other, tmp_path):
    url = str(tmp_path / "narrow.pt")
    torch.manual_seed(0)
    narrow = ModelConfig.preset("tiny", voxel_size=0.1, unet=UNetConfig(widths=[8, 16, 32], depth=1))
    save_checkpoint(Segmenter.from_config(narrow, backend="torch"), url)
    with pytest.raises(DataError, match="another architecture.*unet.widths"):
        load_weights(tiny_model(other.name), url)


@pytest.mark.parametrize("required", ["1", None])
def test_missing_backend_fails_when_required(monkeypatch, required):
    def missing(name):
        raise ConfigError(f"sparse backend {name!r} needs a package")

    monkeypatch.setattr(sys.modules[__name__], "get_backend", missing)
    if required:
        monkeypatch.setenv("TRACKLIFT_REQUIRE_BACKENDS", required)
    else:
        monkeypatch.delenv("TRACKLIFT_REQUIRE_BACKENDS", raising=False)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="minkowski"):
        _backend("minkowski")
