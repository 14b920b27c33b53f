"""``generate_scene``: a synthetic RGB-D scan with ground truth, and a corpus writer.

Random streams are split by purpose (room, camera path, per-frame sensor noise), so the same seed gives
the same room whatever the image size or video length, and frames are independent of each other.
"""

from __future__ import annotations

import logging

import numpy as np

from tracklift.datasets.scene import Frame, Mesh, SceneData
from tracklift.datasets.synthetic.config import DEFAULT_CONFIG, SynthConfig
from tracklift.datasets.synthetic.layout import generate_layout
from tracklift.datasets.synthetic.meshing import SceneMesh, build_mesh
from tracklift.datasets.synthetic.raycast import RayCaster
from tracklift.datasets.synthetic.sensor import simulate_color, simulate_depth
from tracklift.datasets.synthetic.trajectory import make_trajectory
from tracklift.geometry.camera import camera_directions, centred_intrinsics

log = logging.getLogger(__name__)


def default_scene_id(seed: int) -> str:
    """``synth0007_00`` for seed 7 (ScanNet-like ids)."""
    return f"synth{int(seed):04d}_00"


def build_scene_mesh(seed: int, cfg: SynthConfig = DEFAULT_CONFIG):
    """The room of a seed: its :class:`Layout` and tessellated :class:`SceneMesh` (no rendering)."""
    layout = generate_layout(seed, cfg)
    return layout, build_mesh(layout, cfg.mesh_resolution, cfg.min_object_vertices, cfg.texture / 0.08)


def render_frame(
    caster: RayCaster,
    smesh: SceneMesh,
    light: np.ndarray,
    intrinsics,
    pose: np.ndarray,
    cfg: SynthConfig,
    rng: np.random.Generator,
    index: int = 0,
    dirs_cam: np.ndarray | None = None,
) -> Frame:
    """Render one RGB-D frame with its GT instance and part maps.

    Args:
        caster: ray caster of the scene mesh.
        smesh: the scene's labels, parts and appearance.
        light: (3,) light position.
        intrinsics: camera.
        pose: (4, 4) camera→world.
        cfg: sensor settings.
        rng: this frame's random generator.
        index: frame id.
        dirs_cam: optional precomputed camera ray directions.

    Returns:
        :class:`Frame` with colour, noisy depth, pose, and the noise-free GT ``instance`` and ``part``
        maps of every pixel that sees a surface (also where the depth has a hole).
    """
    h, w = intrinsics.height, intrinsics.width
    hits = caster.cast(intrinsics, pose, dirs_cam)
    color, abs_cos = simulate_color(hits, caster.face_normals, smesh, light, cfg, rng)
    depth = simulate_depth(hits.depth.reshape(h, w), abs_cos.reshape(h, w), cfg, rng)
    face = hits.face.reshape(h, w)
    part = np.where(face >= 0, smesh.face_part[np.maximum(face, 0)], 0).astype(np.int32)
    instance = smesh.parts.instance[part].astype(np.int32)
    return Frame(index, color, depth, np.asarray(pose, dtype=np.float64), instance, part)


def generate_scene(seed: int, cfg: SynthConfig = DEFAULT_CONFIG, scene_id: str | None = None) -> SceneData:
    """A synthetic scan: furnished room mesh with GT, and a hand-held RGB-D video through it.

    Args:
        seed: scene seed; the same seed and config give identical arrays.
        cfg: generator configuration.
        scene_id: defaults to ``synth{seed:04d}_00``.

    Returns:
        :class:`SceneData` with ``cfg.n_frames`` frames (ids 0..n-1; colour (H, W, 3) uint8, depth (H, W)
        float32 metres, pose camera→world, GT ``instance`` / ``part`` (H, W) int32), the mesh (float32
        vertices, uint8 colours, int32 faces), per-vertex ``gt_instance`` (int64,
        ``label_id * 1000 + instance``, ScanNet200 label ids), ``labels`` and per-vertex ``parts`` (int32).
    """
    layout, smesh = build_scene_mesh(seed, cfg)
    caster = RayCaster((smesh.vertices, smesh.faces))
    intr = centred_intrinsics(cfg.width, cfg.height, cfg.focal)
    poses = make_trajectory(layout, cfg, np.random.default_rng([int(seed), 2]))
    dirs = camera_directions(intr)
    frames = [
        render_frame(
            caster, smesh, layout.light, intr, pose, cfg, np.random.default_rng([int(seed), 3, k]), k, dirs
        )
        for k, pose in enumerate(poses)
    ]
    mesh = Mesh(smesh.vertices.astype(np.float32), smesh.colors, smesh.faces.astype(np.int32))
    return SceneData(
        scene_id=scene_id or default_scene_id(seed),
        intrinsics=intr,
        frames=frames,
        mesh=mesh,
        gt_instance=smesh.vertex_instance.astype(np.int64),
        labels=smesh.labels,
        parts=smesh.vertex_part.astype(np.int32),
    )
