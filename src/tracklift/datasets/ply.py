"""PLY mesh / point cloud reading and writing (binary little-endian, ScanNet's vertex layout)."""

from __future__ import annotations

import io

import numpy as np
from plyfile import PlyData, PlyElement, PlyParseError

from tracklift import storage
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError


def decode_ply(data: bytes, url: str) -> Mesh:
    """Parse PLY bytes into a :class:`Mesh` (faces optional, colours default to grey)."""
    try:
        ply = PlyData.read(io.BytesIO(data))
        v = ply["vertex"].data
        xyz = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    except (PlyParseError, KeyError, ValueError, IndexError, EOFError, TypeError) as e:
        raise DataError(url, f"not a readable PLY with x/y/z vertices ({e})") from None
    names = v.dtype.names or ()
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1).astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    faces = None
    if "face" in [e.name for e in ply.elements] and len(ply["face"].data):
        fd = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in fd.dtype.names else fd.dtype.names[0]
        try:
            faces = np.stack(fd[key]).astype(np.int32)
        except ValueError:
            raise DataError(url, "PLY faces are not all triangles") from None
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise DataError(url, "PLY faces are not all triangles")
        if faces.size and (faces.min() < 0 or faces.max() >= len(xyz)):
            raise DataError(url, "PLY face index outside the vertex list")
    if not np.all(np.isfinite(xyz)):
        raise DataError(url, "PLY has non-finite vertex coordinates")
    return Mesh(xyz, rgb, faces)


def encode_ply(mesh: Mesh, extra: dict[str, np.ndarray] | None = None) -> bytes:
    """Binary PLY with x, y, z, red, green, blue, alpha (+ extra per-vertex int/float fields) and faces."""
    n = len(mesh.vertices)
    fields = [
        ("x", "f4"),
        ("y", "f4"),
        ("z", "f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("alpha", "u1"),
    ]
    extra = extra or {}
    for name, arr in extra.items():
        fields.append((name, "i4" if np.issubdtype(arr.dtype, np.integer) else "f4"))
    vert = np.empty(n, dtype=fields)
    vert["x"], vert["y"], vert["z"] = mesh.vertices[:, 0], mesh.vertices[:, 1], mesh.vertices[:, 2]
    vert["red"], vert["green"], vert["blue"] = mesh.colors[:, 0], mesh.colors[:, 1], mesh.colors[:, 2]
    vert["alpha"] = 255
    for name, arr in extra.items():
        vert[name] = arr
    elements = [PlyElement.describe(vert, "vertex")]
    if mesh.faces is not None and len(mesh.faces):
        face = np.empty(len(mesh.faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = mesh.faces
        elements.append(PlyElement.describe(face, "face"))
    buf = io.BytesIO()
    PlyData(elements, text=False, byte_order="<").write(buf)
    return buf.getvalue()


def read_ply(url: str) -> Mesh:
    return decode_ply(storage.read_bytes(url), url)


def write_ply(url: str, mesh: Mesh, extra: dict[str, np.ndarray] | None = None) -> None:
    storage.write_bytes(url, encode_ply(mesh, extra))
