"""The reference sparse-convolution backend in pure PyTorch (CPU or CUDA, whatever the tensors are on).

Kernel maps come from coordinate hashing: coordinates are packed into sorted int64 keys
(:func:`tracklift.models.sparse.coord_keys`); for each kernel offset the neighbour keys are looked up
with ``searchsorted``, giving ``(in_idx, out_idx)`` pairs per offset. A convolution is then a gather of
the input rows, per offset one matmul with ``W[k]``, and an ``index_add_`` into the output rows. The
pairs of all offsets are stored back to back (grouped by offset), so the gather and the scatter are one
call each and the per-offset matmuls work on contiguous slices. The autograd function keeps only the
input features and the maps for the backward pass (not the gathered copies).
"""

from __future__ import annotations

import torch

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
    offset_key,
    subm_offsets,
)


class KernelMap:
    """Which input feeds which output through which weight.

    Attributes:
        in_idx, out_idx: (P,) int64 pairs, grouped by kernel index.
        bounds: ``(k, start, end)`` per non-empty kernel index: pairs ``start:end`` use ``W[k]``.
        identity: kernel index whose pairs are every site with itself (the submanifold centre, handled
            without a gather), or None.
        n_out: number of output sites.
    """

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor] | None], n_out: int, device):
        self.identity = None
        ins, outs, self.bounds = [], [], []
        start = 0
        for k, pair in enumerate(pairs):
            if pair is None:
                self.identity = k
                continue
            m = pair[0].numel()
            if m:
                ins.append(pair[0])
                outs.append(pair[1])
                self.bounds.append((k, start, start + m))
                start += m
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        self.in_idx = torch.cat(ins) if ins else empty
        self.out_idx = torch.cat(outs) if outs else empty
        self.n_out = n_out

    def transposed(self, n_out: int) -> KernelMap:
        """The map with inputs and outputs swapped (a transposed convolution over the same pairs)."""
        t = KernelMap.__new__(KernelMap)
        t.identity, t.bounds, t.n_out = self.identity, self.bounds, n_out
        t.in_idx, t.out_idx = self.out_idx, self.in_idx
        return t


def submanifold_map(x: SparseTensor) -> KernelMap:
    """Kernel map of the kernel-3 submanifold convolution on ``x``'s voxels (cached per stride)."""

    def compute() -> KernelMap:
        keys = x.keys()
        n = keys.numel()
        centre = SUBM_KERNEL_VOLUME // 2
        ks = [k for k in range(SUBM_KERNEL_VOLUME) if k != centre]
        deltas = offset_key(subm_offsets(keys.device))[ks]
        # All 26 neighbour lookups in one searchsorted; row j of `found` is kernel index ks[j].
        idx, found = lookup(keys, (keys[None, :] + deltas[:, None]).reshape(-1))
        found = found.view(len(ks), n)
        kmap = KernelMap([], n, keys.device)
        kmap.identity = centre
        kmap.in_idx = idx.view(len(ks), n)[found]
        kmap.out_idx = torch.arange(n, device=keys.device).expand(len(ks), n)[found]
        sizes = found.sum(1).tolist()
        ends = torch.tensor(sizes).cumsum(0).tolist()
        kmap.bounds = [(k, e - m, e) for k, m, e in zip(ks, sizes, ends) if m]
        return kmap

    return cached(x, ("subm_map", x.stride), compute)


def downsample(x: SparseTensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coarse voxels of ``x`` (cached per stride).

    Returns:
        ``(coords (V', 4), keys (V',), parent (V,), kidx (V,))``: the sorted coarse coordinates and their
        keys, the coarse voxel of each fine voxel and the kernel index (``dx * 4 + dy * 2 + dz``) of the
        fine voxel inside its parent cell.
    """

    def compute():
        c = x.coords
        half = c.clone()
        half[:, 1:] = torch.div(c[:, 1:], 2, rounding_mode="floor")
        keys, parent = torch.unique(coord_keys(half), sorted=True, return_inverse=True)
        coarse = torch.empty(keys.numel(), 4, dtype=torch.int64, device=c.device)
        coarse[parent] = half
        rem = c[:, 1:] - 2 * half[:, 1:]
        kidx = rem[:, 0] * 4 + rem[:, 1] * 2 + rem[:, 2]
        return coarse, keys, parent, kidx

    return cached(x, ("down", x.stride), compute)


def _strided_map(parent: torch.Tensor, kidx: torch.Tensor, n_coarse: int) -> KernelMap:
    """Map of the strided convolution (inputs = fine voxels, outputs = their parents), from the parent map."""
    order = torch.argsort(kidx, stable=True)
    sizes = torch.bincount(kidx, minlength=STRIDED_KERNEL_VOLUME).tolist()
    kmap = KernelMap([], n_coarse, parent.device)
    kmap.in_idx, kmap.out_idx = order, parent[order]
    ends = torch.tensor(sizes).cumsum(0).tolist()
    kmap.bounds = [(k, e - m, e) for k, (m, e) in enumerate(zip(sizes, ends)) if m]
    return kmap


class _SparseConv(torch.autograd.Function):
    """``out[o] = sum over pairs (i, o, k) of feats[i] @ weight[k]``, with a memory-light backward.

    All pairs are gathered at once (one ``index_select``), multiplied per kernel index on contiguous
    slices, and scattered back with one ``index_add_``: few large ops instead of 27 small ones.
    """

    @staticmethod
    # Under CUDA autocast, run in float32: index_add_ into a half tensor loses the small updates.
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        out = feats.new_zeros(kmap.n_out, weight.shape[2])
        if kmap.identity is not None:
            out += feats @ weight[kmap.identity]
        if kmap.bounds:
            x = feats.index_select(0, kmap.in_idx)
            y = x.new_empty(x.shape[0], weight.shape[2])
            for k, s, e in kmap.bounds:
                torch.matmul(x[s:e], weight[k], out=y[s:e])
            out.index_add_(0, kmap.out_idx, y)
        ctx.kmap = kmap
        ctx.save_for_backward(feats, weight)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out: torch.Tensor):
        feats, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_out = grad_out.contiguous()
        grad_feats = torch.zeros_like(feats) if need_x else None
        grad_weight = torch.zeros_like(weight) if need_w else None
        if kmap.identity is not None:
            if need_x:
                grad_feats += grad_out @ weight[kmap.identity].T
            if need_w:
                grad_weight[kmap.identity] = feats.T @ grad_out
        if kmap.bounds:
            g = grad_out.index_select(0, kmap.out_idx)
            x = feats.index_select(0, kmap.in_idx) if need_w else None
            gx = g.new_empty(g.shape[0], weight.shape[1]) if need_x else None
            for k, s, e in kmap.bounds:
                if need_x:
                    torch.matmul(g[s:e], weight[k].T, out=gx[s:e])
                if need_w:
                    grad_weight[k] = x[s:e].T @ g[s:e]
            if need_x:
                grad_feats.index_add_(0, kmap.in_idx, gx)
        return grad_feats, grad_weight, None


class TorchBackend(SparseBackend):
    """Pure-PyTorch sparse convolution (the reference implementation; runs wherever the tensors are)."""

    name = "torch"

    def submanifold_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, SUBM_KERNEL_VOLUME, x.channels)
        out = _SparseConv.apply(x.feats, weight, submanifold_map(x))
        return x.replace(add_bias(out, bias))

    def strided_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        coarse, keys, parent, kidx = downsample(x)
        kmap = cached(x, ("down_map", x.stride), lambda: _strided_map(parent, kidx, coarse.shape[0]))
        out = _SparseConv.apply(x.feats, weight, kmap)
        y = SparseTensor(coarse, add_bias(out, bias), x.stride * 2, x.batch_size, x.cache)
        x.cache.setdefault(("keys", y.stride), keys)
        return y

    def transposed_conv(
        self, x: SparseTensor, weight: torch.Tensor, target: SparseTensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        if target.stride * 2 != x.stride:
            raise ValueError(f"transposed conv from stride {x.stride} onto stride {target.stride}: need half")
        known = x.cache.get(("down", target.stride)) if target.cache is x.cache else None
        if known is not None and known[0].shape[0] == x.num_voxels:
            # The usual UNet case: x's voxels are the downsampling of target's, maps already known.
            coarse, _, parent, kidx = known
            kmap = cached(
                target, ("down_map", target.stride), lambda: _strided_map(parent, kidx, coarse.shape[0])
            )
        else:
            kmap = self._lookup_parents(x, target)
        # The strided map has pairs (fine, coarse); the transposed convolution reads coarse, writes fine.
        out = _SparseConv.apply(x.feats, weight, kmap.transposed(target.num_voxels))
        return target.replace(add_bias(out, bias))

    @staticmethod
    def _lookup_parents(x: SparseTensor, target: SparseTensor) -> KernelMap:
        c = target.coords
        half = c.clone()
        half[:, 1:] = torch.div(c[:, 1:], 2, rounding_mode="floor")
        parent, found = lookup(coord_keys(x.coords).sort().values, coord_keys(half))
        if not bool(found.all()):
            raise ValueError("target voxels whose coarse cell is not among the input voxels")
        order = torch.argsort(coord_keys(x.coords))
        parent = order[parent]
        rem = c[:, 1:] - 2 * half[:, 1:]
        return _strided_map(parent, rem[:, 0] * 4 + rem[:, 1] * 2 + rem[:, 2], x.num_voxels)
