"""Sparse convolution with spconv 2.x: ``spconv==2.3.8`` (CPU wheel) or ``spconv-cu120`` (CUDA 12).

spconv computes the kernel maps (its "indice pairs", ``spconv.pytorch.ops.get_indice_pairs``) and runs
the gather-GEMM-scatter convolutions (``spconv.pytorch.functional``). The glue to tracklift's
conventions (:mod:`tracklift.models.sparse`):

- **Coordinates**: spconv indices are level-local ``[b, i, j, k]`` int32, like ours. Its spatial shape
  is taken per level from the coordinates, rounded up to even so that a kernel-2 stride-2 convolution
  keeps the last cell.
- **Row order**: a strided convolution's outputs come in spconv's hash order; the output rows of the
  indice pairs are renumbered once per level to our sorted order, so features are never permuted. The
  transposed convolution reuses the strided pairs (spconv's "inverse" convolution), whose outputs are
  the fine tensor's rows in its order.
- **Weights**: spconv's native algorithm takes ``(C_out, kx, ky, kz, C_in)`` with kz fastest, the same
  offset order as ours, so ``W.reshape(k, k, k, C_in, C_out).permute(4, 0, 1, 2, 3)`` converts (a small
  differentiable copy) on every call.
- **CPU backward**: spconv's backward asks for a CUDA stream before its CPU path, so it fails without a
  GPU. When gradients are requested on
  CPU, the forward runs without recording spconv's graph and the backward raises a clear
  ``NotImplementedError`` instead (use the ``torch`` or ``minkowski`` backend to train on CPU). On CUDA
  builds the backward is spconv's own.

The native algorithm is used on every device (the implicit-GEMM kernels of CUDA builds need a different
pair layout); it is spconv's reference path and supports backward on CUDA.
"""

from __future__ import annotations

import contextlib

import torch

from tracklift.errors import ConfigError
from tracklift.models.sparse import (
    STRIDED_KERNEL_VOLUME,
    SUBM_KERNEL_VOLUME,
    SparseBackend,
    SparseTensor,
    add_bias,
    cached,
    check_weight,
    coord_keys,
    lookup,
)

INSTALL_HINT = (
    "install it with `pip install spconv==2.3.8` (CPU, forward only) or `pip install spconv-cu120` (CUDA 12), "
    "or use backend 'torch'"
)

try:
    from spconv.core import ConvAlgo
    from spconv.pytorch import functional as spconv_fn
    from spconv.pytorch import ops as spconv_ops
except ImportError as e:
    raise ConfigError(f"sparse backend 'spconv' needs spconv 2.x ({e}); {INSTALL_HINT}") from e

CPU_BACKWARD_MESSAGE = (
    "the spconv backend has no backward pass on CPU (spconv 2.3.8's backward asks for a CUDA stream even "
    "for CPU tensors): train with backend 'torch' or 'minkowski', or run spconv on a CUDA device"
)


class _Pairs:
    """spconv indice pairs of one convolution, outputs numbered in our row order.

    Attributes:
        pairs: (2, K, P) int32 ``[input row, output row]`` per kernel index (first ``num[k]`` valid).
        num: (K,) int32 valid pairs per kernel index.
        n_out: number of output rows.
    """

    def __init__(self, pairs: torch.Tensor, num: torch.Tensor, n_out: int):
        self.pairs, self.num, self.n_out = pairs, num, n_out


def _indices(coords: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """spconv's int32 indices and an even spatial shape covering ``coords`` (level-local, non-negative)."""
    if coords.shape[0] and int(coords[:, 1:].min()) < 0:
        raise ValueError("the spconv backend needs non-negative coordinates (voxelize shifts every scene)")
    extent = coords[:, 1:].max(0).values + 1
    shape = [int(v) + int(v) % 2 for v in extent]
    return coords.to(torch.int32).contiguous(), shape


def _pairs(coords: torch.Tensor, batch_size: int, subm: bool):
    """``(outids, pairs, num)`` of spconv's kernel-3 submanifold or kernel-2 stride-2 convolution."""
    idx, shape = _indices(coords)
    k, s, p = (3, 1, 1) if subm else (2, 2, 0)
    return spconv_ops.get_indice_pairs(
        idx, batch_size, shape, ConvAlgo.Native, [k] * 3, [s] * 3, [p] * 3, [1] * 3, [0] * 3, subm, False
    )


def _subm_pairs(x: SparseTensor) -> _Pairs:
    def compute():
        _, pairs, num = _pairs(x.coords, x.batch_size, subm=True)
        return _Pairs(pairs, num, x.num_voxels)

    return cached(x, ("spconv", "subm", x.stride), compute)


def _down(x: SparseTensor) -> tuple[torch.Tensor, _Pairs]:
    """Coarse coordinates of ``x`` (sorted, level-local) and the strided pairs onto them (cached)."""

    def compute():
        outids, pairs, num = _pairs(x.coords, x.batch_size, subm=False)
        coarse = outids.to(torch.int64)
        order = torch.argsort(coord_keys(coarse))
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        return coarse[order], _Pairs(_renumber_outputs(pairs, num, rank), num, coarse.shape[0])

    return cached(x, ("spconv", "down", x.stride), compute)


def _renumber_outputs(pairs: torch.Tensor, num: torch.Tensor, new_index: torch.Tensor) -> torch.Tensor:
    """Pairs with output row ``o`` replaced by ``new_index[o]`` (only the valid ``num[k]`` entries)."""
    pairs = pairs.clone()
    valid = torch.arange(pairs.shape[2], device=pairs.device)[None, :] < num.to(pairs.device)[:, None]
    out = pairs[1]
    out[valid] = new_index[out[valid].to(torch.int64)].to(pairs.dtype)
    return pairs


def _spconv_weight(weight: torch.Tensor, size: int) -> torch.Tensor:
    """(K, C_in, C_out) in our order → spconv's (C_out, k, k, k, C_in)."""
    _, c_in, c_out = weight.shape
    return weight.reshape(size, size, size, c_in, c_out).permute(4, 0, 1, 2, 3).contiguous()


@contextlib.contextmanager
def _serial_on_cpu(device: torch.device):
    """One OpenMP thread for spconv's CPU kernels.

    spconv 2.3.8's CPU ``scatter_add`` shares its row pointers between the threads of its OpenMP loop,
    so with more than one thread rows get added to the wrong outputs (found by the parity tests: exact
    with one thread, errors of the order of the outputs with two). Its GEMMs run single-threaded too.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _ForwardOnly(torch.autograd.Function):
    """Runs a spconv convolution without its (CUDA-only) CPU backward; backward raises a clear error."""

    @staticmethod
    def forward(ctx, feats, weight, run):
        return run(feats, weight)

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError(CPU_BACKWARD_MESSAGE)


def _conv(fn, feats: torch.Tensor, weight: torch.Tensor, size: int, p: _Pairs) -> torch.Tensor:
    """``fn`` (a spconv functional convolution) on our features and our-layout weight."""
    if feats.dtype != weight.dtype:
        feats = feats.to(weight.dtype)

    def run(f, w):
        pairs = p.pairs if p.pairs.device == f.device else p.pairs.to(f.device)
        with _serial_on_cpu(f.device):
            return fn(f.contiguous(), _spconv_weight(w, size), pairs, p.num, p.n_out, ConvAlgo.Native)

    wants_grad = torch.is_grad_enabled() and (feats.requires_grad or weight.requires_grad)
    if feats.is_cuda or not wants_grad:
        return run(feats, weight)
    return _ForwardOnly.apply(feats, weight, run)


class SpconvBackend(SparseBackend):
    """spconv 2.x indice pairs and convolutions (forward everywhere, backward on CUDA only)."""

    name = "spconv"

    def submanifold_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, SUBM_KERNEL_VOLUME, x.channels)
        if x.num_voxels == 0:
            return x.replace(add_bias(x.feats.new_zeros(0, weight.shape[2]), bias))
        out = _conv(spconv_fn.indice_subm_conv, x.feats, weight, 3, _subm_pairs(x))
        return x.replace(add_bias(out, bias))

    def strided_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        if x.num_voxels == 0:
            y = x.feats.new_zeros(0, weight.shape[2])
            return SparseTensor(x.coords, add_bias(y, bias), x.stride * 2, x.batch_size, x.cache)
        coarse, pairs = _down(x)
        out = _conv(spconv_fn.indice_conv, x.feats, weight, 2, pairs)
        return SparseTensor(coarse, add_bias(out, bias), x.stride * 2, x.batch_size, x.cache)

    def transposed_conv(
        self, x: SparseTensor, weight: torch.Tensor, target: SparseTensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        if target.stride * 2 != x.stride:
            raise ValueError(f"transposed conv from stride {x.stride} onto stride {target.stride}: need half")
        if x.num_voxels == 0 or target.num_voxels == 0:
            out = x.feats.new_zeros(target.num_voxels, weight.shape[2])
            return target.replace(add_bias(out, bias))
        coarse, down = _down(target)
        if not (target.cache is x.cache and coarse.shape[0] == x.num_voxels):
            # x is not the downsampling of target in one network pass: find each coarse cell among x's rows.
            rows, found = lookup(x.keys(), coord_keys(coarse))
            if not bool(found.all()):
                raise ValueError("target voxels whose coarse cell is not among the input voxels")
            down = _Pairs(_renumber_outputs(down.pairs, down.num, rows), down.num, x.num_voxels)
        # spconv's inverse convolution runs the strided pairs backwards: coarse rows in, fine rows out.
        inverse = _Pairs(down.pairs, down.num, target.num_voxels)
        out = _conv(spconv_fn.indice_inverse_conv, x.feats, weight, 2, inverse)
        return target.replace(add_bias(out, bias))
