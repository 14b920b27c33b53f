"""Interfaces of the 2D stage: automatic mask generators and video mask trackers.

Every backend (SAM2, weightless, geometric) implements one of these two small interfaces, so the
granularity-consistent tracker never knows which model is behind them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics


@dataclass
class Mask2D:
    """One automatic mask on one frame.

    Attributes:
        mask: (H, W) bool.
        score: predicted quality in [0, 1] (SAM's predicted IoU; weightless: a segment-quality score).
        stability: optional stability score in [0, 1] (SAM's stability score).
    """

    mask: np.ndarray
    score: float = 1.0
    stability: float = 1.0

    @functools.cached_property
    def area(self) -> int:
        """Pixels of the mask (counted once: masks are not modified after they are made)."""
        return int(self.mask.sum())


@runtime_checkable
class MaskGenerator(Protocol):
    """Automatic (prompt-free) mask generation on one RGB-D frame."""

    def generate(self, color: np.ndarray, depth: np.ndarray) -> list[Mask2D]:
        """Args: color (H, W, 3) uint8, depth (H, W) float32 metres (0 = invalid).
        Returns: masks, possibly overlapping, largest-quality first."""
        ...


def for_camera(generator: MaskGenerator, intrinsics: Intrinsics) -> MaskGenerator:
    """``generator`` for frames shot with ``intrinsics``: a generator that reads geometry through the
    camera (a ``for_camera(intrinsics)`` method, e.g. the weightless one's surface normals) gets its
    version for it; any other generator is returned as it is."""
    bind = getattr(generator, "for_camera", None)
    return generator if bind is None else bind(intrinsics)


class TrackState(Protocol):
    """Opaque per-window state of a tracker (e.g. SAM2's inference state)."""


@runtime_checkable
class MaskTracker(Protocol):
    """Propagates object masks through a window of consecutive frames.

    Usage::

        state = tracker.start(frames, intrinsics)        # a window of frames (positions 0..len-1)
        tracker.add_masks(state, pos, {obj_id: mask})    # seed / correct objects on frame `pos`
        for pos, masks in tracker.propagate(state, start=pos):   # masks: {obj_id: (H, W) bool}
            ...
        tracker.close(state)

    A tracker whose state may span a whole scan (its memory bounded by the scene, not by the frames it
    has seen) says so with a class attribute ``scan_wide = True``, takes ``start(frames, intrinsics,
    revisit=n)`` (how many recent frames the caller comes back to) and adds ``predict_ids(state, pos,
    only=None, learn=None, grow_from_learned=True, free=None) -> (H, W) int32 id map`` and
    ``forget_before(state, pos)``; the granularity-consistent
    tracker then opens one state per scan instead of one window per keyframe segment (the geometric
    tracker does; SAM2's memory bank is windowed).
    """

    def start(self, frames: Sequence[Frame], intrinsics: Intrinsics) -> TrackState: ...

    def add_masks(self, state: TrackState, pos: int, masks: dict[int, np.ndarray]) -> None: ...

    def propagate(
        self, state: TrackState, start: int, end: int | None = None, reverse: bool = False
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yield ``(pos, {obj_id: mask})`` for frames from ``start`` to ``end`` (inclusive; default: the
        window's last frame, or 0 when ``reverse``)."""
        ...

    def close(self, state: TrackState) -> None: ...
