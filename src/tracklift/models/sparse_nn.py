"""``nn.Module`` wrappers around a :class:`~tracklift.models.sparse.SparseBackend`'s convolutions.

Each convolution owns its weight as an ``nn.Parameter`` of shape ``(K, C_in, C_out)`` (layout and
kernel-offset order in :mod:`tracklift.models.sparse`), so a state dict is the same whichever backend
runs it. Per-voxel layers (:class:`VoxelNorm`, :class:`VoxelLinear`) are plain torch on ``x.feats``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tracklift.models.sparse import (
    STRIDED_KERNEL_VOLUME,
    SUBM_KERNEL_VOLUME,
    SparseBackend,
    SparseTensor,
)


class _SparseConvBase(nn.Module):
    def __init__(self, volume: int, c_in: int, c_out: int, backend: SparseBackend, bias: bool):
        super().__init__()
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(volume, c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        # Kaiming-uniform over the true fan-in (kernel volume x input channels), as dense convs do.
        bound = math.sqrt(6.0 / (volume * c_in))
        nn.init.uniform_(self.weight, -bound, bound)

    def extra_repr(self) -> str:
        k, c_in, c_out = self.weight.shape
        return (
            f"{c_in}, {c_out}, kernel_volume={k}, bias={self.bias is not None}, backend={self.backend.name}"
        )


class SubmConv3d(_SparseConvBase):
    """Kernel-3 submanifold convolution (output voxels = input voxels). Weight (27, C_in, C_out)."""

    def __init__(self, c_in: int, c_out: int, backend: SparseBackend, bias: bool = False):
        super().__init__(SUBM_KERNEL_VOLUME, c_in, c_out, backend, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.backend.submanifold_conv(x, self.weight, self.bias)


class DownConv3d(_SparseConvBase):
    """Kernel-2 stride-2 convolution (halves the resolution). Weight (8, C_in, C_out)."""

    def __init__(self, c_in: int, c_out: int, backend: SparseBackend, bias: bool = False):
        super().__init__(STRIDED_KERNEL_VOLUME, c_in, c_out, backend, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.backend.strided_conv(x, self.weight, self.bias)


class UpConv3d(_SparseConvBase):
    """Kernel-2 stride-2 transposed convolution onto a finer tensor's voxels. Weight (8, C_in, C_out)."""

    def __init__(self, c_in: int, c_out: int, backend: SparseBackend, bias: bool = False):
        super().__init__(STRIDED_KERNEL_VOLUME, c_in, c_out, backend, bias)

    def forward(self, x: SparseTensor, target: SparseTensor) -> SparseTensor:
        return self.backend.transposed_conv(x, self.weight, target, self.bias)


class VoxelNorm(nn.Module):
    """Normalisation of the (V, C) feature matrix: ``"bn"`` BatchNorm over all voxels of the batch,
    ``"ln"`` LayerNorm per voxel."""

    def __init__(self, channels: int, kind: str = "bn", momentum: float = 0.02):
        super().__init__()
        if kind == "bn":
            # Mask3D's backbone uses BN momentum 0.02 (slowly moving statistics over large voxel batches).
            self.norm: nn.Module = nn.BatchNorm1d(channels, momentum=momentum)
        elif kind == "ln":
            self.norm = nn.LayerNorm(channels)
        else:
            raise ValueError(f"norm must be 'bn' or 'ln', got {kind!r}")

    def forward(self, x: SparseTensor) -> SparseTensor:
        norm = self.norm
        if isinstance(norm, nn.BatchNorm1d) and norm.training and x.num_voxels < 2:
            # Batch statistics of a single voxel are undefined (a tiny cloud's coarsest level): use the
            # running statistics for this call instead of failing.
            feats = nn.functional.batch_norm(
                x.feats, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
            )
            return x.replace(feats)
        return x.replace(norm(x.feats))


class VoxelLinear(nn.Module):
    """Per-voxel linear layer (a 1×1×1 convolution)."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.linear(x.feats))


def relu(x: SparseTensor) -> SparseTensor:
    return x.replace(torch.relu(x.feats))
