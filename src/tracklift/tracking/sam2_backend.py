"""The SAM2 backend of the 2D stage: automatic masks and video tracking on one shared network.

Needs the ``sam2`` package (``make install`` builds it; see the ``sam2`` extra in pyproject.toml).
Typical use in a labeling actor::

    cfg = Sam2Config(checkpoint="s3://models/sam2.1_hiera_tiny.pt", device="cuda")
    generator, tracker = build_sam2_backends(cfg)   # one network, built once per process

The pieces live in :mod:`~tracklift.tracking.sam2_loading` (config, building, checkpoints),
:mod:`~tracklift.tracking.sam2_generator` and :mod:`~tracklift.tracking.sam2_tracker`.
"""

from __future__ import annotations

from tracklift.tracking.sam2_generator import Sam2MaskGenerator
from tracklift.tracking.sam2_loading import (
    Sam2Config,
    build_sam2_model,
    get_sam2_model,
    load_checkpoint,
    read_checkpoint,
)
from tracklift.tracking.sam2_tracker import Sam2StateFootprint, Sam2Tracker, Sam2TrackState, state_footprint

__all__ = [
    "Sam2Config",
    "Sam2MaskGenerator",
    "Sam2StateFootprint",
    "Sam2TrackState",
    "Sam2Tracker",
    "build_sam2_backends",
    "build_sam2_model",
    "get_sam2_model",
    "load_checkpoint",
    "read_checkpoint",
    "state_footprint",
]


def build_sam2_backends(cfg: Sam2Config) -> tuple[Sam2MaskGenerator, Sam2Tracker]:
    """A mask generator and a tracker sharing the process-wide SAM2 network for ``cfg``."""
    model = get_sam2_model(cfg)
    return Sam2MaskGenerator(cfg, model), Sam2Tracker(cfg, model)
