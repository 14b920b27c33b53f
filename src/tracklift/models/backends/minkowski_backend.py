"""Sparse convolution with MinkowskiEngine 0.5.4 (CPU or CUDA build), forward and backward.

ME's coordinate manager owns the coordinate maps and computes and caches the kernel maps; the
convolutions are ME's own autograd functions. What this module adds is the glue to tracklift's
conventions (:mod:`tracklift.models.sparse`):

- **Coordinates**: ME stores base-grid coordinates (a multiple of the tensor stride s), tracklift
  level-local ones: ``me = s * ours`` on the spatial axes.
- **Row order**: every ME coordinate map used here is inserted from our coordinates in our row order
  (ME keeps the insertion order of unique rows), so features never need permuting. For a strided
  convolution ME first generates the coarse map itself (``CoordinateManager.stride``); its rows are
  sorted into our order and inserted again as the map the convolution writes to.
- **Kernel offsets**: ME enumerates a hyper-cube kernel with x fastest, ours with z fastest; the
  weight is re-indexed on every call (a 27- or 8-row gather, differentiable), so one ``(K, C_in, C_out)``
  parameter serves every backend.

One manager lives in each voxelization's ``SparseTensor.cache``: maps and kernel maps are built once per
forward pass and freed with it.

Install (CPU build, about 11 minutes once, pip caches the wheel)::

    apt-get install libopenblas-dev
    SETUPTOOLS_USE_DISTUTILS=stdlib MAX_JOBS=2 pip install --no-build-isolation MinkowskiEngine==0.5.4
"""

from __future__ import annotations

import collections
import collections.abc
import itertools
import warnings

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
    strided_offsets,
    subm_offsets,
)

INSTALL_HINT = (
    "install it with `SETUPTOOLS_USE_DISTUTILS=stdlib MAX_JOBS=2 pip install --no-build-isolation "
    "MinkowskiEngine==0.5.4` (needs libopenblas-dev; or `make install`), or use backend 'torch'"
)

# ME 0.5.4 does `from collections import Sequence`, removed in Python 3.10: alias it before importing.
if not hasattr(collections, "Sequence"):
    collections.Sequence = collections.abc.Sequence  # type: ignore[attr-defined]

try:
    with warnings.catch_warnings():
        # A CPU-only build warns on import that it has no CUDA; that is the expected build on CPU hosts.
        warnings.filterwarnings("ignore", message=".*compiled with CPU_ONLY.*")
        import MinkowskiEngine as ME
        from MinkowskiEngineBackend._C import ConvolutionMode
except ImportError as e:
    raise ConfigError(f"sparse backend 'minkowski' needs MinkowskiEngine 0.5.4 ({e}); {INSTALL_HINT}") from e


def _me_order(offsets: torch.Tensor) -> torch.Tensor:
    """Index into our kernel order of each ME kernel index: ME enumerates offsets with x fastest."""
    x, y, z = (offsets[:, i] - offsets[:, i].min() for i in range(3))
    size = int(x.max()) + 1
    return torch.argsort(x + size * y + size * size * z)


# W_me = W_ours[_SUBM_PERM]: ME kernel index k reads our row _SUBM_PERM[k].
_SUBM_PERM = _me_order(subm_offsets())
_STRIDED_PERM = _me_order(strided_offsets())
_MANAGER = ("minkowski", "manager")
_map_ids = itertools.count()


class MinkowskiBackend(SparseBackend):
    """MinkowskiEngine's coordinate manager, kernel maps and convolution kernels (forward and backward).

    Args:
        num_threads: CPU threads of ME's coordinate manager (default: torch's intra-op thread count).
    """

    name = "minkowski"

    def __init__(self, num_threads: int | None = None):
        self.num_threads = num_threads

    # -- coordinate maps ---------------------------------------------------------------------------

    def _manager(self, x: SparseTensor):
        def create():
            map_type = ME.CoordinateMapType.GPU if x.coords.is_cuda else ME.CoordinateMapType.CPU
            threads = self.num_threads or torch.get_num_threads()
            return ME.CoordinateManager(D=3, num_threads=threads, coordinate_map_type=map_type)

        return cached(x, _MANAGER, create)

    @staticmethod
    def _insert(manager, coords: torch.Tensor, stride: int):
        """Insert level-local ``(V, 4)`` coordinates in their row order; returns the ME map key."""
        me_coords = coords.to(torch.int32)
        me_coords[:, 1:] *= stride
        key, (unique, _) = manager.insert_and_map(
            me_coords.contiguous(), [stride] * 3, f"tracklift{next(_map_ids)}"
        )
        if unique.numel() != coords.shape[0] or not bool(
            torch.equal(unique.to(torch.int64).cpu(), torch.arange(coords.shape[0]))
        ):
            # Duplicate rows (or a reordering ME build): features would not line up with the map.
            raise ValueError(
                "coordinates must be unique per tensor (MinkowskiEngine kept a different row set)"
            )
        return key

    def _key(self, x: SparseTensor):
        """``(manager, key)`` of ``x``'s voxels in x's row order (inserted on first use, cached)."""
        manager = self._manager(x)
        key = cached(x, ("minkowski", "key", x.stride), lambda: self._insert(manager, x.coords, x.stride))
        return manager, key

    # -- convolutions ------------------------------------------------------------------------------

    @staticmethod
    def _operands(x: SparseTensor, weight: torch.Tensor, perm: torch.Tensor):
        feats = x.feats if x.feats.dtype == weight.dtype else x.feats.to(weight.dtype)
        return feats.contiguous(), weight[perm.to(weight.device)].contiguous()

    def submanifold_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, SUBM_KERNEL_VOLUME, x.channels)
        if x.num_voxels == 0:
            return x.replace(add_bias(x.feats.new_zeros(0, weight.shape[2]), bias))
        manager, key = self._key(x)
        feats, w = self._operands(x, weight, _SUBM_PERM)
        gen = ME.KernelGenerator(kernel_size=3, stride=1, dilation=1, dimension=3)
        out = ME.MinkowskiConvolutionFunction.apply(feats, w, gen, ConvolutionMode.DEFAULT, key, key, manager)
        return x.replace(add_bias(out, bias))

    def strided_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        if x.num_voxels == 0:
            y = x.feats.new_zeros(0, weight.shape[2])
            return SparseTensor(x.coords, add_bias(y, bias), x.stride * 2, x.batch_size, x.cache)
        manager, key = self._key(x)
        coarse, out_key = cached(x, ("minkowski", "down", x.stride), lambda: self._coarse(manager, key, x))
        feats, w = self._operands(x, weight, _STRIDED_PERM)
        gen = ME.KernelGenerator(kernel_size=2, stride=2, dilation=1, dimension=3)
        out = ME.MinkowskiConvolutionFunction.apply(
            feats, w, gen, ConvolutionMode.DEFAULT, key, out_key, manager
        )
        y = SparseTensor(coarse, add_bias(out, bias), x.stride * 2, x.batch_size, x.cache)
        x.cache.setdefault(("minkowski", "key", y.stride), out_key)
        return y

    def _coarse(self, manager, key, x: SparseTensor):
        """The occupied cells of the 2x coarser grid, as ME generates them, in our sorted order."""
        s2 = 2 * x.stride
        me_key = manager.stride(key, [2, 2, 2])
        c = manager.get_coordinates(me_key).to(device=x.coords.device, dtype=torch.int64)
        # ME's coarse coordinates are floor(base / s2) * s2 (also for negative ones): exact division.
        c[:, 1:] = torch.div(c[:, 1:], s2, rounding_mode="floor")
        c = c[torch.argsort(coord_keys(c))]
        return c, self._insert(manager, c, s2)

    def transposed_conv(
        self, x: SparseTensor, weight: torch.Tensor, target: SparseTensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        check_weight(weight, STRIDED_KERNEL_VOLUME, x.channels)
        if target.stride * 2 != x.stride:
            raise ValueError(f"transposed conv from stride {x.stride} onto stride {target.stride}: need half")
        if x.num_voxels == 0 or target.num_voxels == 0:
            out = x.feats.new_zeros(target.num_voxels, weight.shape[2])
            return target.replace(add_bias(out, bias))
        manager, in_key = self._key(x)
        if target.cache is x.cache:
            _, out_key = self._key(target)
        else:
            # A target from another voxelization: insert its voxels into x's manager for this call.
            out_key = self._insert(manager, target.coords, target.stride)
            self._check_parents(manager, out_key, in_key, target.num_voxels)
        feats, w = self._operands(x, weight, _STRIDED_PERM)
        gen = ME.KernelGenerator(kernel_size=2, stride=2, dilation=1, dimension=3)
        out = ME.MinkowskiConvolutionTransposeFunction.apply(
            feats, w, gen, ConvolutionMode.DEFAULT, in_key, out_key, manager
        )
        return target.replace(add_bias(out, bias))

    @staticmethod
    def _check_parents(manager, fine_key, coarse_key, n_fine: int) -> None:
        # ME would silently give zeros to fine voxels without a coarse parent; the torch backend raises.
        kmap = manager.kernel_map(fine_key, coarse_key, 2, 2)
        rows = [pair[0].to(torch.int64) for pair in kmap.values()]
        covered = torch.cat(rows).unique().numel() if rows else 0
        if covered != n_fine:
            raise ValueError("target voxels whose coarse cell is not among the input voxels")
