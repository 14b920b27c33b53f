"""tracklift: class-agnostic 3D instance segmentation from RGB-D scans.

Per-frame 2D masks are tracked through each scan (one id, one granularity per object), lifted to 3D
pseudo-labels, and distilled into a sparse-voxel network in a three-stage curriculum. See README.md.
"""

from tracklift.errors import DataError, TrackliftError

__version__ = "0.1.0"
__all__ = ["DataError", "TrackliftError", "__version__"]
