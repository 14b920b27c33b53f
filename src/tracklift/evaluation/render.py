"""``tracklift render``: PNG and coloured PLY of a scene by GT, pseudo-labels or predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracklift import storage
from tracklift.datasets.formats import open_scene
from tracklift.datasets.ply import write_ply
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError
from tracklift.evaluation.pictures import id_colors, png_bytes, render_overview


@dataclass
class RenderConfig:
    """``tracklift render``: pictures of one scene coloured by instance."""

    scene: str = field(default="", metadata={"help": "scene folder URL (any supported format)"})
    labels: str = field(
        default="gt",
        metadata={
            "help": "what to colour by: 'gt', 'rgb', 'superpoints' (the scene's segments file, else "
            "ScanNet's segmentator), 'pred:<ScanNet prediction folder URL>', or "
            "'ids:<per-vertex id text file URL>' (e.g. pseudo-labels)"
        },
    )
    out: str = field(default="runs/render", metadata={"help": "output folder URL"})
    width: int = field(default=800, metadata={"help": "picture width"})
    height: int = field(default=600, metadata={"help": "picture height"})
    hide_walls: bool = field(
        default=True, metadata={"help": "hide GT wall/ceiling vertices when GT is known"}
    )


# Colour of vertices that belong to no instance in the overview pictures.
NO_INSTANCE_COLOR = (210, 210, 210)


def wall_vertices(scene) -> np.ndarray | None:
    """(N,) bool: the scene's GT wall and ceiling vertices (ScanNet raw label 1), which would hide the room
    from above; None when the scene has no ground truth."""
    if scene.load_gt is None:
        return None
    return scene.gt_instance // 1000 == 1


def per_vertex_ids(scene, labels: str) -> np.ndarray:
    """Per-vertex instance ids for a label source (see :class:`RenderConfig`)."""
    n = len(scene.vertices)
    if labels == "gt":
        gt = scene.gt_instance
        if gt is None:
            raise DataError(scene.source, "scene has no ground truth to render")
        return np.where(gt >= 1000, gt, 0)
    if labels == "superpoints":
        return scene.superpoints + 1  # ids 1..K: id 0 is drawn as "no instance"
    if labels.startswith("ids:"):
        url = labels[4:]
        from tracklift.datasets.tracklift_format import read_int_lines

        return read_int_lines(url, expected=n)
    if labels.startswith("pred:"):
        from tracklift.evaluation.scannet_io import read_predictions

        inst = read_predictions(labels[5:], scene.scene_id, n)
        return inst.to_ids()
    raise ValueError(f"unknown label source {labels!r} (use gt, rgb, superpoints, pred:URL or ids:URL)")


def render_scene(cfg: RenderConfig) -> list[str]:
    """Write ``<out>/<scene_id>_<what>.png`` and ``.ply``; returns the URLs written."""
    if not cfg.scene:
        raise ValueError("--scene is required")
    scene = open_scene(cfg.scene)
    mesh = scene.mesh
    what = cfg.labels.split(":", 1)[0]
    if cfg.labels == "rgb":
        colors = mesh.colors
    else:
        colors = id_colors(per_vertex_ids(scene, cfg.labels), none_color=NO_INSTANCE_COLOR)
    hide = wall_vertices(scene) if cfg.hide_walls else None
    img = render_overview(
        mesh, colors, cfg.width, cfg.height, hide=hide, title=f"{scene.scene_id}: {cfg.labels}"
    )
    png = storage.join(cfg.out, f"{scene.scene_id}_{what}.png")
    ply = storage.join(cfg.out, f"{scene.scene_id}_{what}.ply")
    storage.write_bytes(png, png_bytes(img))
    write_ply(ply, Mesh(mesh.vertices, colors, mesh.faces))
    return [png, ply]
