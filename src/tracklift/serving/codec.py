"""HTTP payloads of the serving API as pure functions (no Ray, no torch): request bodies → arrays,
predictions → JSON / NPZ bodies, and the reverse directions the client uses.

Request bodies of ``POST /v1/segment`` (chosen by ``Content-Type``):
  ``application/x-ply`` (also ``application/ply``)   binary or ASCII PLY, vertex x, y, z [+ red, green, blue]
  ``application/x-npz`` (also ``application/npz``)   ``points`` (N, 3) float [+ ``colors`` (N, 3)]
  ``application/json``                               ``{"points": [[x, y, z], ...], "colors": ...}`` or
                                                     ``{"scene_url": "..."}``
Colours are uint8 0..255 or floats in [0, 1]; missing colours are mid-grey (128).

Declared sizes are never trusted: a PLY's element counts must fit in the body's bytes (faces are never
decoded), an NPZ member's ``.npy`` header must describe exactly the bytes the member holds, and a JSON body
is bounded by cheap byte counts (rows, commas, nesting, :func:`json_body_limit`) before it is parsed. A
declared cloud over ``max_points`` is a 413, a lying or malformed body a 400 with a short reason.

Response of a segmentation (JSON, or NPZ when ``Accept: application/x-npz``)::

    {"scene_key": str, "num_points": N, "num_instances": K,
     "instance_ids": [N ints, 1..K, 0 = none; overlaps go to the higher score],
     "instances": [{"id": k, "score": float, "num_points": int, "point_indices": [...]}, ...],
     "timings_ms": {"decode": .., "queue": .., "voxelize": .., "forward": .., "postprocess": ..}, ...}

The NPZ holds ``instance_ids`` (N,) int32, ``scores`` (K,) float64, ``point_indices`` (M,) int64 with
``point_offsets`` (K + 1,) int64 (instance k is ``point_indices[o[k]:o[k+1]]``), and ``scene_key`` /
``timings_ms`` (JSON) as 0-d strings. No pickles are read or written anywhere.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracklift.datasets.ply import decode_ply, encode_ply, read_ply_header
from tracklift.datasets.pointclouds import TooManyPoints, check_npy_header
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError
from tracklift.structures import Instances

PLY_TYPES = ("application/x-ply", "application/ply", "model/x-ply", "model/ply")
NPZ_TYPES = ("application/x-npz", "application/npz")
JSON_TYPE = "application/json"
MIN_POINTS = 2
MAX_TEXT_CHARS = 1000
DEFAULT_TOP_K = 5
# JSON costs far more to parse than its size (a Python list and floats per point): bodies are bounded by
# size and by cheap byte counts *before* json.loads. A point as ``encode_cloud`` writes it is ~60 bytes
# (``[0.12345678359270096, ...]``), its colour ~15; 256 bytes per point leaves room for indented JSON.
JSON_BYTES_PER_POINT = 256
NESTED_TOO_DEEPLY = "not valid JSON here: nested too deeply"
MAX_QUERY_BYTES = 64 << 10  # a query is a key or URL and at most MAX_TEXT_CHARS of text


class RequestError(DataError):
    """A request the server refuses: names what was wrong and carries the HTTP status to answer with.

    Args:
        source: what the problem was found in (``"request body (application/x-ply)"``, ``"scene_url"``).
        problem: what is wrong, in words a client can act on.
        status: HTTP status (400 malformed, 401 auth, 404 unknown key, 413 too large, 415 media type,
            422 not answerable for this input, 503 feature not configured).
    """

    def __init__(self, source: str, problem: str, status: int = 400):
        super().__init__(source, problem)
        self.status = int(status)

    def __reduce__(self):
        return (type(self), (self.url, self.problem, self.status))


@dataclass
class Cloud:
    """A decoded point cloud: points (N, 3) float32 metres, colors (N, 3) uint8 or float32 in [0, 1]."""

    points: np.ndarray
    colors: np.ndarray


@dataclass
class SceneRef:
    """A request to segment a scene stored on the server's side (``{"scene_url": ...}``)."""

    url: str


@dataclass
class QueryRequest:
    """A decoded ``POST /v1/query``: exactly one of ``scene_key`` / ``scene_url``, a non-empty text."""

    text: str
    top_k: int
    scene_key: str | None = None
    scene_url: str | None = None


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def wants_npz(accept: str | None) -> bool:
    """True when an ``Accept`` header asks for NPZ (any listed NPZ type)."""
    return any(media_type(part) in NPZ_TYPES for part in (accept or "").split(","))


# ----------------------------------------------------------------------------------------------- checks


def check_cloud(
    points: np.ndarray, colors: np.ndarray | None, source: str, max_points: int, integers_ok: bool = False
) -> Cloud:
    """Validate decoded arrays and normalise dtypes.

    Args:
        points: (N, 3) floating coordinates, metres.
        colors: (N, 3) uint8, integers in 0..255, floats in [0, 1], or None (grey).
        source: names the input in errors.
        max_points: N above this is a 413.
        integers_ok: accept integer coordinates (JSON, where ``1`` and ``1.0`` are the same number).

    Returns:
        :class:`Cloud` with float32 points.

    Raises:
        RequestError: 400 for empty / wrong-shaped / wrong-dtype / non-finite input, 413 over ``max_points``.
    """
    if points.dtype.kind not in ("fiu" if integers_ok else "f"):
        raise RequestError(source, f"points must be floating point numbers, got dtype {points.dtype}")
    if points.ndim != 2 or points.shape[1] != 3:
        if points.size == 0:
            raise RequestError(source, "empty cloud: no points")
        raise RequestError(source, f"points must have shape (N, 3), got {points.shape}")
    n = points.shape[0]
    if n == 0:
        raise RequestError(source, "empty cloud: no points")
    if n > max_points:
        raise RequestError(source, f"{n} points, the limit is {max_points}", 413)
    if n < MIN_POINTS:
        raise RequestError(source, f"a cloud needs at least {MIN_POINTS} points, got {n}")
    pts = points.astype(np.float32)
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise RequestError(source, f"{int(bad.sum())} of {n} points have NaN or infinite coordinates")
    if colors is None:
        return Cloud(pts, np.full((n, 3), 128, dtype=np.uint8))
    if colors.shape != (n, 3):
        raise RequestError(source, f"colors must have shape ({n}, 3) like the points, got {colors.shape}")
    if colors.dtype == np.uint8:
        return Cloud(pts, colors)
    if colors.dtype.kind in "iu":
        if colors.size and (colors.min() < 0 or colors.max() > 255):
            raise RequestError(source, "integer colors must be in 0..255")
        return Cloud(pts, colors.astype(np.uint8))
    if colors.dtype.kind == "f":
        c = colors.astype(np.float32)
        if not np.isfinite(c).all() or (c.size and (c.min() < 0.0 or c.max() > 1.0)):
            raise RequestError(source, "float colors must be finite and in [0, 1] (send uint8 for 0..255)")
        return Cloud(pts, c)
    raise RequestError(source, f"colors must be uint8 or float, got dtype {colors.dtype}")


# --------------------------------------------------------------------------------------- request bodies


def decode_ply_cloud(body: bytes, max_points: int) -> Cloud:
    """A PLY body → :class:`Cloud`. The vertex count is checked from the header before anything is parsed
    (413 over ``max_points``); every declared element must fit in the body's bytes, and faces or any other
    element are never decoded, so a few-byte header declaring 10^9 rows costs nothing (400)."""
    source = "request body (PLY)"
    try:
        header = read_ply_header(body, source)
        vertex = header.element("vertex")
        if vertex is None:
            raise RequestError(source, "PLY header declares no vertex element")
        if vertex.count > max_points:
            raise RequestError(source, f"{vertex.count} points, the limit is {max_points}", 413)
        if vertex.count == 0:
            raise RequestError(source, "empty cloud: no points")
        mesh = decode_ply(body, source, faces=False, max_rows=max_points)
    except RequestError:
        raise
    except DataError as e:
        raise RequestError(source, e.problem) from None
    return check_cloud(mesh.vertices, mesh.colors, source, max_points)


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


def _npy_member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    for member in (f"{name}.npy", name):
        try:
            return archive.getinfo(member)
        except KeyError:
            continue
    return None


def _check_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, max_rows: int) -> None:
    """Read one member's ``.npy`` header (a few hundred bytes) and check it before numpy allocates anything
    (:func:`tracklift.datasets.pointclouds.check_npy_header`): 400 for a malformed or pickled array, 413
    for more than ``max_rows`` rows."""
    name = f"{info.filename!r}"
    try:
        with archive.open(info) as f:
            check_npy_header(f, name, info.file_size, max_rows)
    except TooManyPoints as e:
        raise RequestError(source, e.problem, 413) from None
    except DataError as e:
        raise RequestError(source, f"{name} {e.problem}") from None
    except _ZIP_ERRORS as e:
        raise RequestError(source, f"{name} is not a readable .npy array ({e})") from None


def decode_npz_cloud(body: bytes, max_points: int) -> Cloud:
    """An NPZ body (``points``, optional ``colors``) → :class:`Cloud`; pickled arrays are refused.

    Nothing is decompressed before the archive's directory and the arrays' ``.npy`` headers are checked:
    unpacked sizes are bounded, and a header claiming a shape the member does not hold (10^12 × 3 in a few
    bytes) is a 400 rather than an allocation."""
    source = "request body (NPZ)"
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        infos = archive.infolist()
    except _ZIP_ERRORS as e:
        raise RequestError(source, f"not an NPZ archive ({e})") from None
    # Compressed members could expand far beyond the body limit: bound the unpacked size first.
    limit = max_points * 3 * 8 * 2 + (1 << 20)
    unpacked = sum(i.file_size for i in infos)
    if unpacked > limit:
        raise RequestError(source, f"arrays unpack to {unpacked} bytes, the limit is {limit}", 413)
    members = {name: _npy_member(archive, name) for name in ("points", "colors")}
    if members["points"] is None:
        names = sorted(i.filename.removesuffix(".npy") for i in infos)[:10]
        raise RequestError(source, f"no 'points' array (found {names})")
    for info in members.values():
        if info is not None:
            _check_npy_header(archive, info, source, max_points)
    try:
        # Read exactly the members whose headers were checked (np.load would prefer a member named plain
        # "points" over "points.npy", and that one's header was never looked at).
        arrays = {}
        for name, info in members.items():
            if info is not None:
                with archive.open(info) as f:
                    arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
        points, colors = arrays["points"], arrays.get("colors")
    except (*_ZIP_ERRORS, KeyError) as e:
        raise RequestError(source, f"unreadable NPZ ({type(e).__name__}: {e})") from None
    return check_cloud(points, colors, source, max_points)


def _has_bool(value: Any) -> bool:
    """True when a nested list holds a JSON ``true`` / ``false`` (Python bools pass as 0 / 1 in numpy)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            return True
        if isinstance(v, list):
            stack.extend(v)
    return False


def _json_array(value: Any, name: str, source: str, may_hold_bools: bool) -> np.ndarray:
    if may_hold_bools and _has_bool(value):
        raise RequestError(source, f"{name} must hold numbers only, got true/false")
    try:
        arr = np.array(value)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(source, f"{name} is not a rectangular array of numbers") from None
    if arr.dtype.kind not in "iuf":
        if arr.size == 0:
            return arr.reshape(0, 3).astype(np.float32)
        raise RequestError(source, f"{name} must hold numbers only, got {arr.dtype.kind!r}-kind values")
    return arr


def parse_json(body: bytes, source: str) -> dict:
    """A JSON object body → dict; anything else is a 400 naming the problem (never the parser's internals).

    Python's parser refuses integers of more than 4300 digits (ValueError) and nesting deeper than the
    recursion limit (RecursionError): both are malformed input, answered with a short reason."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(source, "not valid JSON (not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise RequestError(source, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise RequestError(source, NESTED_TOO_DEEPLY) from None
    except ValueError:  # int_max_str_digits
        raise RequestError(source, "not valid JSON here: a number has too many digits") from None
    if not isinstance(obj, dict):
        raise RequestError(source, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def json_body_limit(max_points: int) -> int:
    """Largest JSON segment body worth reading for clouds of at most ``max_points`` points, bytes: a
    deployment may refuse longer ``application/json`` bodies while reading them (413)."""
    return max_points * JSON_BYTES_PER_POINT + (1 << 20)


def _check_json_size(body: bytes, source: str, max_points: int) -> None:
    """Refuse JSON that cannot hold an acceptable cloud before parsing it (413).

    Counting bytes is C-speed and allocates nothing, while ``json.loads`` costs ~100 bytes of Python
    objects per number. A valid request has at most ``max_points`` rows per array (points, and colours when
    the body names them), so at most that many ``[`` plus one per array, and about 3 commas per row."""
    limit = json_body_limit(max_points)
    if len(body) > limit:
        raise RequestError(
            source,
            f"JSON body of {len(body)} bytes, the limit for JSON is {limit} bytes (send NPZ or PLY)",
            413,
        )
    if b"[[[" in body:  # a cloud is [[x, y, z], ...]: deeper arrays are refused before counting rows
        raise RequestError(source, NESTED_TOO_DEEPLY)
    arrays = 2 if b'"colors"' in body else 1  # rows of points, and of colours when they are sent
    rows = body.count(b"[") - arrays
    if rows > arrays * max_points:
        raise RequestError(source, f"more than {max_points} points ({rows} rows of JSON)", 413)
    if body.count(b",") > 3 * arrays * max_points + 16:
        raise RequestError(source, f"more values than {max_points} points can hold", 413)


def decode_json_request(body: bytes, max_points: int) -> Cloud | SceneRef:
    """A JSON segment request → :class:`Cloud` (``points`` / ``colors``) or :class:`SceneRef`.

    Raises:
        RequestError: 413 for a body that cannot hold an acceptable cloud (checked before parsing), 400 for
            malformed JSON, non-numbers (booleans included) and the cloud checks of :func:`check_cloud`.
    """
    source = "request body (JSON)"
    _check_json_size(body, source, max_points)
    obj = parse_json(body, source)
    if "scene_url" in obj:
        url = obj["scene_url"]
        if not isinstance(url, str) or not url.strip():
            raise RequestError(source, "scene_url must be a non-empty string")
        if "points" in obj:
            raise RequestError(source, "give either points or scene_url, not both")
        return SceneRef(url.strip())
    if "points" not in obj:
        raise RequestError(source, "expected a 'points' array or a 'scene_url'")
    # walking the lists for booleans costs a Python loop: only when the body has a true / false literal
    may_hold_bools = b"true" in body or b"false" in body
    points = _json_array(obj["points"], "points", source, may_hold_bools)
    colors = obj.get("colors")
    colors = None if colors is None else _json_array(colors, "colors", source, may_hold_bools)
    return check_cloud(points, colors, source, max_points, integers_ok=True)


def decode_segment_request(body: bytes, content_type: str | None, max_points: int) -> Cloud | SceneRef:
    """Decode a ``POST /v1/segment`` body by its ``Content-Type``.

    Raises:
        RequestError: 415 for an unsupported type, else the format decoder's errors.
    """
    kind = media_type(content_type)
    if kind in PLY_TYPES:
        return decode_ply_cloud(body, max_points)
    if kind in NPZ_TYPES:
        return decode_npz_cloud(body, max_points)
    if kind == JSON_TYPE:
        return decode_json_request(body, max_points)
    supported = ", ".join((*PLY_TYPES[:2], *NPZ_TYPES[:1], JSON_TYPE))
    raise RequestError("Content-Type", f"unsupported media type {kind or '(none)'!r}; use {supported}", 415)


def decode_query_request(body: bytes) -> QueryRequest:
    """Decode ``{"scene_key" | "scene_url", "text", "top_k"}``; an empty text is a 400."""
    source = "request body (JSON)"
    if len(body) > MAX_QUERY_BYTES:
        raise RequestError(source, f"query body of {len(body)} bytes, the limit is {MAX_QUERY_BYTES}", 413)
    obj = parse_json(body, source)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RequestError(source, "empty query: 'text' must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise RequestError(source, f"text has {len(text)} characters, the limit is {MAX_TEXT_CHARS}")
    top_k = obj.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RequestError(source, f"top_k must be a positive integer, got {top_k!r}")
    key, url = obj.get("scene_key"), obj.get("scene_url")
    if (key is None) == (url is None):
        raise RequestError(source, "give exactly one of scene_key and scene_url")
    for name, value in (("scene_key", key), ("scene_url", url)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise RequestError(source, f"{name} must be a non-empty string")
    return QueryRequest(text.strip(), top_k, key, url.strip() if url else None)


# -------------------------------------------------------------------------------------------- responses


def instance_payload(instances: Instances) -> dict[str, np.ndarray]:
    """Arrays describing a prediction: ids (N,) int32, scores (K,), CSR point indices and offsets."""
    indices = [np.flatnonzero(m) for m in instances.masks]
    offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(i) for i in indices])
    return {
        "instance_ids": instances.to_ids().astype(np.int32),
        "scores": instances.scores.astype(np.float64),
        "point_indices": np.concatenate(indices).astype(np.int64) if indices else np.zeros(0, np.int64),
        "point_offsets": offsets,
    }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def encode_result_json(
    scene_key: str, instances: Instances, timings_ms: dict[str, float], extra: dict | None = None
) -> bytes:
    """The JSON segmentation response (see the module doc)."""
    arrays = instance_payload(instances)
    offs = arrays["point_offsets"]
    out = {
        "scene_key": scene_key,
        "num_points": instances.num_points,
        "num_instances": len(instances),
        "instance_ids": arrays["instance_ids"].tolist(),
        "instances": [
            {
                "id": k + 1,
                "score": _finite(instances.scores[k]),
                "num_points": int(offs[k + 1] - offs[k]),
                "point_indices": arrays["point_indices"][offs[k] : offs[k + 1]].tolist(),
            }
            for k in range(len(instances))
        ],
        "timings_ms": {k: round(float(v), 3) for k, v in timings_ms.items()},
    }
    out.update(extra or {})
    return json.dumps(out, separators=(",", ":")).encode("utf-8")


def encode_result_npz(scene_key: str, instances: Instances, timings_ms: dict[str, float]) -> bytes:
    """The NPZ segmentation response (see the module doc)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        scene_key=np.array(scene_key),
        timings_ms=np.array(json.dumps(timings_ms)),
        **instance_payload(instances),
    )
    return buf.getvalue()


def server_timing(timings_ms: dict[str, float]) -> str:
    """An HTTP ``Server-Timing`` header value: ``decode;dur=1.2, forward;dur=80.5``."""
    return ", ".join(f"{k};dur={float(v):.3f}" for k, v in timings_ms.items() if math.isfinite(float(v)))


@dataclass
class SegmentResult:
    """A decoded segmentation response (client side).

    Attributes:
        scene_key: the server's cache key of the result (for ``/v1/query``).
        instances: (K, N) masks and (K,) scores, as ``Segmenter.predict`` returned them.
        instance_ids: (N,) int per-point instance (1..K), 0 = none.
        timings_ms: the server's latency breakdown.
        extra: any further response fields.
    """

    scene_key: str
    instances: Instances
    instance_ids: np.ndarray
    timings_ms: dict[str, float]
    extra: dict


def _instances_from(n: int, scores, indices, offsets) -> Instances:
    masks = np.zeros((len(scores), n), dtype=bool)
    for k in range(len(scores)):
        masks[k, indices[offsets[k] : offsets[k + 1]]] = True
    return Instances(masks, np.asarray(scores, dtype=np.float64))


def decode_result(body: bytes, content_type: str | None) -> SegmentResult:
    """Parse a segmentation response body (JSON or NPZ) back into arrays."""
    if media_type(content_type) in NPZ_TYPES:
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            ids = z["instance_ids"].astype(np.int64)
            inst = _instances_from(len(ids), z["scores"], z["point_indices"], z["point_offsets"])
            return SegmentResult(str(z["scene_key"]), inst, ids, json.loads(str(z["timings_ms"])), {})
    obj = json.loads(body.decode("utf-8"))
    ids = np.asarray(obj.pop("instance_ids"), dtype=np.int64)
    items = obj.pop("instances")
    indices = [np.asarray(it["point_indices"], dtype=np.int64) for it in items]
    offsets = np.concatenate([[0], np.cumsum([len(i) for i in indices])]).astype(np.int64)
    flat = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    inst = _instances_from(len(ids), [it["score"] for it in items], flat, offsets)
    return SegmentResult(obj.pop("scene_key"), inst, ids, obj.pop("timings_ms", {}), obj)


def encode_cloud(points: np.ndarray, colors: np.ndarray | None, fmt: str = "npz") -> tuple[bytes, str]:
    """A cloud as a request body: ``fmt`` is ``npz``, ``ply`` or ``json``. Returns ``(body, content type)``."""
    points = np.asarray(points)
    if fmt == "npz":
        buf = io.BytesIO()
        arrays = {"points": points} if colors is None else {"points": points, "colors": np.asarray(colors)}
        np.savez(buf, **arrays)
        return buf.getvalue(), NPZ_TYPES[0]
    if fmt == "ply":
        cols = None if colors is None else np.asarray(colors)
        if cols is not None and cols.dtype != np.uint8:
            cols = np.round(np.clip(cols, 0, 1) * 255).astype(np.uint8)
        return encode_ply(Mesh(points, cols)), PLY_TYPES[0]
    if fmt == "json":
        obj: dict[str, Any] = {"points": points.tolist()}
        if colors is not None:
            obj["colors"] = np.asarray(colors).tolist()
        return json.dumps(obj).encode("utf-8"), JSON_TYPE
    raise ValueError(f"unknown cloud format {fmt!r}; use npz, ply or json")
