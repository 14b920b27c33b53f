"""Simulated RGB-D sensor: colour from albedo and light, depth with Kinect-like noise and holes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tracklift.datasets.synthetic import appearance
from tracklift.datasets.synthetic.config import SynthConfig
from tracklift.datasets.synthetic.meshing import SceneMesh
from tracklift.datasets.synthetic.raycast import Hits

MISS_COLOR = np.array([0.86, 0.86, 0.88])  # what the camera sees above the walls (a pale ceiling)


def depth_sigma(z: np.ndarray) -> np.ndarray:
    """Axial depth noise standard deviation in metres at z-depth ``z`` (Kinect v1 fit, grows like z²)."""
    return 0.0012 + 0.0019 * (z - 0.4) ** 2


def simulate_color(
    hits: Hits,
    face_normals: np.ndarray,
    mesh: SceneMesh,
    light: np.ndarray,
    cfg: SynthConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Colour image of a view.

    Args:
        hits: the view's ray-casting result.
        face_normals: (F, 3) unit normals of the scene's triangles.
        mesh: the scene (part table, face → part).
        light: the scene's :class:`~.appearance.Lighting` (or a (3,) light position).
        cfg: image size, colour noise, texture strength.
        rng: per-frame random generator.

    Returns:
        (H, W, 3) uint8 RGB and the (H * W,) |cos| between each ray and the surface normal (0 at misses).
    """
    hit = np.flatnonzero(hits.face >= 0)
    faces = hits.face[hit]
    dirs = hits.dirs[hit]
    n = face_normals[faces]
    cos = np.einsum("ij,ij->i", n, dirs) / np.sqrt(np.einsum("ij,ij->i", dirs, dirs))
    n *= -np.sign(cos + 1e-12)[:, None]  # the side facing the camera
    pts = hits.points[hit]
    shade = appearance.lambert(pts, n, light)
    rgb = appearance.albedo(pts, mesh.face_part[faces], mesh.parts, cfg.texture / 0.08) * shade
    gain = 255.0 * (1.0 + rng.normal(0, 0.03))  # auto exposure drifts a little between frames
    img = np.empty((len(hits.face), 3), dtype=np.float32)
    img[:] = MISS_COLOR * 0.8 * gain
    img[hit] = rgb * gain
    if cfg.color_noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(cfg.color_noise)
    np.clip(img, 0.0, 255.0, out=img)
    abs_cos = np.zeros(len(hits.face))
    abs_cos[hit] = np.abs(cos)
    return np.rint(img).astype(np.uint8).reshape(cfg.height, cfg.width, 3), abs_cos


def simulate_depth(
    depth: np.ndarray, abs_cos: np.ndarray, cfg: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    """Noisy depth with holes from the exact z-depth.

    Holes: beyond ``max_depth`` or nearer than ``min_depth``; at grazing angles (probability rising to 1
    beyond ``grazing_angle``); on the far side of depth discontinuities (``edge_dropout``, the sensor's
    shadow); and random blobs covering about ``hole_prob`` of the image.

    Args:
        depth: (H, W) exact z-depth in metres, 0 = nothing hit.
        abs_cos: (H, W) |cos| of the angle between ray and surface normal.
        cfg: noise settings.
        rng: per-frame random generator.

    Returns:
        (H, W) float32 depth in metres, 0 = invalid.
    """
    h, w = depth.shape
    valid = depth > 0
    noisy = depth + cfg.depth_noise * depth_sigma(depth) * rng.standard_normal(depth.shape)
    noisy = np.round(noisy * 1000.0) / 1000.0  # millimetre quantisation, as in 16-bit depth images
    drop = ~valid | (depth > cfg.max_depth) | (depth < cfg.min_depth)
    # grazing angles: always lost beyond the limit, sometimes in the 10 degrees before it
    angle = np.degrees(np.arccos(np.clip(abs_cos, 0.0, 1.0)))
    ramp = np.clip((angle - (cfg.grazing_angle - 10.0)) / 10.0, 0.0, 1.0)
    # dropouts come in small clumps, not salt and pepper: compare with a smooth random field
    clumps = _smooth_field(rng, h, w, 4)
    drop |= valid & (clumps < ramp)
    if cfg.edge_dropout > 0:
        # far side of a jump of more than 5 % of the depth: the projector's shadow
        far = np.zeros_like(valid)
        dy, dx = depth[1:, :] - depth[:-1, :], depth[:, 1:] - depth[:, :-1]
        far[1:, :] |= (dy > 0.05 * depth[1:, :]) & (depth[:-1, :] > 0)
        far[:-1, :] |= (-dy > 0.05 * depth[:-1, :]) & (depth[1:, :] > 0)
        far[:, 1:] |= (dx > 0.05 * depth[:, 1:]) & (depth[:, :-1] > 0)
        far[:, :-1] |= (-dx > 0.05 * depth[:, :-1]) & (depth[:, 1:] > 0)
        far = ndimage.binary_dilation(far, iterations=1) & valid
        drop |= far & (clumps < cfg.edge_dropout)
    if cfg.hole_prob > 0:
        # blobs: threshold smooth noise at the level that leaves ``hole_prob`` of the pixels out
        smooth = _smooth_field(rng, h, w, 12)
        thresh = np.quantile(smooth, 1.0 - cfg.hole_prob)
        drop |= smooth > thresh
        drop |= rng.random(depth.shape) < cfg.hole_prob * 0.2  # and scattered single pixels
    out = np.where(drop, 0.0, noisy).astype(np.float32)
    return np.maximum(out, 0.0)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """(h, w) random field in [0, 1], bilinearly interpolated from uniform noise every ``cell`` pixels."""
    coarse = rng.random((max(2, h // cell + 1), max(2, w // cell + 1)))
    field = ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1)[:h, :w]
    return np.pad(field, ((0, h - field.shape[0]), (0, w - field.shape[1])), mode="edge")
