"""Pictures a person can look at: scenes coloured by instance (GT, pseudo-labels, predictions).

The renderer splats mesh vertices into a z-buffer (numpy, no GPU, no window): with ScanNet-like vertex
density (2-4 cm) and a splat radius of a pixel or two this gives a solid-looking surface. Vertices whose
normal faces away from the camera are culled, so the near walls of a room do not hide its contents.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from tracklift.datasets.scene import Intrinsics, Mesh
from tracklift.geometry.camera import fov_intrinsics, in_image, overview_pose, project
from tracklift.geometry.normals import vertex_normals


def id_colors(ids: np.ndarray, none_color=(0, 0, 0)) -> np.ndarray:
    """A stable, saturated colour per integer id, for pictures of instance or part ids.

    Args:
        ids: integer array of any shape (per-vertex GT or predictions, per-pixel id maps); 0 = none.
        none_color: RGB of id 0.

    Returns:
        uint8 array of shape ``ids.shape + (3,)``. The same id always gets the same colour (golden-ratio
        hues, hashed saturation and value), so pictures of GT, pseudo-labels and predictions agree.
    """
    ids = np.asarray(ids)
    x = ids.astype(np.float64)
    h = (x * 0.618034) % 1.0
    s = 0.5 + 0.45 * ((x * 0.377) % 1.0)
    v = 0.7 + 0.3 * ((x * 0.713) % 1.0)
    k = (h[..., None] * 6 + np.array([5.0, 3.0, 1.0])) % 6  # HSV → RGB without a loop
    rgb = v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    out = np.round(rgb * 255).astype(np.uint8)
    out[ids == 0] = none_color
    return out


def mesh_normals(mesh: Mesh) -> np.ndarray:
    """(N, 3) unit normals, area-weighted from faces; (0, 0, 1) for vertices without faces."""
    if mesh.faces is None or len(mesh.faces) == 0:
        return np.tile([0.0, 0.0, 1.0], (len(mesh.vertices), 1))
    n = vertex_normals(mesh.vertices.astype(np.float64), mesh.faces)
    n[np.linalg.norm(n, axis=1) == 0] = (0.0, 0.0, 1.0)
    return n


def overview_camera(
    vertices: np.ndarray,
    width: int = 800,
    height: int = 600,
    elevation_deg: float = 60.0,
    azimuth_deg: float = -60.0,
) -> tuple[Intrinsics, np.ndarray]:
    """An oblique bird's-eye camera (45° field of view) that frames the whole scene; returns (intrinsics,
    cam→world pose). The 1st-99th percentile box is framed, so stray vertices do not shrink the picture."""
    intr = fov_intrinsics(width, height, 45.0)
    box = np.percentile(vertices, [1, 99], axis=0)
    return intr, overview_pose(box, intr, elevation_deg, azimuth_deg)


def splat_render(
    mesh: Mesh,
    colors: np.ndarray,
    intrinsics: Intrinsics,
    pose: np.ndarray,
    radius: int = 2,
    shade: bool = True,
    hide: np.ndarray | None = None,
    background=(255, 255, 255),
) -> np.ndarray:
    """Render per-vertex colours from a camera by z-buffered splats.

    Args:
        mesh: vertices (N, 3) in world metres (faces used for normals and culling).
        colors: (N, 3) uint8 per-vertex colours.
        intrinsics, pose: camera (pose is camera→world, OpenCV axes).
        radius: splat half-size in pixels.
        shade: darken by the angle between normal and view direction (shape cues).
        hide: optional (N,) bool, vertices not drawn.

    Returns: (H, W, 3) uint8 image.
    """
    v = mesh.vertices.astype(np.float64)
    u, vv, z = project(v, intrinsics, pose)
    normals = mesh_normals(mesh)
    to_cam = pose[:3, 3] - v
    facing = np.einsum("ij,ij->i", normals, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-9)
    keep = (z > 1e-3) & (facing > -0.05)
    if hide is not None:
        keep &= ~np.asarray(hide, dtype=bool)
    u, vv, z, col, fac = u[keep], vv[keep], z[keep], colors[keep].astype(np.float64), facing[keep]
    if shade:
        col = col * (0.45 + 0.55 * np.clip(np.abs(fac), 0, 1))[:, None]
    W, H = intrinsics.width, intrinsics.height
    offs = np.arange(-radius, radius + 1)
    du, dv = np.meshgrid(offs, offs)
    pu = (u[:, None] + du.ravel()[None]).ravel()
    pv = (vv[:, None] + dv.ravel()[None]).ravel()
    depth = np.repeat(z, du.size)
    src = np.repeat(np.arange(len(u)), du.size)
    ok = in_image(pu, pv, intrinsics)
    pix, depth, src = pv[ok] * W + pu[ok], depth[ok], src[ok]
    order = np.argsort(-depth, kind="stable")  # far first: nearer writes land last and win
    img = np.empty((H * W, 3))
    img[:] = background
    img[pix[order]] = col[src[order]]
    return np.clip(img.reshape(H, W, 3), 0, 255).astype(np.uint8)


def render_overview(
    mesh: Mesh,
    colors: np.ndarray,
    width: int = 800,
    height: int = 600,
    hide: np.ndarray | None = None,
    title: str | None = None,
) -> np.ndarray:
    """Bird's-eye oblique picture of a whole scene coloured by ``colors`` (N, 3) uint8."""
    shown = mesh.vertices if hide is None or hide.all() else mesh.vertices[~hide]
    intr, pose = overview_camera(shown, width, height)
    radius = max(1, round(width / 400))
    img = splat_render(mesh, colors, intr, pose, radius=radius, hide=hide)
    if title:
        im = Image.fromarray(img)
        ImageDraw.Draw(im).text((8, 6), title, fill=(0, 0, 0))
        img = np.array(im)
    return img


def hstack_images(images: list[np.ndarray], pad: int = 6) -> np.ndarray:
    """Side by side on a white background (heights may differ)."""
    h = max(i.shape[0] for i in images)
    w = sum(i.shape[1] for i in images) + pad * (len(images) - 1)
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im if im.ndim == 3 else im[..., None]
        x += im.shape[1] + pad
    return out


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def frame_strip(
    colors: list[np.ndarray], id_maps: list[np.ndarray], labels: list[str] | None = None, alpha: float = 0.6
) -> np.ndarray:
    """Frames side by side: RGB on top, the id map blended over it below (same colour = same id).

    Args:
        colors: list of (H, W, 3) uint8 frames.
        id_maps: list of (H, W) int id maps (0 = no object, shown as the plain image).
        labels: optional caption per column.
    """
    tops, bottoms = [], []
    for k, (c, ids) in enumerate(zip(colors, id_maps)):
        col = id_colors(ids).astype(np.float64)
        blend = np.where((ids > 0)[..., None], (1 - alpha) * c + alpha * col, c * 0.5 + 127)
        top = c.copy()
        if labels:
            im = Image.fromarray(top)
            ImageDraw.Draw(im).text((4, 3), labels[k], fill=(255, 255, 255))
            top = np.array(im)
        tops.append(top)
        bottoms.append(blend.astype(np.uint8))
    row1, row2 = hstack_images(tops, pad=3), hstack_images(bottoms, pad=3)
    out = np.full((row1.shape[0] + row2.shape[0] + 3, row1.shape[1], 3), 255, np.uint8)
    out[: row1.shape[0]] = row1
    out[row1.shape[0] + 3 :] = row2
    return out
