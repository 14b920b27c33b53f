"""COLMAP text models (``cameras.txt``, ``images.txt``): camera→world poses and pinhole intrinsics.

``images.txt`` stores world→camera rotations as quaternions ``QW QX QY QZ`` and translations, OpenCV camera
axes, two lines per image (pose, then 2D points). Distortion parameters are read past and ignored.
"""

from __future__ import annotations

import numpy as np

from tracklift import storage
from tracklift.errors import DataError


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    """(4,) quaternion ``w, x, y, z`` (COLMAP order) → (3, 3) rotation."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rot_to_quat(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation → (4,) unit quaternion ``w, x, y, z`` with w >= 0 (branch on the largest term)."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def read_colmap_cameras(url: str) -> dict[int, tuple[str, int, int, np.ndarray]]:
    """``cameras.txt`` → ``{camera_id: (model, width, height, K (3, 3))}`` (distortion ignored)."""
    out = {}
    for n, line in enumerate(storage.read_text(url).splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            cid, model, w, h, params = (
                int(parts[0]),
                parts[1],
                int(parts[2]),
                int(parts[3]),
                list(map(float, parts[4:])),
            )
        except (ValueError, IndexError):
            raise DataError(url, f"line {n}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...") from None
        if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
            fx = fy = params[0]
            cx, cy = params[1], params[2]
        elif model in ("PINHOLE", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "FOV", "THIN_PRISM_FISHEYE"):
            fx, fy, cx, cy = params[:4]
        else:
            raise DataError(url, f"line {n}: unsupported camera model {model}")
        out[cid] = (model, w, h, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]))
    return out


def read_colmap_images(url: str) -> dict[str, tuple[int, np.ndarray]]:
    """``images.txt`` → ``{image name: (camera_id, camera→world (4, 4))}`` (COLMAP stores world→camera)."""
    lines = [ln for ln in storage.read_text(url).splitlines() if not ln.startswith("#")]
    out = {}
    # Two lines per image: the pose line, then the 2D points (possibly empty).
    for n in range(0, len(lines), 2):
        parts = lines[n].split()
        if not parts:
            continue
        try:
            q, t, cid, name = (
                np.array(parts[1:5], float),
                np.array(parts[5:8], float),
                int(parts[8]),
                parts[9],
            )
        except (ValueError, IndexError):
            raise DataError(url, f"bad image line {lines[n][:80]!r}") from None
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = quat_to_rot(q), t
        out[name] = (cid, np.linalg.inv(w2c))
    return out


def write_colmap(dir_url: str, K: np.ndarray, width: int, height: int, poses: dict[str, np.ndarray]) -> None:
    """Write ``cameras.txt`` (one PINHOLE camera) and ``images.txt`` (world→camera) for camera→world poses."""
    storage.write_text(
        storage.join(dir_url, "cameras.txt"),
        "# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n"
        f"1 PINHOLE {width} {height} "
        + " ".join(repr(float(K[i, j])) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
        + "\n",
    )
    rows = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", "# POINTS2D[] as (X, Y, POINT3D_ID)"]
    for i, (name, c2w) in enumerate(poses.items(), start=1):
        w2c = np.linalg.inv(c2w)
        q, t = rot_to_quat(w2c[:3, :3]), w2c[:3, 3]
        rows += [" ".join([str(i), *(repr(float(x)) for x in (*q, *t)), "1", name]), ""]
    storage.write_text(storage.join(dir_url, "images.txt"), "\n".join(rows) + "\n")
