"""ScanNet-protocol class-agnostic instance evaluation (AP, AP50, AP25) and its file formats."""

from tracklift.evaluation.instance_ap import (
    OVERLAPS,
    APAccumulator,
    average_precision,
    evaluate,
    match_scene,
)
from tracklift.evaluation.presets import PRESETS, AllAnnotated, EvalPreset, ScanNet200Instances, get_preset
from tracklift.evaluation.scannet_io import (
    evaluate_dirs,
    format_table,
    read_gt,
    read_predictions,
    write_gt,
    write_predictions,
)
from tracklift.evaluation.superpoints import superpoint_purity

__all__ = [
    "OVERLAPS",
    "PRESETS",
    "APAccumulator",
    "AllAnnotated",
    "EvalPreset",
    "ScanNet200Instances",
    "average_precision",
    "evaluate",
    "evaluate_dirs",
    "format_table",
    "get_preset",
    "match_scene",
    "read_gt",
    "read_predictions",
    "superpoint_purity",
    "write_gt",
    "write_predictions",
]
