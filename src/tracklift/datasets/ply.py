"""PLY mesh / point cloud reading and writing (binary little-endian, ScanNet's vertex layout).

Reading never trusts the header's counts: a PLY header is a few bytes that can declare any number of rows
(``element face 1000000000`` in a 213-byte upload). Before anything is allocated, every element's count is
checked against the bytes actually present (binary: ``count * row bytes`` must fit in what follows the
header; ASCII: ``count`` rows must fit in the lines that follow) and every element that is decoded against a
cap. Elements are decoded with numpy views over the buffer, never into per-row Python objects: list
properties (faces) must have the same length in every row (triangles), which is checked vectorised. Only the
elements asked for are decoded (``faces=False``: the vertices only); others are skipped by size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from plyfile import PlyData, PlyElement

from tracklift import storage
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError

MAX_HEADER_BYTES = 1 << 20
# A cap on the rows of any decoded element. Far above real scans (ScanNet meshes hold 0.1-1.5M vertices,
# ScanNet++'s 0.05 m meshes a few million); the byte check bounds binary files more tightly anyway.
DEFAULT_MAX_ROWS = 100_000_000

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
_ASCII_CHUNK = 1 << 22  # bytes scanned at a time when locating the end of an ASCII element's rows
_ROW_END_VALUE = -9.25e99  # appended to every ASCII row to check row lengths in one parse
_ROW_END = b" -9.25e99\n"


@dataclass(frozen=True)
class PlyProperty:
    """One property: ``dtype`` of a scalar or of a list's items; ``count_dtype`` is set for lists."""

    name: str
    dtype: str
    count_dtype: str | None = None


@dataclass(frozen=True)
class PlyElementHeader:
    """An element as declared: name, declared row count, properties in row order."""

    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    @property
    def has_lists(self) -> bool:
        return any(p.count_dtype for p in self.properties)

    def min_row_bytes(self) -> int:
        """Bytes of the smallest possible binary row (every list empty)."""
        return sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in self.properties)


@dataclass(frozen=True)
class PlyHeader:
    """A parsed PLY header.

    Attributes:
        format: ``ascii``, ``binary_little_endian`` or ``binary_big_endian``.
        elements: in file order.
        data_start: offset of the first byte after ``end_header\\n``.
    """

    format: str
    elements: tuple[PlyElementHeader, ...]
    data_start: int

    def element(self, name: str) -> PlyElementHeader | None:
        return next((e for e in self.elements if e.name == name), None)


def read_ply_header(data: bytes, url: str) -> PlyHeader:
    """Parse the header only (cheap: nothing after ``end_header`` is touched).

    Raises:
        DataError: not a PLY, no ``end_header`` within 1 MiB, an unknown format or type, a malformed line.
    """
    if not data.startswith(b"ply"):
        raise DataError(url, "not a PLY file (it must start with 'ply')")
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise DataError(url, "PLY header has no end_header line (truncated or not PLY)")
    nl = data.find(b"\n", end)
    data_start = len(data) if nl < 0 else nl + 1
    fmt = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for raw in data[:end].decode("latin-1").splitlines()[1:]:
        parts = raw.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        try:
            if parts[0] == "format":
                fmt = parts[1]
                if fmt not in _FORMATS:
                    raise ValueError(f"unknown format {fmt!r}")
            elif parts[0] == "element":
                count = int(parts[2])
                if count < 0 or len(parts) != 3:
                    raise ValueError("bad element line")
                elements.append((parts[1], count, []))
            elif parts[0] == "property":
                if not elements:
                    raise ValueError("property before any element")
                if parts[1] == "list":
                    prop = PlyProperty(parts[4], _TYPES[parts[3]], _TYPES[parts[2]])
                    if (
                        np.dtype(_TYPES[parts[2]]).kind not in "iu"
                    ):  # a float count (NaN, inf) cannot size a list
                        raise ValueError("a list's count type must be an integer type")
                else:
                    prop = PlyProperty(parts[2], _TYPES[parts[1]])
                elements[-1][2].append(prop)
            else:
                raise ValueError(f"unknown keyword {parts[0]!r}")
        except (IndexError, KeyError, ValueError) as e:
            raise DataError(url, f"malformed PLY header line {raw.strip()[:80]!r} ({e})") from None
    if fmt is None:
        raise DataError(url, "PLY header has no format line")
    return PlyHeader(fmt, tuple(PlyElementHeader(n, c, tuple(p)) for n, c, p in elements), data_start)


def _too_large(url: str, e: PlyElementHeader, have: str) -> DataError:
    return DataError(
        url,
        f"PLY header declares {e.count} '{e.name}' rows but only {have} follow (truncated, or a forged count)",
    )


def _check_counts(data: bytes, header: PlyHeader, url: str) -> None:
    """Every element's declared rows must fit in what follows the header (before anything is allocated)."""
    start = header.data_start
    if header.format == "ascii":
        lines = data.count(b"\n", start)
        if len(data) > start and not data.endswith(b"\n"):
            lines += 1  # a last row without its newline
        for e in header.elements:
            if e.count > lines:
                raise _too_large(url, e, f"{lines} lines")
            lines -= e.count
        return
    left = len(data) - start
    for e in header.elements:
        need = e.count * e.min_row_bytes()
        if need > left:
            raise _too_large(url, e, f"{left} bytes ({e.min_row_bytes()} bytes per row at least)")
        left -= need


# ----------------------------------------------------------------------------------------------- binary


def _binary_element(data: bytes, pos: int, e: PlyElementHeader, endian: str, url: str):
    """View one binary element at ``pos`` as a structured array (no copy).

    Returns ``(rows, end)``: rows have one field per property (``p0``, ``p1``, ...; a list property is a
    ``(count, items)`` pair of fields ``pN_n`` / ``pN``, the latter a subarray). Lists must have the same length
    in every row: the first row sets it, every row is checked.
    """
    fields, lengths = [], {}
    at = pos
    for i, p in enumerate(e.properties):
        if p.count_dtype is None:
            fields.append((f"p{i}", endian + p.dtype))
            at += np.dtype(p.dtype).itemsize
            continue
        cdt = np.dtype(endian + p.count_dtype)
        if e.count:
            if at + cdt.itemsize > len(data):
                raise DataError(url, f"PLY '{e.name}' rows run past the end of the file")
            k = int(np.frombuffer(data, cdt, 1, at)[0])
        else:
            k = 0
        if k < 0:
            raise DataError(url, f"PLY '{e.name}' has a negative list length")
        if cdt.itemsize + k * np.dtype(p.dtype).itemsize > len(data) - at:  # before numpy sizes a dtype
            raise DataError(url, f"PLY '{e.name}' has a list of {k} items running past the end of the file")
        lengths[i] = k
        fields.append((f"p{i}_n", cdt))
        fields.append((f"p{i}", endian + p.dtype, (k,)))
        at += cdt.itemsize + k * np.dtype(p.dtype).itemsize
    dt = np.dtype(fields)
    need = e.count * dt.itemsize
    if pos + need > len(data):
        raise _too_large(url, e, f"{len(data) - pos} bytes ({dt.itemsize} bytes per row)")
    rows = np.frombuffer(data, dt, e.count, pos)
    for i, k in lengths.items():
        if e.count and not np.all(rows[f"p{i}_n"] == k):
            raise DataError(
                url, f"PLY '{e.name}' rows have lists of different lengths (only equal lengths are read)"
            )
    return rows, pos + need


# ------------------------------------------------------------------------------------------------ ascii


def _after_lines(data: bytes, pos: int, n: int) -> int:
    """Offset just after ``n`` lines from ``pos`` (scanned in chunks: no per-line objects)."""
    while n > 0 and pos < len(data):
        end = min(len(data), pos + _ASCII_CHUNK)
        c = data.count(b"\n", pos, end)
        if c < n:
            n -= c
            pos = end
            continue
        newlines = np.flatnonzero(np.frombuffer(data, np.uint8, end - pos, pos) == 10)
        return pos + int(newlines[n - 1]) + 1
    return len(data)


def _ascii_element(data: bytes, pos: int, e: PlyElementHeader, url: str):
    """Decode one ASCII element (one row per line) into ``{property index: array}``.

    Scalars are (count,) float64, lists (count, k) float64 (equal lengths required). Returns
    ``(columns, end)``."""
    end = _after_lines(data, pos, e.count)
    text = data[pos:end]
    if not e.count:
        return {
            i: np.zeros((0,) if p.count_dtype is None else (0, 0)) for i, p in enumerate(e.properties)
        }, end
    # The first row fixes every list's length (like the binary reader): tokens per row are then known.
    first = data[pos : _after_lines(data, pos, 1)].split()
    width, layout = 0, []
    for p in e.properties:
        if p.count_dtype is None:
            layout.append((width, None))
            width += 1
            continue
        try:
            k = int(first[width])
        except (IndexError, TypeError, ValueError):
            raise DataError(url, f"PLY '{e.name}' first row has no valid list length") from None
        if k < 0:
            raise DataError(url, f"PLY '{e.name}' has a negative list length")
        layout.append((width, k))
        width += 1 + k
    # Every line gets an end-of-row marker value, so one C-speed parse of the whole section also proves that
    # each row has exactly ``width`` values (a short row shifts the marker out of the last column).
    if not text.endswith(b"\n"):
        text += b"\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(text.replace(b"\n", _ROW_END), dtype=np.float64, sep=" ")
    except (ValueError, DeprecationWarning):
        raise DataError(url, f"PLY '{e.name}' rows hold something that is not a number") from None
    if flat.size != e.count * (width + 1) or not np.all(flat[width :: width + 1] == _ROW_END_VALUE):
        raise DataError(url, f"PLY '{e.name}' rows do not all hold {width} values (ragged rows or lists)")
    table = flat.reshape(e.count, width + 1)
    cols = {}
    for i, (at, k) in enumerate(layout):
        if k is None:
            cols[i] = table[:, at]
        else:
            if not np.all(table[:, at] == k):
                raise DataError(
                    url, f"PLY '{e.name}' rows have lists of different lengths (only equal lengths are read)"
                )
            cols[i] = table[:, at + 1 : at + 1 + k]
    return cols, end


# ------------------------------------------------------------------------------------------------ decode


def _elements(data: bytes, header: PlyHeader, wanted: set[str], url: str, max_rows: int) -> dict[str, dict]:
    """``{element name: {property name: array}}`` for the ``wanted`` elements (the first of each name)."""
    out: dict[str, dict] = {}
    pos, endian = header.data_start, _FORMATS[header.format]
    for e in header.elements:
        if wanted <= set(out):
            break  # nothing after this is needed: never read, never allocated
        needed = e.name in wanted and e.name not in out
        if needed and e.count > max_rows:
            raise DataError(url, f"PLY '{e.name}' has {e.count} rows, the limit is {max_rows}")
        if header.format == "ascii":
            if not needed:
                pos = _after_lines(data, pos, e.count)
                continue
            cols, pos = _ascii_element(data, pos, e, url)
            out[e.name] = {p.name: cols[i] for i, p in enumerate(e.properties)}
            continue
        if not needed and not e.has_lists:
            pos += e.count * e.min_row_bytes()  # skipped by size, already checked to fit
            continue
        rows, pos = _binary_element(data, pos, e, endian, url)
        if needed:
            out[e.name] = {p.name: rows[f"p{i}"] for i, p in enumerate(e.properties)}
    return out


def _float_colors(header: PlyHeader) -> bool:
    """True when the header declares the vertex colours as float / double properties."""
    vertex = header.element("vertex")
    kinds = {p.name: np.dtype(p.dtype).kind for p in vertex.properties} if vertex else {}
    return all(kinds.get(c) == "f" for c in ("red", "green", "blue"))


def decode_ply(data: bytes, url: str, faces: bool = True, max_rows: int = DEFAULT_MAX_ROWS) -> Mesh:
    """Parse PLY bytes into a :class:`Mesh` (faces optional, colours default to grey).

    Args:
        data: the whole file (binary little/big-endian or ASCII).
        url: names the file in errors.
        faces: decode the ``face`` element (triangles); False skips it (point clouds: nothing is read past
            the vertices).
        max_rows: no decoded element (vertex, face) may declare more rows.

    Returns:
        :class:`Mesh` with vertices (N, 3) float32, colors (N, 3) uint8 (float colour properties whose
            values all lie in [0, 1] are scaled by 255), faces (F, 3) int32 or None.

    Raises:
        DataError: not a PLY, counts that do not fit the data or exceed ``max_rows``, no x/y/z vertices,
            non-triangle or out-of-range faces, non-finite coordinates.
    """
    header = read_ply_header(data, url)
    _check_counts(data, header, url)
    wanted = {"vertex", "face"} if faces else {"vertex"}
    try:
        elements = _elements(data, header, wanted, url, max_rows)
        v = elements["vertex"]
        if any(np.ndim(v[c]) != 1 for c in ("x", "y", "z")):
            raise DataError(url, "PLY vertex x/y/z must be scalar properties")
    except KeyError as e:
        raise DataError(url, f"not a readable PLY with x/y/z vertices (no {e})") from None
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    if all(c in v and np.ndim(v[c]) == 1 for c in ("red", "green", "blue")):
        rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
        if rgb.dtype.kind == "f":  # ASCII values or float colour properties: no NaN / out-of-range casts
            rgb = np.nan_to_num(rgb)
            if _float_colors(header) and rgb.size and rgb.max() <= 1.0:
                rgb = rgb * 255.0  # declared float colours in [0, 1] (CloudCompare, Open3D tensors)
            rgb = np.clip(rgb, 0, 255)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    tri = None
    fd = elements.get("face")
    if fd:
        key = "vertex_indices" if "vertex_indices" in fd else next(iter(fd))
        idx = fd[key]
        if idx.ndim != 2 or idx.shape[1] != 3:
            if len(idx):
                raise DataError(url, "PLY faces are not all triangles")
        elif len(idx):
            if idx.dtype.kind == "f" and not np.all(idx == np.round(idx)):
                raise DataError(url, "PLY face indices are not integers")
            if idx.min() < 0 or idx.max() >= len(xyz):
                raise DataError(url, "PLY face index outside the vertex list")
            tri = idx.astype(np.int32)
    if not np.all(np.isfinite(xyz)):
        raise DataError(url, "PLY has non-finite vertex coordinates")
    return Mesh(xyz, rgb, tri)


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


def read_ply(url: str, faces: bool = True, max_rows: int = DEFAULT_MAX_ROWS) -> Mesh:
    """Read a PLY file (see :func:`decode_ply`)."""
    return decode_ply(storage.read_bytes(url), url, faces, max_rows)


def write_ply(url: str, mesh: Mesh, extra: dict[str, np.ndarray] | None = None) -> None:
    storage.write_bytes(url, encode_ply(mesh, extra))
