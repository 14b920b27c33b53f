"""Pinhole cameras: intrinsics, poses, projection of world points and back-projection of depth pixels.

Conventions (every stage uses these; readers convert to them):
  - lengths in metres; depth 0 marks an invalid pixel;
  - camera axes are OpenCV's: x right, y down, z forward; a ``pose`` is the (4, 4) camera→world matrix
    ``[R | t]``, so a world point ``p`` is ``R^T (p - t)`` in the camera;
  - a camera point ``(x, y, z)`` lands at the continuous image coordinate ``u = fx x/z + cx``,
    ``v = fy y/z + cy``, in pixels, with **pixel centres at integer coordinates** (OpenCV's convention):
    pixel ``(row, col)`` covers ``[col - 0.5, col + 0.5) × [row - 0.5, row + 0.5)``.

The pixel-rounding rule, used by every projection in tracklift:
    ``col = floor(u + 0.5)``, ``row = floor(v + 0.5)``  (:func:`pixel_index`).
A coordinate exactly halfway between two pixel centres belongs to the right / lower pixel. Rounding
half to even (``np.rint``) would instead alternate between the left and right pixel from one boundary to
the next, which no camera does; the two rules differ only at exact halves.

Back-projection inverts it: pixel ``(row, col)`` with depth ``z`` is the camera point
``((col - cx) / fx * z, (row - cy) / fy * z, z)`` (:func:`backproject_pixels`), so projecting a
back-projected pixel returns that pixel.

Only numpy is imported here; :func:`project_batch` works on torch tensors through their methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "Intrinsics",
    "backproject_depth",
    "backproject_pixels",
    "camera_directions",
    "centred_intrinsics",
    "depth_pixels",
    "fov_intrinsics",
    "in_image",
    "look_at",
    "overview_pose",
    "pixel_index",
    "project",
    "project_batch",
    "to_world",
    "world_to_camera",
]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the depth image, in pixels (principal point with pixel centres at integers)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> Intrinsics:
        """From a 3×3 or 4×4 matrix (ScanNet's ``intrinsic_depth.txt`` is 4×4)."""
        K = np.asarray(K, dtype=np.float64)
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera at another image size.

        Scales ``cx, cy`` by the size ratio, i.e. treats the principal point as measured from the image
        corner; under the pixel-centre convention of this module the exact rescaling would be
        ``(cx + 0.5) * s - 0.5`` (a difference of ``0.5 (1 - s)`` pixels). Kept as it is: the ScanNet /
        ScanNet++ readers and writers use it in both directions, so a written scan reads back unchanged.
        """
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, int(width), int(height))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}

    @classmethod
    def from_dict(cls, d: dict) -> Intrinsics:
        return cls(
            float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]), int(d["height"])
        )


# -- intrinsics and poses -------------------------------------------------------------------------------


def centred_intrinsics(width: int, height: int, focal: float = 0.9) -> Intrinsics:
    """A centred pinhole camera with ``fx = fy = focal * width`` (0.9 ≈ a Kinect / ScanNet depth camera).

    Used for synthetic scans and when a caller does not know the camera (surface normals need only
    approximate intrinsics). The principal point is the image centre, ``((W - 1) / 2, (H - 1) / 2)``.
    """
    f = float(focal) * width
    return Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))


def fov_intrinsics(width: int, height: int, fov_deg: float) -> Intrinsics:
    """A centred pinhole camera whose field of view across the image's shorter side is ``fov_deg``."""
    f = (min(width, height) / 2) / math.tan(math.radians(fov_deg) / 2)
    return Intrinsics(f, f, width / 2 - 0.5, height / 2 - 0.5, int(width), int(height))


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) camera→world pose at ``eye`` looking at ``target`` with image-up close to ``up`` (z-up world).

    Args:
        eye: (3,) camera centre, metres.
        target: (3,) point to look at.
        up: (3,) world direction that should point up in the image.

    Returns:
        (4, 4) float64 pose, OpenCV camera axes.
    """
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along ``up``: any image x will do
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


def overview_pose(
    vertices: np.ndarray,
    intrinsics: Intrinsics,
    elevation: float = 55.0,
    azimuth: float = -60.0,
    margin: float = 1.05,
) -> np.ndarray:
    """An oblique bird's-eye camera that sees the whole point set (z-up world).

    Args:
        vertices: (N, 3) points to frame, metres.
        intrinsics: the camera the pose is for (its field of view sets the distance).
        elevation: degrees above the horizon of the viewing direction (90 = straight down).
        azimuth: degrees about +z of the camera position around the centre (0 = on the +x side).
        margin: extra room around the bounding box (1 = tight).

    Returns:
        (4, 4) camera→world pose looking at the centre of the points' bounding box.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2
    el, az = math.radians(elevation), math.radians(azimuth)
    back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    R = look_at(centre + back, centre)[:3, :3]
    # the bounding box corners in a camera at the centre; move back until every corner is in view
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = (corners - centre) @ R
    tan_x = (intrinsics.width / 2) / intrinsics.fx / margin
    tan_y = (intrinsics.height / 2) / intrinsics.fy / margin
    dist = max(
        np.max(np.abs(cam[:, 0]) / tan_x - cam[:, 2]), np.max(np.abs(cam[:, 1]) / tan_y - cam[:, 2]), 1e-3
    )
    return look_at(centre + dist * back, centre)


def world_to_camera(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(N, 3) float64 camera coordinates ``R^T (p - t)`` of (N, 3) world points, pose camera→world."""
    pose = np.asarray(pose, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - pose[:3, 3]) @ pose[:3, :3]


def to_world(points: np.ndarray, pose: np.ndarray | None) -> np.ndarray:
    """Camera points (..., 3) to world, computed in the points' dtype; ``pose=None`` returns them as given."""
    if pose is None:
        return points
    pose = np.asarray(pose, dtype=points.dtype)
    return points @ pose[:3, :3].T + pose[:3, 3]


# -- projection -----------------------------------------------------------------------------------------


def pixel_index(coord: np.ndarray) -> np.ndarray:
    """The pixel-rounding rule: (...) int64 ``floor(coord + 0.5)`` of continuous image coordinates.

    Pixel centres are at integers, so pixel ``i`` covers ``[i - 0.5, i + 0.5)``.
    """
    return np.floor(np.asarray(coord) + 0.5).astype(np.int64)


def in_image(col: np.ndarray, row: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(N,) bool: pixel indices inside the ``width × height`` image."""
    return (col >= 0) & (col < intr.width) & (row >= 0) & (row < intr.height)


def project(
    points: np.ndarray, intr: Intrinsics, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into one camera (float64 arithmetic).

    Args:
        points: (N, 3) world points, metres.
        intr: intrinsics of the target image.
        pose: (4, 4) camera→world of the target frame.

    Returns:
        ``(col, row, z)``: (N,) int64 pixel column and row (:func:`pixel_index`) and (N,) float32 depth in
        the camera (metres; ≤ 0 behind the camera, where col/row are meaningless). Pixels may lie outside
        the image: callers test the bounds (:func:`in_image`).
    """
    cam = world_to_camera(points, pose)
    z = cam[:, 2]
    safe = np.where(z > 1e-6, z, 1.0)
    col = pixel_index(cam[:, 0] / safe * intr.fx + intr.cx)
    row = pixel_index(cam[:, 1] / safe * intr.fy + intr.cy)
    return col, row, z.astype(np.float32)


def project_batch(points: torch.Tensor, poses: torch.Tensor, intrinsics: Intrinsics):
    """Project world points into a batch of cameras at once (torch, float32; used by the lifting stage).

    Same geometry and rounding rule as :func:`project`, written with tensor methods only so that this
    module does not import torch.

    Args:
        points: (N, 3) float32 world coordinates, metres.
        poses: (B, 4, 4) camera→world.
        intrinsics: the depth camera (image size ``width`` × ``height``).

    Returns:
        ``(rows, cols, z, inside)``: (B, N) int64 pixel row and column (clamped into the image where
        ``inside`` is False), (B, N) float32 camera depth in metres, (B, N) bool in front of the camera
        and inside the image.
    """
    poses = poses.float()
    R, t = poses[:, :3, :3], poses[:, :3, 3]
    # x_cam = R^T (p - t) for all frames at once: (B, N, 3)
    cam = (points.unsqueeze(0) - t.unsqueeze(1)) @ R
    z = cam[..., 2]
    front = z > 1e-6
    zs = z.where(front, 1.0)
    u = cam[..., 0] / zs * intrinsics.fx + intrinsics.cx
    v = cam[..., 1] / zs * intrinsics.fy + intrinsics.cy
    cols = (u + 0.5).floor()  # pixel_index, the torch way
    rows = (v + 0.5).floor()
    inside = front & (cols >= 0) & (cols < intrinsics.width) & (rows >= 0) & (rows < intrinsics.height)
    cols = cols.clamp(0, intrinsics.width - 1).long()
    rows = rows.clamp(0, intrinsics.height - 1).long()
    return rows, cols, z, inside


# -- back-projection ------------------------------------------------------------------------------------


def _normalised(pixels: np.ndarray, c: float, f: float, dtype) -> np.ndarray:
    """``(pixels - c) / f`` in ``dtype``: the camera-plane coordinate (x/z or y/z) of pixel centres."""
    dt = np.dtype(dtype).type
    return (np.asarray(pixels).astype(dtype) - dt(c)) / dt(f)


def camera_directions(intrinsics: Intrinsics) -> np.ndarray:
    """(H * W, 3) float64 ray directions through the pixel centres in the camera frame, with z = 1 (so
    a ray parameter is a z-depth), row-major."""
    v, u = np.mgrid[0 : intrinsics.height, 0 : intrinsics.width]
    x = _normalised(u.ravel(), intrinsics.cx, intrinsics.fx, np.float64)
    y = _normalised(v.ravel(), intrinsics.cy, intrinsics.fy, np.float64)
    return np.stack([x, y, np.ones_like(x)], -1)


def depth_pixels(
    depth: np.ndarray,
    mask: np.ndarray | None = None,
    max_depth: float | None = None,
    max_points: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels with valid depth, row-major, optionally evenly subsampled.

    Args:
        depth: (H, W) metres, 0 = invalid.
        mask: optional (H, W) bool restricting the pixels.
        max_depth: leave out pixels farther than this, metres.
        max_points: keep at most this many, evenly spread over the row-major order.

    Returns:
        ``(rows, cols)``: (P,) int64 each.
    """
    valid = depth > 0
    if mask is not None:
        valid = valid & mask
    if max_depth is not None:
        valid = valid & (depth <= max_depth)
    rows, cols = np.nonzero(valid)
    if max_points is not None and len(rows) > max_points:
        pick = np.linspace(0, len(rows) - 1, max_points).astype(np.int64)
        rows, cols = rows[pick], cols[pick]
    return rows, cols


def backproject_pixels(
    rows: np.ndarray, cols: np.ndarray, z: np.ndarray, intr: Intrinsics, pose: np.ndarray | None = None
) -> np.ndarray:
    """Lift pixels with known depth to 3D, computed in ``z``'s float dtype.

    Args:
        rows, cols: (P,) integer pixel indices.
        z: (P,) float depth of each pixel, metres (float32 or float64; the result has this dtype).
        intr: intrinsics of the image.
        pose: optional (4, 4) camera→world; without it points stay in the camera frame.

    Returns:
        (P, 3) points in metres.
    """
    x = _normalised(cols, intr.cx, intr.fx, z.dtype) * z
    y = _normalised(rows, intr.cy, intr.fy, z.dtype) * z
    return to_world(np.stack([x, y, z], axis=1), pose)


def backproject_depth(depth: np.ndarray, intr: Intrinsics, pose: np.ndarray | None = None) -> np.ndarray:
    """Lift every pixel of a depth image to 3D: an organised (H, W, 3) point image.

    Args:
        depth: (H, W) metres (0 = invalid; those pixels give the point (0, 0, 0) in camera frame).
        intr: intrinsics of this image size.
        pose: optional (4, 4) camera→world; without it points stay in the camera frame.

    Returns:
        (H, W, 3) float32 points in metres.
    """
    h, w = depth.shape
    u = _normalised(np.arange(w), intr.cx, intr.fx, np.float32)
    v = _normalised(np.arange(h), intr.cy, intr.fy, np.float32)
    z = depth.astype(np.float32)
    return to_world(np.stack([z * u[None, :], z * v[:, None], z], axis=-1), pose)
