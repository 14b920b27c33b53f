"""2D→3D lifting: projection and visibility, voting into per-vertex pseudo-labels, cross-frame merging of
independent masks, the stage-1/2/3 curriculum sample builders and their shards.

Modules: ``project`` (projection, depth test), ``vote`` (sparse votes, :class:`PseudoLabels`), ``smooth``
(mesh-neighbour smoothing), ``merge`` (independent-mask baseline), ``lift`` (entry points), ``samples``
(curriculum samples), ``shards`` (.npz files through fsspec).
"""

from tracklift.lifting.lift import LiftConfig, LiftStats, lift_independent, lift_tracked
from tracklift.lifting.project import VisibilityConfig
from tracklift.lifting.samples import (
    Sample,
    SampleConfig,
    scanned_part,
    stage1_samples,
    stage2_samples,
    stage3_sample,
)
from tracklift.lifting.shards import read_pseudo_labels, read_samples, write_pseudo_labels, write_samples
from tracklift.lifting.vote import PseudoLabels

__all__ = [
    "LiftConfig",
    "LiftStats",
    "PseudoLabels",
    "Sample",
    "SampleConfig",
    "VisibilityConfig",
    "lift_independent",
    "lift_tracked",
    "read_pseudo_labels",
    "read_samples",
    "stage1_samples",
    "stage2_samples",
    "stage3_sample",
    "scanned_part",
    "write_pseudo_labels",
    "write_samples",
]
