"""The network's input: point clouds concatenated Pointcept-style with an ``offset`` array (no padding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tracklift.models.superpoints import check_superpoints

MIN_POINTS = 2


def normalise_colors(colors: Any) -> torch.Tensor:
    """RGB colours → (N, 3) float32 in [0, 1].

    Args:
        colors: (N, 3) uint8 in 0..255, or float in [0, 1].

    Raises:
        ValueError: wrong shape, non-finite values, or floats outside [0, 1] (pass uint8 for 0..255).
    """
    c = torch.as_tensor(np.asarray(colors) if not isinstance(colors, torch.Tensor) else colors)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3), got {tuple(c.shape)}")
    if c.dtype == torch.uint8:
        return c.to(torch.float32) / 255.0
    if not c.is_floating_point():
        raise ValueError(f"colors must be uint8 (0..255) or float (0..1), got {c.dtype}")
    c = c.to(torch.float32)
    if c.numel() and (not bool(torch.isfinite(c).all()) or float(c.min()) < 0.0 or float(c.max()) > 1.0):
        raise ValueError("float colors must be finite and in [0, 1] (pass uint8 for 0..255 values)")
    return c


def check_points(points: torch.Tensor, where: str = "points") -> None:
    """Raise ValueError unless ``points`` is a finite (N, 3) array with N >= 2."""
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{where} must be (N, 3), got {tuple(points.shape)}")
    if points.shape[0] < MIN_POINTS:
        raise ValueError(f"{where}: a cloud needs at least {MIN_POINTS} points, got {points.shape[0]}")
    bad = ~torch.isfinite(points).all(dim=1)
    if bool(bad.any()):
        raise ValueError(
            f"{where}: {int(bad.sum())} of {points.shape[0]} points have NaN or infinite coordinates"
        )


@dataclass
class PointBatch:
    """A batch of B point clouds.

    Attributes:
        coord: (N, 3) float32 coordinates, metres.
        color: (N, 3) float32 RGB in [0, 1].
        offset: (B,) int64 cumulative point counts; scene b is rows ``offset[b-1]:offset[b]``.
        instance: optional (N,) int64 target instance id per point, 0 = unlabelled (ignored by losses).
        superpoints: optional (N,) int64 scene-local superpoint id per point (any non-negative ids; the
            superpoint decoder renumbers them); a scene whose ids are all -1 has none and gets them from
            the model's segmentator, as does every scene when this is None. Augmentations that crop or
            subsample a cloud must carry these along with the points.
    """

    coord: torch.Tensor
    color: torch.Tensor
    offset: torch.Tensor
    instance: torch.Tensor | None = None
    superpoints: torch.Tensor | None = None

    def __post_init__(self):
        n = self.coord.shape[0]
        if self.color.shape != (n, 3):
            raise ValueError(f"color must be ({n}, 3), got {tuple(self.color.shape)}")
        if self.instance is not None and self.instance.shape != (n,):
            raise ValueError(f"instance must be ({n},), got {tuple(self.instance.shape)}")
        if self.offset.ndim != 1 or len(self.offset) == 0 or int(self.offset[-1]) != n:
            raise ValueError(f"offset must be cumulative counts ending at N={n}, got {self.offset.tolist()}")
        starts = torch.cat([self.offset.new_zeros(1), self.offset[:-1]])
        for b, (s, e) in enumerate(zip(starts.tolist(), self.offset.tolist())):
            check_points(self.coord[s:e], f"scene {b} of the batch")
            if self.superpoints is not None:
                check_superpoints(self.superpoints[s:e], e - s, f"superpoints of scene {b} of the batch")
        if self.superpoints is not None and self.superpoints.shape != (n,):
            raise ValueError(f"superpoints must be ({n},), got {tuple(self.superpoints.shape)}")

    @classmethod
    def from_arrays(
        cls, points: Any, colors: Any, instance: Any = None, superpoints: Any = None
    ) -> PointBatch:
        """One cloud: points (N, 3) metres, colors (N, 3) uint8 or [0, 1] floats, optional (N,) int ids,
        optional (N,) int superpoint ids (non-negative)."""
        coord = (
            torch.as_tensor(np.asarray(points, dtype=np.float32))
            if not isinstance(points, torch.Tensor)
            else points
        )
        coord = coord.to(torch.float32)
        check_points(coord)
        color = normalise_colors(colors)
        if color.shape[0] != coord.shape[0]:
            raise ValueError(f"{coord.shape[0]} points but {color.shape[0]} colors")
        inst = None if instance is None else torch.as_tensor(np.asarray(instance, dtype=np.int64))
        sp = None if superpoints is None else check_superpoints(superpoints, coord.shape[0])
        return cls(coord, color, torch.tensor([coord.shape[0]], dtype=torch.int64), inst, sp)

    @classmethod
    def collate(cls, samples: Sequence[Any]) -> PointBatch:
        """Concatenate clouds: each item has ``points``, ``colors`` and optionally ``instance`` and
        ``superpoints`` (attributes or dict keys, e.g. :class:`tracklift.lifting.samples.Sample`). All or
        none must carry ``instance``; a cloud without ``superpoints`` among clouds with them gets -1 ids
        (the model computes its superpoints)."""
        if not samples:
            raise ValueError("cannot collate an empty list of samples")

        def get(s, name):
            return s.get(name) if isinstance(s, dict) else getattr(s, name, None)

        parts = [
            cls.from_arrays(get(s, "points"), get(s, "colors"), get(s, "instance"), get(s, "superpoints"))
            for s in samples
        ]
        has = [p.instance is not None for p in parts]
        if any(has) and not all(has):
            raise ValueError("some samples have instance targets and some do not")
        counts = torch.tensor([p.coord.shape[0] for p in parts], dtype=torch.int64)
        sps = None
        if any(p.superpoints is not None for p in parts):
            sps = torch.cat(
                [
                    p.superpoints if p.superpoints is not None else torch.full((len(p.coord),), -1)
                    for p in parts
                ]
            )
        return cls(
            torch.cat([p.coord for p in parts]),
            torch.cat([p.color for p in parts]),
            torch.cumsum(counts, 0),
            torch.cat([p.instance for p in parts]) if all(has) else None,
            sps,
        )

    @property
    def num_scenes(self) -> int:
        return int(self.offset.numel())

    def slices(self) -> list[slice]:
        """Row range of each scene."""
        ends = self.offset.tolist()
        return [slice(s, e) for s, e in zip([0] + ends[:-1], ends)]

    def to(self, device: torch.device | str) -> PointBatch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PointBatch(
            move(self.coord), move(self.color), move(self.offset), move(self.instance), move(self.superpoints)
        )
