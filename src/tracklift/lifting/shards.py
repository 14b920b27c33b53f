"""Pseudo-label shards and per-scene pseudo-label files, through :mod:`tracklift.storage`.

Both are NumPy ``.npz`` archives (a zip of ``.npy`` arrays): readable everywhere numpy is, loadable without
pickle, written in one object so the storage layer's temporary-key-then-move makes them atomic on
``file://``, ``s3://`` and ``memory://``. Parquet would need one row per point or list columns for no gain
here: training reads whole samples, never columns across samples. Set ``compress=True`` to deflate the
archive (about 2× smaller for stage 3, slower to write).

Sample shard (``kind = "samples"``), S samples with M_s points each, concatenated Pointcept-style:

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
from collections.abc import Sequence

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
    if "kind" not in arrays or str(arrays["kind"]) != kind:
        found = str(arrays["kind"]) if "kind" in arrays else "no kind"
        raise DataError(url, f"expected a {kind!r} archive, found {found!r}")
    if int(arrays.get("version", -1)) != VERSION:
        raise DataError(url, f"unsupported {kind} version {arrays.get('version')}, expected {VERSION}")
    return arrays


def _need(url: str, arrays: dict[str, np.ndarray], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(url, f"archive lacks {', '.join(missing)}")


def write_samples(url: str, samples: Sequence[Sample], compress: bool = False) -> None:
    """Write samples as one shard, atomically.

    Args:
        url: target (``.npz``), any fsspec URL or path.
        samples: the samples (may be empty).
        compress: deflate the archive.
    """
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


def read_samples(url: str) -> list[Sample]:
    """Read a shard written by :func:`write_samples`; a malformed one is a :class:`DataError`."""
    a = _load(url, "samples")
    _need(url, a, ["points", "colors", "instance", "offsets", "scene_id", "stage", "frames", "frame_offsets"])
    off, foff = a["offsets"], a["frame_offsets"]
    s = len(a["scene_id"])
    m = len(a["points"])
    ok = (
        off.shape == (s + 1,)
        and foff.shape == (s + 1,)
        and a["stage"].shape == (s,)
        and a["points"].shape == (m, 3)
        and a["colors"].shape == (m, 3)
        and a["instance"].shape == (m,)
        and (off[0] == 0 and off[-1] == m and np.all(np.diff(off) >= 0))
        and (foff[0] == 0 and foff[-1] == len(a["frames"]) and np.all(np.diff(foff) >= 0))
    )
    if not ok:
        raise DataError(url, "inconsistent shard: array lengths do not match the offsets")
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
