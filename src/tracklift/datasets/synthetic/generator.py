"""``generate_scene``: a synthetic RGB-D scan with ground truth.

Random streams are split by purpose (room, style, camera path, per-frame sensor noise), so the same seed
gives the same room whatever the image size or video length, and frames are independent of each other.
By default the camera walks the whole room (:mod:`.capture`) and the scene's mesh is the TSDF fusion of
the noisy depth frames with GT voted from the frames (:mod:`.fusion`), as real scans are made.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from tracklift.datasets.scene import Frame, Mesh, SceneData
from tracklift.datasets.synthetic import styles
from tracklift.datasets.synthetic.capture import count_views, face_areas, room_capture, surface_coverage
from tracklift.datasets.synthetic.config import DEFAULT_CONFIG, SynthConfig
from tracklift.datasets.synthetic.fusion import face_components, reconstruct
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
    light,
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
        light: the scene's :class:`~.appearance.Lighting` (or a (3,) light position).
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
    return render_frame_exact(caster, smesh, light, intrinsics, pose, cfg, rng, index, dirs_cam)[0]


def render_frame_exact(
    caster: RayCaster,
    smesh: SceneMesh,
    light,
    intrinsics,
    pose: np.ndarray,
    cfg: SynthConfig,
    rng: np.random.Generator,
    index: int = 0,
    dirs_cam: np.ndarray | None = None,
) -> tuple[Frame, np.ndarray, np.ndarray]:
    """:func:`render_frame`, the frame's noise-free (H, W) float32 z-depth (0 = nothing hit) and the (H, W)
    int64 index of the scene mesh triangle each pixel sees (-1 = nothing)."""
    h, w = intrinsics.height, intrinsics.width
    hits = caster.cast(intrinsics, pose, dirs_cam)
    color, abs_cos = simulate_color(hits, caster.face_normals, smesh, light, cfg, rng)
    exact = hits.depth.reshape(h, w)
    depth = simulate_depth(exact, abs_cos.reshape(h, w), cfg, rng)
    face = hits.face.reshape(h, w)
    part = np.where(face >= 0, smesh.face_part[np.maximum(face, 0)], 0).astype(np.int32)
    instance = smesh.parts.instance[part].astype(np.int32)
    frame = Frame(index, color, depth, np.asarray(pose, dtype=np.float64), instance, part)
    return frame, exact.astype(np.float32), face


def camera_poses(layout, cfg: SynthConfig, seed: int) -> tuple[np.ndarray, dict]:
    """The kept camera poses of a scan (n, 4, 4) and facts about the capture for the scene's metadata."""
    rng = np.random.default_rng([int(seed), 2])
    if cfg.capture == "walk":
        poses = make_trajectory(layout, cfg, rng)
        return poses, {"capture": "walk", "frame_skip": 1, "video_frames": len(poses)}
    cap = room_capture(layout, cfg, rng)
    info = {
        "capture": "room",
        "frame_skip": cfg.frame_skip,
        "video_frames": len(cap.video),
        "route_length_m": round(cap.route_length, 2),
    }
    return cap.poses, info


def generate_scene(seed: int, cfg: SynthConfig = DEFAULT_CONFIG, scene_id: str | None = None) -> SceneData:
    """A synthetic scan: a furnished room, a hand-held RGB-D video through it, and its reconstruction.

    Args:
        seed: scene seed; the same seed and config give identical arrays.
        cfg: generator configuration (``style_seed`` sets the appearance independently of the layout).
        scene_id: defaults to ``synth{seed:04d}_00``.

    Returns:
        :class:`SceneData` with the kept frames (ids 0..n-1; colour (H, W, 3) uint8, depth (H, W) float32
        metres, pose camera→world, GT ``instance`` / ``part`` (H, W) int32), the mesh (float32 vertices,
        uint8 colours, int32 faces; fused from the depth frames by default, the procedural parts with
        ``mesh="parts"``), per-vertex ``gt_instance`` (int64, ``label_id * 1000 + instance``, ScanNet200
        label ids, 0 = seen by no frame), ``labels``, per-vertex ``parts`` (int32) and ``meta``:
        ``coverage`` (share of the GT surface seen by at least 2 kept frames), frame counts, the style,
        the room shape, mesh statistics and generation seconds.

    Raises:
        DataError: naming the scene, when the fused mesh has no face (every depth frame invalid).
    """
    t0 = time.perf_counter()
    scene_id = scene_id or default_scene_id(seed)
    layout, smesh = build_scene_mesh(seed, cfg)
    caster = RayCaster((smesh.vertices, smesh.faces))
    intr = centred_intrinsics(cfg.width, cfg.height, cfg.focal)
    poses, info = camera_poses(layout, cfg, seed)
    dirs = camera_directions(intr)
    frames, exact = [], []
    views = np.zeros(len(smesh.faces), dtype=np.int32)
    for k, pose in enumerate(poses):
        rng = np.random.default_rng([int(seed), 3, k])
        frame, depth, face = render_frame_exact(caster, smesh, layout.light, intr, pose, cfg, rng, k, dirs)
        frames.append(frame)
        exact.append(depth)
        count_views(views, face)
    meta = {
        "seed": int(seed),
        "room_shape": layout.shape,
        "style": styles.describe(layout.style) if layout.style is not None else {},
        "frames": len(frames),
        **info,
        "coverage": round(surface_coverage(face_areas(smesh.vertices, smesh.faces), views), 4),
        "mesh": cfg.mesh,
    }
    if cfg.mesh == "parts":
        mesh = Mesh(smesh.vertices.astype(np.float32), smesh.colors, smesh.faces.astype(np.int32))
        gt, parts = smesh.vertex_instance.astype(np.int64), smesh.vertex_part.astype(np.int32)
    else:
        rec = reconstruct(
            frames,
            exact,
            intr,
            smesh.parts.instance,
            scene_id,
            cfg.voxel_size,
            cfg.max_depth,
            cfg.mesh_density,
        )
        mesh = Mesh(rec.mesh.vertices.astype(np.float32), rec.labels.colors, rec.mesh.faces.astype(np.int32))
        gt, parts = rec.labels.instance, rec.labels.part
        comp = face_components(rec.mesh.faces, len(rec.mesh.vertices))
        meta.update(
            skipped_frames=rec.skipped_frames,
            marching_cubes_vertices=rec.marching_cubes_vertices,
            vertices_per_m2=round(len(rec.mesh.vertices) / max(rec.mesh.area, 1e-9), 1),
            components=int(comp.max() + 1) if len(comp) else 0,
            largest_component_share=round(float(np.bincount(comp).max() / len(comp)), 4)
            if len(comp)
            else 0.0,
            unlabelled_share=round(float(np.mean(gt == 0)), 4),
        )
    labels = {lid: name for lid, name in smesh.labels.items() if np.any(gt // 1000 == lid)}
    meta["vertices"] = len(mesh.vertices)
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    return SceneData(
        scene_id=scene_id,
        intrinsics=intr,
        frames=frames,
        mesh=mesh,
        gt_instance=gt,
        labels=labels if cfg.mesh == "fused" else smesh.labels,
        parts=parts,
        meta=meta,
    )
