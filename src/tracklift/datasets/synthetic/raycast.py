"""Ray casting of pinhole views of a triangle mesh (trimesh + embree), and a picture renderer.

``raycast`` gives z-depth and the hit triangle per pixel; ``render_view`` draws any mesh with per-vertex
colours (GT or predicted instance colours, the scan's own colours) from any camera, e.g. the oblique
bird's-eye view of :func:`tracklift.geometry.camera.overview_pose`. Camera conventions are the scene model's: OpenCV axes (x right,
y down, z forward), poses camera→world, pixel centres at integer coordinates.

trimesh uses embree (the ``embreex`` package) when it is installed; without it, ray casting is
50-1000× slower. ``trimesh.ray.has_embree`` tells which one you have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from tracklift.datasets.scene import Intrinsics
from tracklift.geometry.camera import camera_directions
from tracklift.geometry.normals import face_normals


@dataclass
class Hits:
    """Ray-casting result of one view (flattened row-major, H * W rays).

    Attributes:
        face: (H * W,) int64 hit triangle, -1 = miss.
        depth: (H * W,) float64 z-depth in metres, 0 = miss.
        points: (H * W, 3) world hit points (undefined where missed).
        dirs: (H * W, 3) world ray directions (unnormalised, camera z-component 1).
        origin: (3,) camera centre.
    """

    face: np.ndarray
    depth: np.ndarray
    points: np.ndarray
    dirs: np.ndarray
    origin: np.ndarray


class RayCaster:
    """Ray casting against one mesh; the intersector and per-triangle data are built once and reused.

    Args:
        mesh: triangle mesh in world coordinates (metres), or (vertices (N, 3), faces (F, 3)).
    """

    def __init__(self, mesh):
        if not isinstance(mesh, trimesh.Trimesh):
            vertices, faces = mesh
            mesh = trimesh.Trimesh(
                np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False
            )
        self.mesh = mesh
        self.vertices = np.asarray(mesh.vertices, dtype=np.float64)
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        # degenerate triangles get a zero normal: their hits are discarded below
        self.face_normals = face_normals(self.vertices, self.faces)
        self.plane_offset = np.einsum("ij,ij->i", self.face_normals, self.vertices[self.faces[:, 0]])  # n · x
        self._intersector = mesh.ray

    def first_hit(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest triangle and ray parameter of each ray.

        Args:
            origins: (N, 3) ray origins, or (3,) one origin shared by all rays.
            dirs: (N, 3) ray directions (any length).

        Returns:
            face (N,) int64, -1 = miss; t (N,) float64 with hit = origin + t * dir, 0 = miss.
        """
        origins = np.asarray(origins, dtype=np.float64)
        shared = origins.ndim == 1
        face = np.asarray(
            self._intersector.intersects_first(
                np.broadcast_to(origins, dirs.shape) if shared else origins, dirs
            ),
            dtype=np.int64,
        )
        t = np.zeros(len(dirs))
        hit = np.flatnonzero(face >= 0)
        n = self.face_normals[face[hit]]
        den = np.einsum("ij,ij->i", n, dirs[hit])
        n_dot_o = n @ origins if shared else np.einsum("ij,ij->i", n, origins[hit])
        ok = np.abs(den) > 1e-12
        th = np.where(ok, (self.plane_offset[face[hit]] - n_dot_o) / np.where(ok, den, 1.0), -1.0)
        good = th > 0
        face[hit[~good]] = -1
        t[hit[good]] = th[good]
        return face, t

    def cast(self, intrinsics: Intrinsics, pose: np.ndarray, dirs_cam: np.ndarray | None = None) -> Hits:
        """Cast one ray per pixel; depth is recomputed in float64 from the hit triangle's plane.

        Args:
            intrinsics: pinhole camera.
            pose: (4, 4) camera→world.
            dirs_cam: optional precomputed :func:`~tracklift.geometry.camera.camera_directions` of ``intrinsics``.

        Returns:
            :class:`Hits`.
        """
        pose = np.asarray(pose, dtype=np.float64)
        d_cam = camera_directions(intrinsics) if dirs_cam is None else dirs_cam
        dirs = np.einsum("ij,kj->ik", d_cam, pose[:3, :3])  # = d_cam @ R.T, without BLAS threads
        origin = pose[:3, 3].copy()
        face, depth = self.first_hit(origin, dirs)
        return Hits(face, depth, origin + dirs * depth[:, None], dirs, origin)


def raycast(mesh, intrinsics: Intrinsics, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth and hit triangle of every pixel of a pinhole view.

    Args:
        mesh: ``trimesh.Trimesh`` in world coordinates (metres), or a :class:`RayCaster` (reuse one for
            many views of the same mesh: building the ray-casting structure costs about one view).
        intrinsics: pinhole camera (its width and height set the image size).
        pose: (4, 4) camera→world, OpenCV axes.

    Returns:
        depth (H, W) float32 z-depth in metres (not ray length), 0 where no surface is hit;
        face_index (H, W) int64 index into ``mesh.faces``, -1 where no surface is hit.
    """
    caster = mesh if isinstance(mesh, RayCaster) else RayCaster(mesh)
    hits = caster.cast(intrinsics, pose)
    shape = (intrinsics.height, intrinsics.width)
    return hits.depth.reshape(shape).astype(np.float32), hits.face.reshape(shape)


def render_view(
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_colors: np.ndarray,
    intrinsics: Intrinsics,
    pose: np.ndarray,
    light: bool = True,
    background=(255, 255, 255),
    cull_backfaces: bool = False,
    smooth: bool = False,
) -> np.ndarray:
    """Render a mesh with per-vertex colours from a pinhole camera.

    Args:
        vertices: (N, 3) world points, metres.
        faces: (F, 3) triangle vertex indices.
        vertex_colors: (N, 3) uint8 (or float in [0, 1]) colours, e.g. the scan's colours or a colour per
            GT / predicted instance.
        intrinsics: output camera (its width × height is the image size).
        pose: (4, 4) camera→world, OpenCV axes (see :mod:`tracklift.geometry.camera`: ``look_at``, ``overview_pose``).
        light: shade by a headlight (Lambertian, so shape stays readable in flat id colours).
        background: RGB of pixels that hit nothing.
        cull_backfaces: see through triangles facing away from the camera ("dollhouse" view: from above
            and outside a room, the near walls vanish and the inside shows). Needs outward-facing normals,
            as in ScanNet and the synthetic scenes.
        smooth: interpolate colours across triangles; by default each pixel takes the colour of the
            triangle corner nearest to it, which keeps id colours crisp.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    colors = np.asarray(vertex_colors)
    colors = colors.astype(np.float64) / 255.0 if colors.dtype == np.uint8 else colors.astype(np.float64)
    caster = RayCaster((vertices, faces))
    hits = caster.cast(intrinsics, pose)
    if cull_backfaces:
        for _ in range(8):  # step through back-facing triangles, a few layers deep
            hit = np.flatnonzero(hits.face >= 0)
            back = hit[np.einsum("ij,ij->i", caster.face_normals[hits.face[hit]], hits.dirs[hit]) > 0]
            if len(back) == 0:
                break
            start = hits.points[back] + hits.dirs[back] * 1e-4
            face, t = caster.first_hit(start, hits.dirs[back])
            hits.face[back] = face
            hits.points[back] = start + hits.dirs[back] * t[:, None]
    hit = np.flatnonzero(hits.face >= 0)
    tri = faces[hits.face[hit]]
    bary = trimesh.triangles.points_to_barycentric(vertices[tri], hits.points[hit])
    if smooth:
        rgb = np.einsum("ij,ijk->ik", bary, colors[tri])
    else:
        rgb = colors[tri[np.arange(len(tri)), np.argmax(bary, axis=1)]]
    if light:
        n = caster.face_normals[hits.face[hit]]
        unit = hits.dirs[hit] / np.linalg.norm(hits.dirs[hit], axis=1, keepdims=True)
        rgb = rgb * (0.35 + 0.65 * np.abs(np.einsum("ij,ij->i", n, unit)))[:, None]
    image = np.empty((len(hits.face), 3))
    image[:] = np.asarray(background, dtype=np.float64) / 255.0
    image[hit] = rgb
    out = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return out.reshape(intrinsics.height, intrinsics.width, 3)
