"""Residual sparse UNet backbone: per-level features for the query decoder.

Level l has stride 2^l and ``widths[l]`` channels. The encoder goes fine → coarse (a strided
convolution between levels, ``depth`` residual blocks per level), the decoder coarse → fine (a
transposed convolution onto the encoder level's voxels, concatenation with the skip features,
``depth`` residual blocks). The decoder-path features of every level are returned; the finest one has
exactly the input voxels, in the input order.
"""

from __future__ import annotations

import torch
from torch import nn

from tracklift.models.backends.registry import get_backend
from tracklift.models.config import UNetConfig
from tracklift.models.sparse import SparseBackend, SparseTensor
from tracklift.models.sparse_nn import DownConv3d, SubmConv3d, UpConv3d, VoxelLinear, VoxelNorm, relu


class ResBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus a shortcut (identity, or per-voxel linear when widths change), ReLU."""

    def __init__(self, c_in: int, c_out: int, backend: SparseBackend, norm: str):
        super().__init__()
        self.conv1 = SubmConv3d(c_in, c_out, backend)
        self.norm1 = VoxelNorm(c_out, norm)
        self.conv2 = SubmConv3d(c_out, c_out, backend)
        self.norm2 = VoxelNorm(c_out, norm)
        self.shortcut = VoxelLinear(c_in, c_out, bias=False) if c_in != c_out else None

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return y.replace(torch.relu(y.feats + skip.feats))


class _ConvNormReLU(nn.Module):
    def __init__(self, conv: nn.Module, channels: int, norm: str):
        super().__init__()
        self.conv = conv
        self.norm = VoxelNorm(channels, norm)

    def forward(self, x: SparseTensor, *args) -> SparseTensor:
        return relu(self.norm(self.conv(x, *args)))


def _blocks(c_in: int, c_out: int, depth: int, backend: SparseBackend, norm: str) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(c_in if i == 0 else c_out, c_out, backend, norm) for i in range(depth)])


class SparseUNet(nn.Module):
    """Residual sparse UNet.

    Args:
        in_channels: input feature channels (3 for RGB, 6 for RGB + xyz).
        widths: channels per level, finest first (``len(widths)`` levels).
        depth: residual blocks per level.
        backend: sparse backend (instance or name).
        norm: ``"bn"`` or ``"ln"``.
    """

    def __init__(
        self,
        in_channels: int,
        widths: list[int],
        depth: int = 1,
        backend: SparseBackend | str = "torch",
        norm: str = "bn",
    ):
        super().__init__()
        backend = get_backend(backend)
        self.widths = list(widths)
        n = len(widths)
        self.stem = _ConvNormReLU(SubmConv3d(in_channels, widths[0], backend), widths[0], norm)
        self.enc = nn.ModuleList([_blocks(widths[0], widths[0], depth, backend, norm)])
        self.down = nn.ModuleList()
        for lvl in range(1, n):
            self.down.append(
                _ConvNormReLU(DownConv3d(widths[lvl - 1], widths[lvl], backend), widths[lvl], norm)
            )
            self.enc.append(_blocks(widths[lvl], widths[lvl], depth, backend, norm))
        # up[i] / dec[i] produce level n-2-i (coarse to fine).
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lvl in range(n - 2, -1, -1):
            self.up.append(_ConvNormReLU(UpConv3d(widths[lvl + 1], widths[lvl], backend), widths[lvl], norm))
            self.dec.append(_blocks(2 * widths[lvl], widths[lvl], depth, backend, norm))

    @classmethod
    def from_config(
        cls, cfg: UNetConfig, in_channels: int, backend: SparseBackend | str = "torch"
    ) -> SparseUNet:
        return cls(in_channels, cfg.widths, cfg.depth, backend, cfg.norm)

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    def forward(self, x: SparseTensor) -> list[SparseTensor]:
        """Args:
            x: voxelized input at stride 1, ``in_channels`` features.

        Returns:
            per level l (0 = finest), the decoder-path tensor at stride 2^l with ``widths[l]`` channels;
            level 0 is on ``x``'s voxels in ``x``'s order; the coarsest is the encoder bottleneck.
        """
        skips = []
        y = self.enc[0](self.stem(x))
        skips.append(y)
        for down, enc in zip(self.down, self.enc[1:]):
            y = enc(down(y))
            skips.append(y)
        outs = [y]
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = skips[len(skips) - 2 - i]
            y = up(y, skip)
            y = dec(skip.replace(torch.cat([y.feats, skip.feats], dim=1)))
            outs.append(y)
        return outs[::-1]
