"""Plain point clouds and meshes as users have them: PLY, PCD, NPY, NPZ files, folders and S3 prefixes.

:func:`read_point_cloud` reads one file into a :class:`~tracklift.datasets.scene.Mesh` (faces only for a
PLY mesh), chosen by the file's suffix:

``.ply``  any PLY :mod:`tracklift.datasets.ply` reads (ASCII, binary little/big endian, float or double
          coordinates, uchar or float colours, with or without triangles). A mesh whose faces cannot be
          read as triangles (quads, mixed polygons) is read as its vertices, with a warning.
``.pcd``  PCL's format, ``DATA ascii`` or ``binary`` (``binary_compressed`` is refused with a clear
          message), fields ``x y z`` and optionally ``rgb`` / ``rgba`` packed in one float or uint32.
          Points with NaN coordinates (PCL's "no return" in organised clouds) are dropped.
``.npy``  an (N, 3) array of coordinates, or (N, 6) with colours in the last three columns.
``.npz``  coordinates under ``points`` / ``coord`` / ``xyz``, optional colours under ``colors`` / ``color``
          / ``rgb``.

Colours may be uint8 / integers in 0..255, floats in [0, 1] or floats in 0..255; they come back as uint8.
Missing colours are mid-grey (128), as everywhere in tracklift.

Nothing a header declares is trusted: a file is refused before it is read when it is larger than
``max_points`` rows could need, a PLY's or PCD's row count must fit in the bytes that follow its header,
and an ``.npy`` header (alone or inside an NPZ) must describe exactly the bytes its member holds; only then
is anything allocated. Pickled arrays are never loaded. Every problem is a
:class:`~tracklift.errors.DataError` naming the file.

:func:`list_point_clouds` expands a folder (local or an ``s3://`` prefix) into its supported files.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
import zipfile
import zlib

import numpy as np

from tracklift import storage
from tracklift.datasets.ply import decode_ply
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".ply", ".pcd", ".npy", ".npz")
# Far above real scans (a ScanNet mesh has 0.1-1.5M vertices, a dense terrestrial scan tens of millions).
DEFAULT_MAX_POINTS = 50_000_000
# The largest plausible encoding of one point: an ASCII row of doubles with normals, colours and more.
# Only bounds the file size up front; the exact checks come after.
_MAX_BYTES_PER_POINT = 512
POINT_KEYS = ("points", "coord", "xyz")
COLOR_KEYS = ("colors", "color", "rgb")
_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}
_PCD_TYPES |= {("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_PCD_KEYWORDS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS")
# what zipfile / zlib / numpy raise on corrupt, encrypted or exotic archives and members
_ZIP_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)


def suffix_of(url: str) -> str:
    """Lower-case suffix of a file name (``"scan.PLY"`` → ``".ply"``), ``""`` without one."""
    name = storage.basename(url)
    return name[name.rfind(".") :].lower() if "." in name else ""


def cloud_name(url: str) -> str:
    """The file name without its suffix: the scene id of the outputs (``s3://b/rooms/kitchen.ply`` →
    ``kitchen``)."""
    name = storage.basename(url)
    return name[: name.rfind(".")] if "." in name else name


def list_point_clouds(url: str) -> list[str]:
    """The point-cloud files a ``--input`` names: the file itself, or a folder's / S3 prefix's supported
    files (by suffix, not recursive, sorted by name).

    Raises:
        DataError: nothing at ``url``, an unsupported file suffix, or a folder with no supported file.
    """
    if storage.isdir(url):
        names = [n for n in storage.listdir(url) if suffix_of(n) in SUFFIXES]
        if not names:
            raise DataError(url, f"folder holds no point-cloud files ({', '.join(SUFFIXES)})")
        return [storage.join(url, n) for n in names]
    if not storage.exists(url):
        raise DataError(url, "file or folder not found")
    if suffix_of(url) not in SUFFIXES:
        raise DataError(url, f"unsupported file type {suffix_of(url)!r} (supported: {', '.join(SUFFIXES)})")
    return [url]


def read_point_cloud(url: str, max_points: int = DEFAULT_MAX_POINTS) -> Mesh:
    """Read one point cloud or mesh (format by suffix, see the module docstring).

    Args:
        url: a local path or fsspec URL (``s3://``, ``memory://``).
        max_points: no file may hold (or declare) more points.

    Returns:
        :class:`Mesh`: vertices (N, 3) float32 metres, colors (N, 3) uint8, faces (F, 3) int32 for a PLY
        mesh with triangles, else None. N >= 1.

    Raises:
        DataError: unsupported suffix, missing or oversized file, or a malformed file (naming the problem).
    """
    suffix = suffix_of(url)
    if suffix not in SUFFIXES:
        raise DataError(url, f"unsupported file type {suffix!r} (supported: {', '.join(SUFFIXES)})")
    _check_file_size(url, max_points)
    data = storage.read_bytes(url)
    if suffix == ".ply":
        mesh = _read_ply(data, url, max_points)
    elif suffix == ".pcd":
        mesh = decode_pcd(data, url, max_points)
    elif suffix == ".npy":
        mesh = decode_npy_cloud(data, url, max_points)
    else:
        mesh = decode_npz_cloud(data, url, max_points)
    if len(mesh.vertices) == 0:
        raise DataError(url, "no points")
    return mesh


def _check_file_size(url: str, max_points: int) -> None:
    fs, path = storage.filesystem(url)
    try:
        size = fs.size(path)
    except FileNotFoundError:
        raise DataError(url, "file not found") from None
    limit = max_points * _MAX_BYTES_PER_POINT + (1 << 20)
    if size is not None and size > limit:
        raise DataError(url, f"file is {size} bytes, more than {max_points} points can need ({limit} bytes)")


def _read_ply(data: bytes, url: str, max_points: int) -> Mesh:
    try:
        return decode_ply(data, url, faces=True, max_rows=max_points)
    except DataError as e:
        # Quads and mixed polygons are common in user meshes: the vertices are still a usable cloud.
        if "faces are not all triangles" not in e.problem and "lists of different lengths" not in e.problem:
            raise
        log.warning("%s: %s; reading its vertices as a point cloud", url, e.problem)
        return decode_ply(data, url, faces=False, max_rows=max_points)


# -------------------------------------------------------------------------------------------- colours


def colors_uint8(colors: np.ndarray | None, n: int, url: str) -> np.ndarray:
    """Normalise user colours to (n, 3) uint8.

    Args:
        colors: (n, 3) uint8 / integers in 0..255, floats in [0, 1] (scaled by 255) or floats in 0..255;
            None for mid-grey.
        n: number of points.
        url: names the file in errors.

    Raises:
        DataError: wrong shape, non-numeric, non-finite or out-of-range values.
    """
    if colors is None:
        return np.full((n, 3), 128, dtype=np.uint8)
    c = np.asarray(colors)
    if c.shape != (n, 3):
        raise DataError(url, f"colours must have shape ({n}, 3) like the points, got {c.shape}")
    if c.dtype == np.uint8:
        return c
    if c.dtype.kind not in "iuf":
        raise DataError(url, f"colours must be numbers, got dtype {c.dtype}")
    if c.dtype.kind == "f" and not np.isfinite(c).all():
        raise DataError(url, "colours hold NaN or infinite values")
    if c.size and (c.min() < 0 or c.max() > 255):
        raise DataError(url, "colours must lie in 0..255 (or in [0, 1] as floats)")
    if c.dtype.kind == "f" and c.size and c.max() <= 1.0:
        c = c * 255.0
    return np.round(c).astype(np.uint8)


def _points(arr: np.ndarray, url: str, what: str) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise DataError(url, f"{what} must be numbers, got dtype {arr.dtype}")
    pts = arr.astype(np.float32)
    bad = int((~np.isfinite(pts).all(axis=1)).sum()) if pts.size else 0
    if bad:
        raise DataError(url, f"{bad} of {len(pts)} points have NaN or infinite coordinates")
    return pts


# ------------------------------------------------------------------------------------------------ PCD


def _pcd_header(data: bytes, url: str) -> tuple[dict[str, list[str]], str, int]:
    """``(keyword → values, data kind, offset of the first data byte)``; the header ends at ``DATA``."""
    fields: dict[str, list[str]] = {}
    pos = 0
    for _ in range(64):  # a PCD header is about a dozen lines; comments may come between them
        nl = data.find(b"\n", pos, pos + 65536)
        if nl < 0:
            raise DataError(url, "PCD header has no DATA line (truncated or not a PCD file)")
        line = data[pos:nl].decode("latin-1").strip()
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        if key == "DATA":
            if len(values) != 1:
                raise DataError(url, f"malformed PCD line {line[:80]!r}")
            return fields, values[0].lower(), pos
        if key not in _PCD_KEYWORDS:
            raise DataError(url, f"not a PCD header line: {line[:80]!r}")
        fields[key] = values
    raise DataError(url, "PCD header has no DATA line within 64 lines")


def _pcd_layout(fields: dict[str, list[str]], url: str) -> tuple[np.dtype, int]:
    """The dtype of one binary row (one field per PCD field, counts > 1 as subarrays) and the point count."""
    names = fields.get("FIELDS")
    if not names:
        raise DataError(url, "PCD header has no FIELDS line")
    sizes = fields.get("SIZE", [])
    types = fields.get("TYPE", [])
    counts = fields.get("COUNT", ["1"] * len(names))
    if not (len(sizes) == len(types) == len(counts) == len(names)):
        raise DataError(url, "PCD FIELDS, SIZE, TYPE and COUNT lines have different lengths")
    layout = []
    try:
        for i, (name, size, kind, count) in enumerate(zip(names, sizes, types, counts)):
            n = int(count)
            if not 1 <= n <= 4096:
                raise ValueError(f"field {name!r} has COUNT {n}")
            dt = _PCD_TYPES[(kind.upper(), int(size))]
            # "_" is PCL's padding field, and names may repeat: give each a unique key
            key = name if name != "_" and name not in [f[0] for f in layout] else f"_{i}"
            layout.append((key, dt) if n == 1 else (key, dt, (n,)))
        points = (
            int(fields["POINTS"][0])
            if "POINTS" in fields
            else int(fields["WIDTH"][0]) * int(fields.get("HEIGHT", ["1"])[0])
        )
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(url, f"malformed PCD header ({type(e).__name__}: {e})") from None
    if points < 0:
        raise DataError(url, f"PCD header declares {points} points")
    return np.dtype(layout), points


def decode_pcd(data: bytes, url: str, max_points: int = DEFAULT_MAX_POINTS) -> Mesh:
    """PCD bytes (``DATA ascii`` or ``binary``) → :class:`Mesh` without faces.

    Raises:
        DataError: malformed header, unknown field types, ``binary_compressed``, a point count over
            ``max_points`` or larger than the data, no x/y/z fields, non-numeric ASCII rows.
    """
    fields, kind, start = _pcd_header(data, url)
    row, n = _pcd_layout(fields, url)
    if n > max_points:
        raise DataError(url, f"PCD declares {n} points, the limit is {max_points}")
    if not {"x", "y", "z"} <= set(row.names):
        raise DataError(url, f"PCD has no x, y, z fields (fields: {' '.join(fields['FIELDS'])})")
    if any(row[c].shape for c in ("x", "y", "z")):
        raise DataError(url, "PCD x, y, z fields must have COUNT 1")
    if kind == "binary":
        if n * row.itemsize > len(data) - start:
            raise DataError(
                url,
                f"PCD header declares {n} points ({row.itemsize} bytes each) but only {len(data) - start} "
                "bytes follow (truncated, or a forged count)",
            )
        table = np.frombuffer(data, row, n, start)
    elif kind == "ascii":
        table = _pcd_ascii(data, start, row, n, url)
    elif kind == "binary_compressed":
        raise DataError(url, "PCD 'DATA binary_compressed' is not supported: save it as binary or ascii")
    else:
        raise DataError(url, f"unknown PCD DATA kind {kind!r}")
    xyz = np.stack([table["x"], table["y"], table["z"]], axis=1).astype(np.float32)
    colors = None
    packed = next((c for c in ("rgb", "rgba") if c in row.names and table[c].ndim == 1), None)
    if packed is not None:
        # PCL packs 0x00RRGGBB (or AARRGGBB) into 4 bytes, stored as a float or an uint32: the bits count
        values = table[packed]
        bits = (
            values.astype(np.float32).view(np.uint32)
            if values.dtype.kind == "f"
            else values.astype(np.uint32)
        )
        colors = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)
    keep = np.isfinite(xyz).all(axis=1)
    if not keep.all():
        log.info("%s: dropped %d of %d points with NaN coordinates", url, int((~keep).sum()), n)
        xyz = xyz[keep]
        colors = None if colors is None else colors[keep]
    return Mesh(xyz, colors_uint8(colors, len(xyz), url), None)


def _pcd_ascii(data: bytes, start: int, row: np.dtype, n: int, url: str) -> np.ndarray:
    """Parse ``n`` ASCII rows into a structured array of ``row`` (values read as float64, then cast)."""
    width = sum(math.prod(row[name].shape) for name in row.names)
    lines = data.count(b"\n", start) + (0 if data.endswith(b"\n") or len(data) == start else 1)
    if n > lines:
        raise DataError(url, f"PCD header declares {n} points but only {lines} lines follow")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(data[start:], dtype=np.float64, sep=" ")
    except (ValueError, DeprecationWarning):
        raise DataError(url, "PCD rows hold something that is not a number") from None
    if flat.size != n * width:
        raise DataError(url, f"PCD rows hold {flat.size} values, expected {n} points × {width} values")
    table = np.empty(n, row)
    values = flat.reshape(n, width)
    col = 0
    for name in row.names:
        k = math.prod(row[name].shape)
        part = values[:, col : col + k]
        target = row[name].base if row[name].shape else row[name]
        if name in ("rgb", "rgba") and target.kind == "f":
            table[name] = part[:, 0].astype(np.float32)  # keep the packed bits (float32 round trip)
        else:
            table[name] = part.reshape(table[name].shape).astype(target)
        col += k
    return table


# ------------------------------------------------------------------------------------------- NPY / NPZ


class TooManyPoints(DataError):
    """A cloud with more points than the reader accepts."""


def check_npy_header(f, source: str, held: int, max_points: int) -> tuple[tuple[int, ...], np.dtype]:
    """Read and check an ``.npy`` header from ``f``: no objects (pickles), a shape whose bytes are exactly
    the ``held`` bytes after the header, at most ``max_points`` rows (else :class:`TooManyPoints`).
    Nothing is allocated before. Returns the declared shape and dtype."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        header_bytes = f.tell()
    except _ZIP_ERRORS as e:
        raise DataError(source, f"not a readable .npy array ({e})") from None
    if dtype.hasobject:
        raise DataError(source, "holds Python objects: pickled arrays are refused")
    declared = math.prod(shape) * dtype.itemsize
    if declared != held - header_bytes:
        raise DataError(
            source,
            f"header declares shape {tuple(shape)} ({declared} bytes) but holds {held - header_bytes} bytes",
        )
    if shape and shape[0] > max_points:
        raise TooManyPoints(source, f"{shape[0]} points, the limit is {max_points}")
    return tuple(shape), dtype


def decode_npy_cloud(data: bytes, url: str, max_points: int = DEFAULT_MAX_POINTS) -> Mesh:
    """An ``.npy`` file: (N, 3) coordinates or (N, 6) coordinates + colours → :class:`Mesh`."""
    f = io.BytesIO(data)
    shape, _ = check_npy_header(f, url, len(data), max_points)
    if len(shape) != 2 or shape[1] not in (3, 6):
        raise DataError(url, f"expected an (N, 3) or (N, 6) array (xyz [+ rgb]), got shape {shape}")
    f.seek(0)
    arr = np.lib.format.read_array(f, allow_pickle=False)
    pts = _points(arr[:, :3], url, "coordinates")
    return Mesh(pts, colors_uint8(arr[:, 3:] if shape[1] == 6 else None, len(pts), url), None)


def _member(archive: zipfile.ZipFile, keys: tuple[str, ...]) -> zipfile.ZipInfo | None:
    for key in keys:
        for name in (f"{key}.npy", key):
            try:
                return archive.getinfo(name)
            except KeyError:
                continue
    return None


def decode_npz_cloud(data: bytes, url: str, max_points: int = DEFAULT_MAX_POINTS) -> Mesh:
    """An ``.npz`` file: coordinates under ``points`` / ``coord`` / ``xyz``, optional colours under
    ``colors`` / ``color`` / ``rgb`` → :class:`Mesh`.

    The archive's directory and each used member's ``.npy`` header are checked before anything is
    decompressed: members' unpacked sizes must fit ``max_points`` rows, and a header must describe the
    bytes its member holds."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except _ZIP_ERRORS as e:
        raise DataError(url, f"not an NPZ archive ({e})") from None
    members = {"points": _member(archive, POINT_KEYS), "colors": _member(archive, COLOR_KEYS)}
    if members["points"] is None:
        found = sorted(i.filename.removesuffix(".npy") for i in infos)[:10]
        raise DataError(url, f"no coordinates under {' / '.join(POINT_KEYS)} (arrays: {found})")
    limit = max_points * 3 * 8 + (1 << 16)  # (N, 3) float64 plus a header
    arrays = {}
    for key, info in members.items():
        if info is None:
            continue
        source = f"{url} (array {info.filename!r})"
        if info.file_size > limit:
            raise DataError(source, f"unpacks to {info.file_size} bytes, more than {max_points} points need")
        try:
            with archive.open(info) as f:
                check_npy_header(f, source, info.file_size, max_points)
            with archive.open(info) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except DataError:
            raise
        except _ZIP_ERRORS as e:
            raise DataError(source, f"unreadable ({type(e).__name__}: {e})") from None
    pts = arrays["points"]
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise DataError(url, f"coordinates must have shape (N, 3), got {pts.shape}")
    pts = _points(pts, url, "coordinates")
    return Mesh(pts, colors_uint8(arrays.get("colors"), len(pts), url), None)
