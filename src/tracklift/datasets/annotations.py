"""Per-vertex instance ground truth as ScanNet and ScanNet++ store it: over-segmentation + annotated groups.

Both datasets annotate a mesh in two files:
  - a segments file, ``{"segIndices": [seg_id per vertex]}`` (ScanNet ``<s>_vh_clean_2.0.010000.segs.json``,
    ScanNet++ ``scans/segments.json``);
  - an aggregation file, ``{"segGroups": [{"id", "objectId", "segments": [seg_id...], "label"}]}``
    (ScanNet ``<s>.aggregation.json``, ScanNet++ ``scans/segments_anno.json``).

A vertex in group ``g`` gets ``label_id(g["label"]) * 1000 + g["objectId"] + 1`` (ScanNet's encoding; 0 =
unannotated). The label id comes from a label map ``{name: id}``: ScanNet's ``scannetv2-labels.combined.tsv``
(name column ``raw_category``, id column ``id`` by default) or a class list with one name per line whose
ids are the 0-based line numbers (ScanNet++ ``metadata/semantic_classes.txt``). Group labels missing from
the map leave their vertices unannotated (logged), as both toolkits do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tracklift import storage
from tracklift.datasets.superpoints import DEFAULT_SEGMENTATOR, compute_superpoints, contiguous_ids, refine
from tracklift.errors import DataError

if TYPE_CHECKING:
    from tracklift.datasets.scene import SceneData

log = logging.getLogger(__name__)

LabelSource = dict[str, int] | str | None


def read_json(url: str) -> dict:
    """Parse a JSON object; missing or malformed files are a :class:`DataError` naming ``url``."""
    try:
        obj = json.loads(storage.read_text(url))
    except json.JSONDecodeError as e:
        raise DataError(url, f"invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(url, "expected a JSON object at the top level")
    return obj


def read_label_map(url: str, id_column: str = "id") -> dict[str, int]:
    """Read a label map file into ``{name: id}``.

    Args:
        url: a ``.tsv`` with a header row (ScanNet's ``scannetv2-labels.combined.tsv``: names in
            ``raw_category``) or a text file with one class name per line (id = 0-based line number).
        id_column: which TSV column holds the id (``id`` = ScanNet200 ids, ``nyu40id`` = NYU40).

    Returns:
        ``{name: id}``.
    """
    lines = storage.read_text(url).splitlines()
    if not url.endswith(".tsv"):
        return {name.strip(): i for i, name in enumerate(lines) if name.strip()}
    if not lines:
        raise DataError(url, "empty label map")
    header = lines[0].split("\t")
    name_col = next((c for c in ("raw_category", "name", "category") if c in header), None)
    if name_col is None or id_column not in header:
        raise DataError(url, f"label map needs a name column (raw_category) and an {id_column!r} column")
    ni, ii = header.index(name_col), header.index(id_column)
    out: dict[str, int] = {}
    for k, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) <= max(ni, ii) or not cells[ii].strip():
            continue  # rows without this id column's value are not mapped (as in ScanNet's own tools)
        try:
            out[cells[ni]] = int(cells[ii])
        except ValueError:
            raise DataError(url, f"line {k}: {id_column} {cells[ii]!r} is not an integer") from None
    return out


def resolve_label_map(
    source: LabelSource, candidates: Sequence[str], id_column: str = "id"
) -> tuple[dict[str, int], str] | None:
    """The label map to use: ``source`` itself (dict or URL), else the first candidate file that exists.

    Returns:
        ``(map, where)`` or None when no map is available.
    """
    if isinstance(source, dict):
        return {str(k): int(v) for k, v in source.items()}, "label_map argument"
    if isinstance(source, str):
        return read_label_map(source, id_column), source
    for url in candidates:
        if storage.exists(url):
            return read_label_map(url, id_column), url
    return None


def parent_url(url: str, levels: int = 1) -> str:
    """The folder ``levels`` above ``url`` (works for plain paths and ``proto://`` URLs)."""
    for _ in range(levels):
        url = url.rstrip("/")
        head, _, _ = url.rpartition("/")
        if not head or head.endswith(":/"):
            return url
        url = head
    return url


def read_seg_indices(url: str, n_vertices: int | None = None) -> np.ndarray:
    """``segIndices`` of a segments file as (N,) int64; checks the count against the mesh.

    Ids must be non-negative integers (JSON numbers with no fractional part; ``3.0`` is taken as 3,
    ``1.5``, strings and nested lists are refused).
    """
    obj = read_json(url)
    if "segIndices" not in obj:
        raise DataError(url, 'missing "segIndices"')
    raw = obj["segIndices"]
    if not isinstance(raw, list):
        raise DataError(url, '"segIndices" must be a list of integers')
    try:
        arr = np.asarray(raw) if raw else np.zeros(0, np.int64)
    except ValueError:
        raise DataError(url, '"segIndices" must be a flat list of integers') from None
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":  # bool, str, object (mixed) or nested
        raise DataError(url, '"segIndices" must be a flat list of integers')
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(url, f"segIndices[{k}] = {float(arr[k])!r} is not an integer")
    seg = arr.astype(np.int64)
    if seg.size and seg.min() < 0:
        k = int(np.argmax(seg < 0))
        raise DataError(url, f"segIndices[{k}] = {int(seg[k])} is negative")
    if n_vertices is not None and len(seg) != n_vertices:
        raise DataError(url, f"has {len(seg)} segment indices, the mesh has {n_vertices} vertices")
    return seg


def read_seg_groups(url: str) -> list[dict]:
    obj = read_json(url)
    groups = obj.get("segGroups")
    if not isinstance(groups, list):
        raise DataError(url, 'missing "segGroups" list')
    for k, g in enumerate(groups):
        if not isinstance(g, dict) or "segments" not in g or "label" not in g:
            raise DataError(url, f"segGroups[{k}] needs 'segments' and 'label'")
        if "objectId" not in g and "id" not in g:
            raise DataError(url, f"segGroups[{k}] has neither 'objectId' nor 'id'")
    return groups


def gt_from_groups(
    seg_indices: np.ndarray, groups: list[dict], label_map: dict[str, int], url: str
) -> np.ndarray:
    """Per-vertex GT ``label_id * 1000 + objectId + 1`` from segments and groups.

    Args:
        seg_indices: (N,) int64 segment id per vertex.
        groups: ``segGroups`` entries.
        label_map: ``{label name: label id}``.
        url: the aggregation file (for errors).

    Returns:
        (N,) int64, 0 = unannotated.
    """
    gt = np.zeros(len(seg_indices), dtype=np.int64)
    unknown: set[str] = set()
    for k, g in enumerate(groups):
        label = str(g["label"])
        if label not in label_map:
            unknown.add(label)
            continue
        obj = int(g.get("objectId", g.get("id")))
        if not 0 <= obj < 999:
            raise DataError(url, f"segGroups[{k}] objectId {obj} does not fit the label*1000+instance code")
        gt[np.isin(seg_indices, np.asarray(g["segments"], dtype=np.int64))] = (
            label_map[label] * 1000 + obj + 1
        )
    if unknown:
        log.warning("%s: labels not in the label map left unannotated: %s", url, ", ".join(sorted(unknown)))
    return gt


def load_gt(
    segs_url: str,
    groups_url: str,
    n_vertices: int | None,
    label_source: LabelSource,
    candidates: Sequence[str],
    id_column: str = "id",
) -> np.ndarray:
    """Read segments + groups + label map into per-vertex GT (see :func:`gt_from_groups`)."""
    resolved = resolve_label_map(label_source, candidates, id_column)
    if resolved is None:
        raise DataError(
            groups_url,
            "no label map to turn label names into ids: pass label_map= or put one of "
            + ", ".join(candidates)
            + " in place",
        )
    seg = read_seg_indices(segs_url, n_vertices)
    return gt_from_groups(seg, read_seg_groups(groups_url), resolved[0], groups_url)


# ---------------------------------------------------------------------------------------------- writing


def groups_from_gt(
    gt: np.ndarray, vertices: np.ndarray, cell: float = 0.5, segments: np.ndarray | None = None
) -> tuple[np.ndarray, list[tuple[int, int, list[int]]]]:
    """Turn per-vertex GT into an over-segmentation and groups, as an annotation tool would have made them.

    Segments are ``segments`` split where GT changes inside them (so that groups of segments reproduce GT
    exactly), or without ``segments`` the cells of a ``cell``-metre grid within each GT value, so objects
    span several segments (as real ones do).

    Args:
        gt: (N,) int GT ``label*1000 + instance``; every non-zero value needs instance >= 1.
        vertices: (N, 3) metres.
        cell: grid size of the over-segmentation in metres (without ``segments``).
        segments: optional (N,) int superpoint ids to refine by GT.

    Returns:
        ``(seg_indices (N,) int64, [(label_id, object_id, [segment ids])])``.
    """
    gt = np.asarray(gt, dtype=np.int64)
    if gt.min(initial=0) < 0:
        raise ValueError("GT values must be >= 0")
    if np.any((gt > 0) & (gt % 1000 == 0)):
        raise ValueError("GT values with instance 0 (label*1000) cannot be written as annotated groups")
    if segments is not None:
        seg = refine(segments, gt)
    else:
        cells = np.floor(np.asarray(vertices, dtype=np.float64) / cell).astype(np.int64)
        _, seg = np.unique(np.column_stack([gt, cells]), axis=0, return_inverse=True)
        seg = seg.reshape(-1).astype(np.int64)
    groups = []
    for value in np.unique(gt[gt > 0]).tolist():
        segs = np.unique(seg[gt == value]).tolist()
        groups.append((value // 1000, value % 1000 - 1, segs))
    return seg, groups


def label_names(label_ids: Sequence[int], labels: dict[int, str] | None) -> dict[int, str]:
    """Names for label ids (``label_<id>`` where ``labels`` has none); names must be unique."""
    labels = labels or {}
    names = {int(i): str(labels.get(int(i), f"label_{int(i)}")) for i in sorted(set(label_ids))}
    if len(set(names.values())) != len(names):
        raise ValueError(f"label names must be unique to be written as a label map: {names}")
    for name in names.values():
        if not name or any(c in name for c in "\t\n\r"):
            raise ValueError(f"label name {name!r} cannot be written (empty or contains tab/newline)")
    return names


def write_annotations(
    segs_url: str,
    groups_url: str,
    gt: np.ndarray,
    vertices: np.ndarray,
    names: dict[int, str],
    scene_ref: str,
    segs_ref: str,
    segments: np.ndarray | None = None,
) -> None:
    """Write a segments file and an aggregation file reproducing ``gt`` exactly on read.

    The segments file holds ``segments`` (superpoints) split where GT crosses them (see
    :func:`groups_from_gt`); without ``segments``, a grid over-segmentation within each GT value.
    """
    seg, groups = groups_from_gt(gt, vertices, segments=segments)
    write_superpoints(segs_url, seg, scene_ref)
    seg_groups = [
        {"id": k, "objectId": obj, "segments": segs, "label": names[label]}
        for k, (label, obj, segs) in enumerate(groups)
    ]
    storage.write_text(
        groups_url,
        json.dumps(
            {"sceneId": scene_ref, "appId": "tracklift", "segGroups": seg_groups, "segmentsFile": segs_ref}
        ),
    )


def write_label_tsv(url: str, names: dict[int, str]) -> None:
    """A ``scannetv2-labels.combined.tsv``-shaped map (``id`` and ``nyu40id`` both hold the label id)."""
    rows = ["id\traw_category\tcategory\tcount\tnyu40id"]
    rows += [f"{i}\t{n}\t{n}\t1\t{i}" for i, n in sorted(names.items())]
    storage.write_text(url, "\n".join(rows) + "\n")


def write_class_list(url: str, names: dict[int, str]) -> None:
    """A class list (one name per line, id = 0-based line number); gaps get unused placeholder names."""
    top = max(names, default=-1)
    if min(names, default=0) < 0:
        raise ValueError("label ids must be >= 0")
    lines = [names.get(i, f"_unused_{i}") for i in range(top + 1)]
    storage.write_text(url, "\n".join(lines) + "\n")


def ply_vertex_count(url: str) -> int:
    """Vertex count from a PLY header alone (no need to read the body to check a GT file's length)."""
    fs, path = storage.filesystem(url)
    try:
        with fs.open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise DataError(url, "file not found") from None
    end = head.find(b"end_header")
    text = head[: end if end >= 0 else len(head)].decode("latin-1")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element" and parts[1] == "vertex":
            return int(parts[2])
    raise DataError(url, "PLY header has no 'element vertex' line")


# ------------------------------------------------------------------------------ superpoint files


def segments_to_write(data: SceneData, source: str = "") -> np.ndarray:
    """The superpoints a writer stores for ``data``: its own, else computed from its mesh (default settings).

    Args:
        data: the scene being written.
        source: where it is written (logged).

    Returns:
        (N,) int64.
    """
    if data.superpoints is not None:
        sp = np.asarray(data.superpoints, dtype=np.int64).reshape(-1)
        if len(sp) != len(data.mesh.vertices):
            raise ValueError(f"superpoints have {len(sp)} values for {len(data.mesh.vertices)} vertices")
        return sp
    return compute_superpoints(data.mesh, source=source)


def read_superpoints(url: str, n_vertices: int | None = None) -> np.ndarray:
    """Superpoints from a segments file (any format), renumbered 0..K-1.

    Args:
        url: a segments JSON file (``segIndices``).
        n_vertices: the mesh's vertex count, checked against the file.

    Returns:
        (N,) int64.

    Raises:
        DataError: naming ``url``: missing or malformed ``segIndices``, wrong length, negative or
            non-integer ids.
    """
    return contiguous_ids(read_seg_indices(url, n_vertices))


def load_superpoints(segs_url: str, mesh_url: str) -> np.ndarray:
    """A reader's loader: :func:`read_superpoints` checked against the vertex count in the PLY header."""
    return read_superpoints(segs_url, ply_vertex_count(mesh_url))


def superpoints_json(superpoints: np.ndarray, scene_ref: str, params: dict | None = None) -> str:
    """The segments-file text: ``{"params", "sceneId", "segIndices"}``."""
    seg = np.asarray(superpoints, dtype=np.int64).reshape(-1)
    if seg.min(initial=0) < 0:
        raise ValueError("superpoint ids must be >= 0")
    params = DEFAULT_SEGMENTATOR.params() if params is None else params
    return json.dumps({"params": params, "sceneId": scene_ref, "segIndices": seg.tolist()})


def write_superpoints(url: str, superpoints: np.ndarray, scene_ref: str, params: dict | None = None) -> None:
    """Write a segments file (see :func:`superpoints_json`; ``params`` default: the default settings)."""
    storage.write_text(url, superpoints_json(superpoints, scene_ref, params))
