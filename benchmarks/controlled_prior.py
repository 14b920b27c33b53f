"""A controlled 2D prior, for experiments only: ground-truth masks perturbed like a foundation model.

SAM-like generators choose a granularity per view. This prior makes that choice explicit and tunable, so
the effect of granularity inconsistency on 3D pseudo-labels can be measured on its own. For each GT
object visible in a frame it independently

  - drops the object with probability ``p_miss`` (missed detection),
  - splits it into its GT parts with probability ``p_split`` (else returns it whole),
  - perturbs each mask's boundary by a random erosion or dilation of up to ``boundary_px`` pixels.

It reads the synthetic per-pixel GT maps (``Frame.instance``, ``Frame.part``), so it implements
``generate_frame(frame)`` (used by the tracker when present) rather than ``generate(color, depth)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tracklift.datasets.scene import Frame
from tracklift.tracking.base import Mask2D


@dataclass
class PriorConfig:
    p_split: float = 0.3  # probability that a multi-part object is returned as its parts in a view
    p_miss: float = 0.05  # probability that an object is missed in a view
    boundary_px: int = 2  # maximum erosion/dilation of a mask boundary, pixels
    min_area: int = 30  # masks smaller than this are not returned
    seed: int = 0


LEVELS = {
    "controlled-low": PriorConfig(p_split=0.15, p_miss=0.03, boundary_px=1),
    "controlled-high": PriorConfig(p_split=0.5, p_miss=0.10, boundary_px=3),
}


class ControlledPrior:
    """Per-view perturbed GT masks (see module docstring). Deterministic per (seed, frame index)."""

    def __init__(self, cfg: PriorConfig):
        self.cfg = cfg

    def generate(self, color, depth):  # the MaskGenerator signature cannot see GT
        raise TypeError("ControlledPrior needs the GT maps: call generate_frame(frame)")

    def generate_frame(self, frame: Frame) -> list[Mask2D]:
        if frame.instance is None or frame.part is None:
            raise ValueError("ControlledPrior needs synthetic frames with per-pixel instance and part maps")
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, frame.index, zlib.crc32(frame.color[::37, ::37].tobytes())])
        valid = frame.depth > 0
        out: list[Mask2D] = []
        for inst in np.unique(frame.instance):
            if inst < 1000:
                continue
            whole = (frame.instance == inst) & valid
            if whole.sum() < cfg.min_area or rng.random() < cfg.p_miss:
                continue
            parts = [p for p in np.unique(frame.part[whole]) if p > 0]
            pieces = [whole]
            if len(parts) > 1 and rng.random() < cfg.p_split:
                pieces = [whole & (frame.part == p) for p in parts]
            for m in pieces:
                m = self._perturb(m, rng) & valid
                if m.sum() >= cfg.min_area:
                    out.append(Mask2D(m, score=float(rng.uniform(0.7, 1.0)), stability=1.0))
        return out

    def _perturb(self, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = int(rng.integers(-self.cfg.boundary_px, self.cfg.boundary_px + 1))
        if r > 0:
            return ndimage.binary_dilation(m, iterations=r)
        if r < 0:
            eroded = ndimage.binary_erosion(m, iterations=-r)
            return eroded if eroded.any() else m
        return m
