"""Pseudo-label shards and per-scene pseudo-label files, through :mod:`tracklift.storage`.

Sample shards come in two formats, picked by the URL's extension: Parquet (``.parquet``, the labeling
job's default, what ``ray.data.read_parquet`` reads on a cluster) and NumPy ``.npz`` (a zip of ``.npy``
arrays, readable everywhere numpy is). Pseudo-label files are ``.npz``. Every file is written in one object,
so the storage layer's temporary-key-then-move makes it atomic on ``file://``, ``s3://`` and ``memory://``.
Set ``compress=True`` to deflate (``.npz``; about 2× smaller for stage 3, slower to write) or zstd-compress
(``.parquet``).

Parquet sample shard: one row per sample; arrays are stored as little-endian bytes so a row is one whole
sample (training reads whole samples, never columns across samples):

    scene_id    string
    stage       int32          1, 2 or 3
    frames      list<int32>    frame positions used (empty for stage 3)
    num_points  int64          M
    points      binary         float32 (M, 3) world metres, little-endian
    colors      binary         uint8 (M, 3) RGB
    ids         binary         int32 (M,) instance id, 0 = unlabelled / ignore, little-endian

The schema metadata holds ``tracklift.kind = samples`` and ``tracklift.version = 1``.
:func:`sample_from_row` turns one row (a dict, e.g. from ``ray.data.read_parquet(...).iter_rows()``)
back into a :class:`Sample`.

NumPy sample shard (``kind = "samples"``), S samples with M_s points each, concatenated Pointcept-style:

    kind           ()        str      "samples"
    version        ()        int64    1
    points         (ΣM, 3)   float32  world metres
    colors         (ΣM, 3)   uint8    RGB
    instance       (ΣM,)     int64    instance id, 0 = unlabelled / ignore
    offsets        (S + 1,)  int64    sample s is rows offsets[s]:offsets[s+1]
    scene_id       (S,)      str
    stage          (S,)      int64    1, 2 or 3
    frames         (ΣF,)     int64    frame positions used, concatenated
    frame_offsets  (S + 1,)  int64    sample s used frames[frame_offsets[s]:frame_offsets[s+1]]

Pseudo-label file (``kind = "pseudo_labels"``), one per scene, N mesh vertices:

    kind, version  as above
    scene_id       ()        str
    ids            (N,)      int64    0 = unlabelled
    confidence     (N,)      float32
    votes          (N,)      int32
    seen           (N,)      int32
    meta           ()        str      JSON object (e.g. the lifting config), "{}" when none
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np

from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting.samples import Sample
from tracklift.lifting.vote import PseudoLabels

VERSION = 1


def _save(url: str, arrays: dict[str, np.ndarray], compress: bool) -> None:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    storage.write_bytes(url, buf.getvalue())


def _load(url: str, kind: str) -> dict[str, np.ndarray]:
    data = storage.read_bytes(url)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(url, f"not a readable .npz archive ({e})") from None
    _check_kind(url, arrays, kind)
    return arrays


def _check_kind(url: str, arrays: Mapping[str, np.ndarray], kind: str) -> None:
    """The ``kind`` and ``version`` members of an archive (every reader checks them the same way)."""
    if "kind" not in arrays or str(arrays["kind"]) != kind:
        found = str(arrays["kind"]) if "kind" in arrays else "no kind"
        raise DataError(url, f"expected a {kind!r} archive, found {found!r}")
    if int(arrays.get("version", -1)) != VERSION:
        raise DataError(url, f"unsupported {kind} version {arrays.get('version')}, expected {VERSION}")


def _need(url: str, arrays: dict[str, np.ndarray], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(url, f"archive lacks {', '.join(missing)}")


def write_samples(url: str, samples: Sequence[Sample], compress: bool = False) -> None:
    """Write samples as one shard, atomically: Parquet when ``url`` ends with ``.parquet``, else ``.npz``.

    Args:
        url: target (``.parquet`` or ``.npz``), any fsspec URL or path.
        samples: the samples (may be empty).
        compress: deflate the ``.npz`` archive / zstd-compress the Parquet columns.
    """
    if is_parquet(url):
        _write_parquet_samples(url, samples, compress)
        return
    sizes = [len(s) for s in samples]
    nfr = [len(s.frames) for s in samples]
    arrays = {
        "kind": np.array("samples"),
        "version": np.array(VERSION, np.int64),
        "points": np.concatenate([s.points for s in samples]) if samples else np.zeros((0, 3), np.float32),
        "colors": np.concatenate([s.colors for s in samples]) if samples else np.zeros((0, 3), np.uint8),
        "instance": np.concatenate([s.instance for s in samples]) if samples else np.zeros(0, np.int64),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "scene_id": np.array([s.scene_id for s in samples], dtype=str),
        "stage": np.array([s.stage for s in samples], np.int64),
        "frames": np.array([k for s in samples for k in s.frames], np.int64),
        "frame_offsets": np.concatenate([[0], np.cumsum(nfr)]).astype(np.int64),
    }
    _save(url, arrays, compress)


_SAMPLE_MEMBERS = ("points", "colors", "instance", "offsets", "scene_id", "stage", "frames", "frame_offsets")


def _check_sample_layout(
    url: str, shapes: Mapping[str, tuple[int, ...]], off: np.ndarray, foff: np.ndarray
) -> None:
    """The array shapes of an ``.npz`` sample shard agree with its offsets (module doc)."""
    _need(url, shapes, _SAMPLE_MEMBERS)
    ok = len(shapes["scene_id"]) == 1 and len(shapes["points"]) >= 1 and len(shapes["frames"]) == 1
    if ok:
        s, m = shapes["scene_id"][0], shapes["points"][0]
        ok = (
            off.shape == (s + 1,)
            and foff.shape == (s + 1,)
            and tuple(shapes["stage"]) == (s,)
            and tuple(shapes["points"]) == (m, 3)
            and tuple(shapes["colors"]) == (m, 3)
            and tuple(shapes["instance"]) == (m,)
            and (off[0] == 0 and off[-1] == m and np.all(np.diff(off) >= 0))
            and (foff[0] == 0 and foff[-1] == shapes["frames"][0] and np.all(np.diff(foff) >= 0))
        )
    if not ok:
        raise DataError(url, "inconsistent shard: array lengths do not match the offsets")


def read_samples(url: str) -> list[Sample]:
    """Read a shard written by :func:`write_samples` (either format); a malformed one is a :class:`DataError`."""
    if is_parquet(url):
        return _read_parquet_samples(url)
    a = _load(url, "samples")
    _check_sample_layout(url, {k: v.shape for k, v in a.items()}, a.get("offsets"), a.get("frame_offsets"))
    off, foff = a["offsets"], a["frame_offsets"]
    s = len(a["scene_id"])
    try:
        return [
            Sample(
                a["points"][off[i] : off[i + 1]],
                a["colors"][off[i] : off[i + 1]],
                a["instance"][off[i] : off[i + 1]],
                str(a["scene_id"][i]),
                int(a["stage"][i]),
                tuple(a["frames"][foff[i] : foff[i + 1]].tolist()),
            )
            for i in range(s)
        ]
    except ValueError as e:
        raise DataError(url, f"invalid sample: {e}") from None


def sample_shard_sizes(url: str) -> np.ndarray:
    """(S,) point count of every sample of a shard (either format), checked as :func:`read_samples` checks
    it but without reading the points: an ``.npz`` shard's member headers and offsets, a Parquet shard's
    footer and its ``num_points`` column (range reads on S3). A driver validates every shard with it
    before handing them to workers.

    Raises:
        DataError: naming ``url``: unreadable or truncated file, wrong kind or version, missing members or
            columns, lengths that disagree with the offsets.
    """
    if is_parquet(url):
        return _parquet_sample_sizes(url)
    try:
        with storage.open_file(url, "rb") as f, zipfile.ZipFile(f) as zf:
            shapes = {}
            small = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with zf.open(info) as member:
                    if name in ("kind", "version", "offsets", "frame_offsets"):
                        small[name] = np.lib.format.read_array(member, allow_pickle=False)
                        shapes[name] = small[name].shape
                    else:
                        shapes[name] = _npy_shape(member)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(url, f"not a readable .npz archive ({e})") from None
    _check_kind(url, small, "samples")
    _check_sample_layout(url, shapes, small.get("offsets"), small.get("frame_offsets"))
    return np.diff(small["offsets"])


def _npy_shape(member) -> tuple[int, ...]:
    """Shape from the header of an ``.npy`` stream, without reading its data."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, _ = np.lib.format.read_array_header_1_0(member)
    else:
        shape, _, _ = np.lib.format.read_array_header_2_0(member)
    return tuple(shape)


# --- Parquet sample shards ---------------------------------------------------------------------------

PARQUET_SUFFIX = ".parquet"
SHARD_SUFFIXES = (PARQUET_SUFFIX, ".npz")
_INT32 = np.iinfo(np.int32)


def is_parquet(url: str) -> bool:
    """Whether a shard URL names a Parquet file (by its extension)."""
    return str(url).lower().endswith(PARQUET_SUFFIX)


def _parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("scene_id", pa.string()),
            ("stage", pa.int32()),
            ("frames", pa.list_(pa.int32())),
            ("num_points", pa.int64()),
            ("points", pa.binary()),
            ("colors", pa.binary()),
            ("ids", pa.binary()),
        ],
        metadata={"tracklift.kind": "samples", "tracklift.version": str(VERSION)},
    )


def sample_to_row(sample: Sample) -> dict:
    """One sample as a Parquet row (the schema in the module docstring).

    Raises:
        ValueError: an instance id does not fit in int32.
    """
    ids = sample.instance
    if len(ids) and (ids.min() < _INT32.min or ids.max() > _INT32.max):
        raise ValueError(f"instance ids of {sample.scene_id} stage {sample.stage} do not fit in int32")
    return {
        "scene_id": sample.scene_id,
        "stage": int(sample.stage),
        "frames": [int(k) for k in sample.frames],
        "num_points": len(sample),
        "points": np.ascontiguousarray(sample.points, dtype="<f4").tobytes(),
        "colors": np.ascontiguousarray(sample.colors, dtype=np.uint8).tobytes(),
        "ids": np.ascontiguousarray(ids, dtype="<i4").tobytes(),
    }


def sample_from_row(row: Mapping, url: str = "<parquet row>") -> Sample:
    """Rebuild a :class:`Sample` from one Parquet row (a mapping with the schema's columns).

    Args:
        row: e.g. a row of ``ray.data.read_parquet(shard_folder)`` or of :func:`read_samples`' table.
        url: the file the row comes from, for error messages.

    Returns:
        The sample: points (M, 3) float32, colors (M, 3) uint8, instance (M,) int64.

    Raises:
        DataError: a column is missing or a byte length disagrees with ``num_points``.
    """
    missing = [
        c for c in ("scene_id", "stage", "frames", "num_points", "points", "colors", "ids") if c not in row
    ]
    if missing:
        raise DataError(url, f"sample row lacks {', '.join(missing)}")
    m = int(row["num_points"])
    points, colors, ids = (bytes(row[c]) for c in ("points", "colors", "ids"))
    sid = str(row["scene_id"])
    for name, data, width in (("points", points, 12), ("colors", colors, 3), ("ids", ids, 4)):
        if m < 0 or len(data) != m * width:
            raise DataError(
                url, f"sample of {sid!r}: {name} holds {len(data)} bytes, {m} points need {m * width}"
            )
    frames = row["frames"]
    try:
        return Sample(
            np.frombuffer(points, dtype="<f4").reshape(m, 3).astype(np.float32),
            np.frombuffer(colors, dtype=np.uint8).reshape(m, 3).copy(),
            np.frombuffer(ids, dtype="<i4").astype(np.int64),
            sid,
            int(row["stage"]),
            tuple(int(k) for k in (frames if frames is not None else ())),
        )
    except (ValueError, TypeError) as e:
        raise DataError(url, f"invalid sample of {sid!r}: {e}") from None


def _write_parquet_samples(url: str, samples: Sequence[Sample], compress: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    rows = [sample_to_row(s) for s in samples]
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    buf = io.BytesIO()
    # one row group per ~64 samples keeps a reader's memory bounded on big stage-1 shards
    pq.write_table(table, buf, compression="zstd" if compress else "snappy", row_group_size=64)
    storage.write_bytes(url, buf.getvalue())


def _check_parquet_schema(url: str, schema) -> None:
    """A Parquet file's schema is a sample shard's: kind and version metadata (when present), columns."""
    meta = schema.metadata or {}
    kind = meta.get(b"tracklift.kind", b"").decode()
    if kind and kind != "samples":
        raise DataError(url, f"expected a 'samples' Parquet file, found {kind!r}")
    version = meta.get(b"tracklift.version")
    if version is not None and int(version) != VERSION:
        raise DataError(url, f"unsupported samples version {version.decode()}, expected {VERSION}")
    missing = [f.name for f in _parquet_schema() if f.name not in schema.names]
    if missing:
        raise DataError(url, f"Parquet shard lacks column(s) {', '.join(missing)}")


def _read_parquet_samples(url: str) -> list[Sample]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = storage.read_bytes(url)
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(url, f"not a readable Parquet file ({e})") from None
    _check_parquet_schema(url, table.schema)
    return [sample_from_row(row, url) for row in table.select(_parquet_schema().names).to_pylist()]


def _parquet_sample_sizes(url: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with storage.open_file(url, "rb") as f:
            pf = pq.ParquetFile(f)
            _check_parquet_schema(url, pf.schema_arrow)
            sizes = pf.read(columns=["num_points"]).column("num_points").to_numpy()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(url, f"not a readable Parquet file ({e})") from None
    if np.any(sizes < 0):
        raise DataError(url, "a sample has a negative num_points")
    return sizes.astype(np.int64)


def write_pseudo_labels(
    url: str, labels: PseudoLabels, scene_id: str, meta: dict | None = None, compress: bool = True
) -> None:
    """Write one scene's per-vertex pseudo-labels, atomically.

    Args:
        url: target (``.npz``).
        labels: per-vertex labels.
        scene_id: the scene they belong to (checked on read when asked).
        meta: JSON-serialisable extras (lifting config, tracker name, ...).
        compress: deflate the archive (ids and counts compress well; default on).
    """
    arrays = {
        "kind": np.array("pseudo_labels"),
        "version": np.array(VERSION, np.int64),
        "scene_id": np.array(scene_id),
        "ids": labels.ids,
        "confidence": labels.confidence,
        "votes": labels.votes,
        "seen": labels.seen,
        "meta": np.array(json.dumps(meta or {})),
    }
    _save(url, arrays, compress)


def read_pseudo_labels(
    url: str, n_vertices: int | None = None, scene_id: str | None = None
) -> tuple[PseudoLabels, dict]:
    """Read a file written by :func:`write_pseudo_labels`.

    Args:
        url: the file.
        n_vertices: when given, the file must hold this many vertices.
        scene_id: when given, the file must belong to this scene.

    Returns:
        ``(labels, meta)``.
    """
    a = _load(url, "pseudo_labels")
    _need(url, a, ["scene_id", "ids", "confidence", "votes", "seen", "meta"])
    if scene_id is not None and str(a["scene_id"]) != scene_id:
        raise DataError(url, f"pseudo-labels are for scene {str(a['scene_id'])!r}, not {scene_id!r}")
    try:
        labels = PseudoLabels(a["ids"], a["confidence"], a["votes"], a["seen"])
    except ValueError as e:
        raise DataError(url, str(e)) from None
    if n_vertices is not None and len(labels) != n_vertices:
        raise DataError(url, f"has {len(labels)} vertices, the mesh has {n_vertices}")
    try:
        meta = json.loads(str(a["meta"]))
    except json.JSONDecodeError as e:
        raise DataError(url, f"meta is not JSON ({e})") from None
    return labels, meta
