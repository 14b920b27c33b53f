"""Class-agnostic variants of the ScanNet instance protocol: which GT labels count, which are void.

Papers disagree on what "class-agnostic" keeps (FACTS.md §2), so each variant is a named preset and numbers
are comparable only inside one preset. A preset decides, from the label half of a GT id
(``gt // 1000``), whether a vertex belongs to an evaluated class; every other vertex is void.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracklift.evaluation.scannet200 import INSTANCE_CLASS_IDS_198


@dataclass(frozen=True)
class EvalPreset:
    """Base of the presets: the class set and ScanNet's minimum region size.

    Args:
        name: registry key.
        min_region_size: predictions and GT instances with fewer vertices are dropped (ScanNet: 100).
    """

    name: str = ""
    min_region_size: int = 100

    def valid_labels(self, labels: np.ndarray) -> np.ndarray:
        """(M,) int label ids → (M,) bool, True where the label is an evaluated class."""
        raise NotImplementedError


@dataclass(frozen=True)
class AllAnnotated(EvalPreset):
    """Segment3D's protocol: every annotated instance, whatever its category, is one class.

    Label ids >= 1 are valid; label 0 (unannotated vertices, and ids below 1000, which ScanNet reserves
    for ignored groups) is void.
    """

    name: str = "all_annotated"

    def valid_labels(self, labels: np.ndarray) -> np.ndarray:
        return np.asarray(labels) >= 1


@dataclass(frozen=True)
class ScanNet200Instances(EvalPreset):
    """Open3DIS' protocol: the 198 ScanNet200 instance classes merged into one class.

    Valid labels are the ScanNet200 category ids minus wall (1) and floor (3); everything else (wall,
    floor, unannotated, categories outside ScanNet200) is void, so a prediction lying on them is ignored
    rather than counted as a false positive.
    """

    name: str = "scannet200_198"
    class_ids: tuple[int, ...] = field(default=INSTANCE_CLASS_IDS_198, repr=False)

    def valid_labels(self, labels: np.ndarray) -> np.ndarray:
        return np.isin(np.asarray(labels), np.asarray(self.class_ids, dtype=np.int64))


PRESETS: dict[str, EvalPreset] = {p.name: p for p in (AllAnnotated(), ScanNet200Instances())}


def get_preset(preset: str | EvalPreset) -> EvalPreset:
    """A preset by name (``all_annotated``, ``scannet200_198``) or the object itself."""
    if isinstance(preset, EvalPreset):
        if preset.min_region_size < 1:
            raise ValueError(f"min_region_size must be >= 1, got {preset.min_region_size}")
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown evaluation preset {preset!r}; choose one of {sorted(PRESETS)}") from None
