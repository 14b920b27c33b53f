"""tracklift: class-agnostic 3D instance segmentation from RGB-D scans.

Per-frame 2D masks are tracked through each scan (one id, one granularity per object), lifted to 3D
pseudo-labels, and distilled into a sparse-voxel network in a three-stage curriculum. See README.md.

The names below are imported on first use, so ``import tracklift`` stays cheap (no torch, no Ray)::

    import tracklift
    inst = tracklift.segment(points, colors, checkpoint="model.pt")   # tracklift.api
    cloud = tracklift.read_point_cloud("my_room.ply")                 # PLY / PCD / NPY / NPZ
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracklift.errors import ConfigError, DataError, TrackliftError

__version__ = "0.1.0"

# public name → the module that defines it (imported by __getattr__ on first access)
_LAZY = {
    "segment": "tracklift.api",
    "segment_file": "tracklift.api",
    "load_segmenter": "tracklift.api",
    "read_point_cloud": "tracklift.datasets.pointclouds",
    "list_point_clouds": "tracklift.datasets.pointclouds",
    "Mesh": "tracklift.datasets.scene",
    "Scene": "tracklift.datasets.scene",
    "open_scene": "tracklift.datasets.formats",
    "Instances": "tracklift.structures",
    "Segmenter": "tracklift.models.segmenter",
    "ModelConfig": "tracklift.models.config",
    "save_checkpoint": "tracklift.models.checkpoint",
    "write_predictions": "tracklift.evaluation.scannet_io",
    "read_predictions": "tracklift.evaluation.scannet_io",
    "evaluate_dirs": "tracklift.evaluation.scannet_io",
    "Client": "tracklift.serving.client",
}

__all__ = [  # the names of _LAZY, spelled out for tools that read __all__ statically
    "Client",
    "ConfigError",
    "DataError",
    "Instances",
    "Mesh",
    "ModelConfig",
    "Scene",
    "Segmenter",
    "TrackliftError",
    "__version__",
    "evaluate_dirs",
    "list_point_clouds",
    "load_segmenter",
    "open_scene",
    "read_point_cloud",
    "read_predictions",
    "save_checkpoint",
    "segment",
    "segment_file",
    "write_predictions",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from tracklift.api import load_segmenter, segment, segment_file
    from tracklift.datasets.formats import open_scene
    from tracklift.datasets.pointclouds import list_point_clouds, read_point_cloud
    from tracklift.datasets.scene import Mesh, Scene
    from tracklift.evaluation.scannet_io import evaluate_dirs, read_predictions, write_predictions
    from tracklift.models.checkpoint import save_checkpoint
    from tracklift.models.config import ModelConfig
    from tracklift.models.segmenter import Segmenter
    from tracklift.serving.client import Client
    from tracklift.structures import Instances


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracklift' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _console_script() -> int:
    """The ``tracklift`` command. A light install (base or ``[client]``) has no torch or Ray, which the
    commands import: say what to install instead of showing an import traceback."""
    import sys

    try:
        from tracklift.cli import main
    except ModuleNotFoundError as e:
        print(
            f"tracklift: the commands need the full install ({e}); run `pip install 'tracklift[full]'` "
            "(`make install` does it). The base install has the point-cloud readers and the HTTP client.",
            file=sys.stderr,
        )
        return 1
    return main()
