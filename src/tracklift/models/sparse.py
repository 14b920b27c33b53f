"""Sparse voxel tensors and the small interface every sparse-convolution backend implements.

Conventions (every backend follows them, so weights and outputs are interchangeable):

- **Coordinates** are ``(V, 4)`` int64 rows ``[batch, x, y, z]`` in *level-local* grid units: at a level
  of tensor stride ``s`` (1 at the voxelized input, 2 after one strided convolution, ...), a voxel
  covers the base-voxel cells ``[s*x, s*x + s)`` along each axis. Voxelization shifts every scene so
  its smallest base coordinate is 0, so coordinates are non-negative.
- **Order**: rows are sorted by their hash key (batch first, then x, y, z), so the voxels of one scene
  are contiguous; :meth:`SparseTensor.batch_offsets` relies on it. Submanifold convolutions keep the
  order, strided convolutions produce sorted coarse voxels, transposed convolutions produce the order
  of their target (finer) tensor.
- **Weights** are ``(K, C_in, C_out)`` tensors, ``out[i] = sum_k in[j_k(i)] @ W[k]``.

  * submanifold convolution, kernel 3: ``K = 27``, offset ``(dx, dy, dz)`` in ``{-1, 0, 1}^3`` has index
    ``k = (dx + 1) * 9 + (dy + 1) * 3 + (dz + 1)`` (dx slowest, dz fastest; k = 13 is the centre);
    output ``i`` at ``p`` reads input at ``p + (dx, dy, dz)``. ``W.reshape(3, 3, 3, C_in, C_out)
    .permute(4, 3, 0, 1, 2)`` is the matching ``torch.nn.functional.conv3d`` weight (padding 1).
  * strided convolution, kernel 2 stride 2: ``K = 8``, offset ``(dx, dy, dz)`` in ``{0, 1}^3`` has index
    ``k = dx * 4 + dy * 2 + dz``; output at ``q`` reads inputs at ``2q + (dx, dy, dz)``. Same permute
    gives the ``conv3d(stride=2)`` weight.
  * transposed convolution, kernel 2 stride 2: ``K = 8``, same offset order; output at ``2q + d`` reads
    input at ``q`` with ``W[k(d)]``. ``W.reshape(2, 2, 2, C_in, C_out).permute(3, 4, 0, 1, 2)`` is the
    ``conv_transpose3d`` weight.

  MinkowskiEngine stores ``(K, C_in, C_out)`` too but orders its kernel offsets differently, and spconv
  stores ``(C_out, kx, ky, kz, C_in)``: backends convert at load time using the order above.
- **Kernel maps** (which input feeds which output through which weight) depend only on coordinates.
  Tensors derived from one voxelization share a ``cache`` dict, keyed by the level's stride, so a
  network computes each level's maps once per forward pass.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch

# Hash keys pack (batch, x, y, z) into one int64: 15 bits of batch, 16 bits per axis. Axis values are
# stored with a +2^15 bias so that a neighbour offset of -1 at coordinate 0 still packs correctly.
_AXIS_BITS = 16
_AXIS_BIAS = 1 << (_AXIS_BITS - 1)
MAX_EXTENT = (1 << _AXIS_BITS) - 2 - _AXIS_BIAS  # largest coordinate (voxels) along an axis
MAX_BATCH = 1 << 15

SUBM_KERNEL_VOLUME = 27
STRIDED_KERNEL_VOLUME = 8


def subm_offsets(device: torch.device | str = "cpu") -> torch.Tensor:
    """(27, 3) int64 kernel offsets of the kernel-3 submanifold convolution, in weight index order."""
    r = torch.arange(-1, 2, device=device)
    return torch.cartesian_prod(r, r, r)


def strided_offsets(device: torch.device | str = "cpu") -> torch.Tensor:
    """(8, 3) int64 kernel offsets of the kernel-2 stride-2 (transposed) convolution, in weight order."""
    r = torch.arange(0, 2, device=device)
    return torch.cartesian_prod(r, r, r)


def check_weight(weight: torch.Tensor, volume: int, c_in: int) -> None:
    """Raise ValueError unless ``weight`` is ``(volume, c_in, C_out)`` (the layout in the module doc)."""
    if weight.ndim != 3 or weight.shape[0] != volume or weight.shape[1] != c_in:
        raise ValueError(f"weight must be ({volume}, {c_in}, C_out), got {tuple(weight.shape)}")


def add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``out + bias``, or ``out`` when there is no bias."""
    return out if bias is None else out + bias


def coord_keys(coords: torch.Tensor) -> torch.Tensor:
    """Pack ``(V, 4)`` ``[b, x, y, z]`` coordinates into ``(V,)`` int64 keys that sort batch-major.

    Adding ``offset_key(d)`` to a key gives the key of the coordinate moved by ``d``, as long as the moved
    coordinate stays within ``[-2^15, 2^15 - 2]`` (guaranteed for non-negative coords ≤ ``MAX_EXTENT``).
    """
    c = coords.to(torch.int64)
    key = c[:, 0]
    for axis in (1, 2, 3):
        key = (key << _AXIS_BITS) | (c[:, axis] + _AXIS_BIAS)
    return key


def offset_key(offset: torch.Tensor) -> torch.Tensor:
    """Key delta of spatial offsets: ``(..., 3)`` int64 → ``(...)`` int64 (see :func:`coord_keys`)."""
    o = offset.to(torch.int64)
    return (o[..., 0] << (2 * _AXIS_BITS)) + (o[..., 1] << _AXIS_BITS) + o[..., 2]


def lookup(sorted_keys: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of ``queries`` in ``sorted_keys`` (ascending, unique).

    Returns:
        ``(index, found)``: (M,) int64 positions (valid only where found) and (M,) bool.
    """
    if sorted_keys.numel() == 0:
        return torch.zeros_like(queries), torch.zeros(queries.shape, dtype=torch.bool, device=queries.device)
    idx = torch.searchsorted(sorted_keys, queries).clamp_(max=sorted_keys.numel() - 1)
    return idx, sorted_keys[idx] == queries


@dataclass
class SparseTensor:
    """Features on the occupied voxels of a batch of scenes at one resolution.

    Attributes:
        coords: (V, 4) int64 ``[batch, x, y, z]`` in level-local grid units, sorted (see module doc).
        feats: (V, C) float features.
        stride: tensor stride in base voxels (1, 2, 4, ...).
        batch_size: number of scenes B (some may have no voxel only if the caller built it so).
        cache: kernel-map cache shared by every tensor derived from the same voxelization.
    """

    coords: torch.Tensor
    feats: torch.Tensor
    stride: int
    batch_size: int
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.coords.ndim != 2 or self.coords.shape[1] != 4:
            raise ValueError(f"coords must be (V, 4), got {tuple(self.coords.shape)}")
        if self.feats.ndim != 2 or self.feats.shape[0] != self.coords.shape[0]:
            raise ValueError(
                f"feats must be (V, C) with V={self.coords.shape[0]}, got {tuple(self.feats.shape)}"
            )

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def channels(self) -> int:
        return int(self.feats.shape[1])

    def replace(self, feats: torch.Tensor) -> SparseTensor:
        """Same voxels (and shared cache), new ``(V, C')`` features: for per-voxel ops (norm, ReLU, linear)."""
        return SparseTensor(self.coords, feats, self.stride, self.batch_size, self.cache)

    def keys(self) -> torch.Tensor:
        """(V,) int64 sorted hash keys, computed once per coordinate set."""
        return cached(self, ("keys", self.stride), lambda: coord_keys(self.coords))

    def batch_offsets(self) -> torch.Tensor:
        """(B + 1,) int64 start of each scene's voxels, plus V at the end: scene b is ``[o[b], o[b+1])``."""

        def compute():
            b = torch.arange(self.batch_size + 1, device=self.coords.device)
            return torch.searchsorted(self.coords[:, 0].contiguous(), b)

        return cached(self, ("batch_offsets", self.stride), compute)


def cached(x: SparseTensor, key: Any, compute) -> Any:
    """Return ``x.cache[key]``, computing and storing it on first use."""
    if key not in x.cache:
        x.cache[key] = compute()
    return x.cache[key]


def parent_index(fine: SparseTensor, coarse: SparseTensor) -> torch.Tensor:
    """(V_fine,) int64 index of the coarse voxel containing each fine voxel.

    Raises:
        ValueError: a fine voxel has no containing coarse voxel (the tensors come from different clouds).
    """

    def compute():
        ratio = coarse.stride // fine.stride
        if ratio < 1 or ratio * fine.stride != coarse.stride:
            raise ValueError(f"stride {coarse.stride} is not a multiple of {fine.stride}")
        parent = fine.coords.clone()
        parent[:, 1:] = torch.div(parent[:, 1:], ratio, rounding_mode="floor")
        idx, found = lookup(coarse.keys(), coord_keys(parent))
        if not bool(found.all()):
            raise ValueError("fine voxels without a containing coarse voxel: tensors of different clouds")
        return idx

    return cached(fine, ("parent", fine.stride, coarse.stride), compute)


@dataclass
class Voxelization:
    """Result of voxelizing a batch of point clouds.

    Attributes:
        tensor: the voxels (stride 1) with per-voxel mean features.
        point2voxel: (N,) int64 voxel index of each point.
        voxel2point: (N,) int64 point indices grouped by voxel: the points of voxel v are
            ``voxel2point[voxel_ptr[v]:voxel_ptr[v + 1]]``.
        voxel_ptr: (V + 1,) int64 CSR pointers into ``voxel2point``.
        origin: (B, 3) int64 base-grid coordinate subtracted from each scene (``floor(p / voxel_size)``).
        voxel_size: voxel side, metres.
        superpoints: the batch's superpoints when the model decodes per superpoint
            (:class:`tracklift.models.superpoints.BatchSuperpoints`, attached by the segmenter), else None.
    """

    tensor: SparseTensor
    point2voxel: torch.Tensor
    voxel2point: torch.Tensor
    voxel_ptr: torch.Tensor
    origin: torch.Tensor
    voxel_size: float
    superpoints: Any = None

    @property
    def counts(self) -> torch.Tensor:
        """(V,) int64 number of points in each voxel."""
        return self.voxel_ptr[1:] - self.voxel_ptr[:-1]

    def devoxelize(self, voxel_values: torch.Tensor) -> torch.Tensor:
        """Per-voxel values ``(V, ...)`` → per-point values ``(N, ...)`` (each point takes its voxel's)."""
        return voxel_values[self.point2voxel]


def batch_index(offsets: torch.Tensor, num_points: int) -> torch.Tensor:
    """(N,) int64 scene index of each point from Pointcept-style ``offsets`` (cumulative end indices)."""
    counts = torch.diff(offsets, prepend=offsets.new_zeros(1))
    return torch.repeat_interleave(
        torch.arange(len(offsets), device=offsets.device), counts, output_size=num_points
    )


def voxelize(
    points: torch.Tensor, offsets: torch.Tensor, feats: torch.Tensor, voxel_size: float
) -> Voxelization:
    """Quantize a batch of point clouds to voxels, averaging point features per voxel.

    Args:
        points: (N, 3) float coordinates, metres.
        offsets: (B,) int64 cumulative point counts (scene b is ``points[offsets[b-1]:offsets[b]]``).
        feats: (N, C) float point features.
        voxel_size: voxel side, metres.

    Returns:
        a :class:`Voxelization` (voxels sorted batch-major, see the module doc).

    Raises:
        ValueError: bad shapes, non-finite points, a scene wider than ``MAX_EXTENT`` voxels.
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    if feats.shape[0] != points.shape[0]:
        raise ValueError(f"feats has {feats.shape[0]} rows for {points.shape[0]} points")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    n = points.shape[0]
    offsets = offsets.to(device=points.device, dtype=torch.int64)
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or int(offsets[-1]) != n
        or bool((torch.diff(offsets) < 0).any())
    ):
        raise ValueError(
            f"offsets must be non-decreasing cumulative counts ending at N={n}, got {offsets.tolist()}"
        )
    if len(offsets) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} scenes per batch, got {len(offsets)}")
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points contain NaN or infinite coordinates")
    bsz = len(offsets)
    bidx = batch_index(offsets, n)
    grid = torch.floor(points.to(torch.float64) / voxel_size).to(torch.int64)
    origin = torch.zeros(bsz, 3, dtype=torch.int64, device=points.device)
    big = torch.iinfo(torch.int64).max
    origin = origin.fill_(big).scatter_reduce(0, bidx[:, None].expand(-1, 3), grid, reduce="amin")
    grid = grid - origin[bidx]
    extent = int(grid.max()) if n else 0
    if extent > MAX_EXTENT:
        raise ValueError(
            f"a scene spans {extent + 1} voxels of {voxel_size} m along an axis; at most {MAX_EXTENT + 1} "
            "are supported (use a larger voxel_size or split the scene)"
        )
    coords = torch.cat([bidx[:, None], grid], dim=1)
    keys, point2voxel = torch.unique(coord_keys(coords), sorted=True, return_inverse=True)
    v = keys.numel()
    counts = torch.bincount(point2voxel, minlength=v)
    vcoords = torch.empty(v, 4, dtype=torch.int64, device=points.device)
    vcoords[point2voxel] = coords
    vfeats = torch.zeros(v, feats.shape[1], dtype=feats.dtype, device=feats.device)
    vfeats.index_add_(0, point2voxel, feats)
    vfeats = vfeats / counts.clamp(min=1).to(feats.dtype)[:, None]
    voxel2point = torch.argsort(point2voxel, stable=True)
    ptr = torch.zeros(v + 1, dtype=torch.int64, device=points.device)
    ptr[1:] = torch.cumsum(counts, 0)
    tensor = SparseTensor(vcoords, vfeats, 1, bsz)
    tensor.cache[("keys", 1)] = keys
    return Voxelization(tensor, point2voxel, voxel2point, ptr, origin, float(voxel_size))


class SparseBackend(abc.ABC):
    """Sparse convolution on :class:`SparseTensor`s; implementations must agree to float tolerance.

    Weights follow the layout and kernel-offset order of the module docstring. Per-voxel operations
    (normalisation, activation, linear layers) are plain torch on ``x.feats`` and not part of a backend.
    """

    # The registry name (tracklift.models.backends.registry.BACKENDS), recorded in checkpoints.
    name: str = "abstract"

    def voxelize(self, points: torch.Tensor, offsets: torch.Tensor, feats: torch.Tensor, voxel_size: float):
        """See :func:`voxelize`; backends needing their own coordinate structures may extend it."""
        return voxelize(points, offsets, feats, voxel_size)

    @abc.abstractmethod
    def submanifold_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """Kernel-3 convolution whose output sites are the input sites.

        Args:
            x: input, ``C_in`` channels.
            weight: (27, C_in, C_out).
            bias: optional (C_out,).

        Returns:
            a tensor on ``x``'s voxels, in ``x``'s order, with ``C_out`` channels.
        """

    @abc.abstractmethod
    def strided_conv(
        self, x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """Kernel-2 stride-2 convolution: output voxels are the occupied cells of the 2× coarser grid.

        Args:
            x: input at stride s.
            weight: (8, C_in, C_out).
            bias: optional (C_out,).

        Returns:
            a tensor at stride 2s, sorted.
        """

    @abc.abstractmethod
    def transposed_conv(
        self, x: SparseTensor, weight: torch.Tensor, target: SparseTensor, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """Kernel-2 stride-2 transposed convolution onto the voxels of ``target`` (stride ``x.stride / 2``).

        Args:
            x: coarse input at stride 2s.
            weight: (8, C_in, C_out).
            target: the finer tensor (usually the matching encoder level) whose voxels the output takes.
            bias: optional (C_out,).

        Returns:
            a tensor on ``target``'s voxels, in its order.
        """
