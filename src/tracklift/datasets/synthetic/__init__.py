"""Synthetic RGB-D scans with ground truth: procedural furnished rooms, filmed and reconstructed.

    from tracklift.datasets.synthetic import SynthConfig, generate_scene
    data = generate_scene(seed=0, cfg=SynthConfig(width=320, height=240, style_seed=100))

A room (rectangular, L-shaped, or two rooms joined by an opening) has a floor, walls (each its own
instance), furniture built from parts (a table is a top and four legs, a chair a seat, back and legs, a
bookshelf boards holding boxes and books, a couch a base, back, arm rests and cushions…), small things on
tables and shelves, a door and pictures; its look (materials, patterns, colours, lights) comes from a
style seed of its own (:mod:`.styles`). A hand-held camera walks the whole room (:mod:`.capture`); frames
are rendered by ray casting (trimesh + embree) with shading, texture, colour noise, depth noise growing
with depth² and depth holes, each with GT instance and part maps. The mesh is the TSDF fusion of the noisy
depth frames with per-vertex GT instance ids in ScanNet's encoding (``label_id * 1000 + instance``,
ScanNet200 label ids) and part ids voted from the frames (:mod:`.fusion`), or with ``mesh="parts"`` the
exact piecewise procedural mesh (about 4 cm grid). ``SynthConfig.classic()`` is the generator as it was
before whole-room captures, fused meshes and styles.

``raycast`` and ``render_view`` are reusable for pictures of any mesh (see :mod:`.raycast`; the
bird's-eye camera is :func:`tracklift.geometry.camera.overview_pose`).
"""

from tracklift.datasets.synthetic.config import DEFAULT_CONFIG, SynthConfig
from tracklift.datasets.synthetic.generator import (
    build_scene_mesh,
    default_scene_id,
    generate_scene,
    render_frame,
)
from tracklift.datasets.synthetic.labels import LABEL_IDS
from tracklift.datasets.synthetic.layout import Layout, generate_layout
from tracklift.datasets.synthetic.raycast import (
    RayCaster,
    raycast,
    render_view,
)
from tracklift.datasets.synthetic.trajectory import make_trajectory

__all__ = [
    "DEFAULT_CONFIG",
    "LABEL_IDS",
    "Layout",
    "RayCaster",
    "SynthConfig",
    "build_scene_mesh",
    "default_scene_id",
    "generate_layout",
    "generate_scene",
    "make_trajectory",
    "raycast",
    "render_frame",
    "render_view",
]
