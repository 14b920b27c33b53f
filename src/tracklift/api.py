"""Segment your own point clouds from Python: ``tracklift.segment(points, colors, checkpoint=...)``.

One cloud in memory::

    import tracklift
    inst = tracklift.segment(points, colors, checkpoint="runs/main/train/stage3/last.pt")
    inst.masks        # (K, N) bool, one row per instance
    inst.scores       # (K,) float confidences
    inst.to_ids()     # (N,) int per-point instance 1..K, 0 = none

Files as users have them (PLY mesh or cloud, PCD, NPY, NPZ; see :mod:`tracklift.datasets.pointclouds`)::

    model = tracklift.load_segmenter("model.pt")
    summary = tracklift.segment_file("my_room.ply", model, out="runs/my_room")

:func:`segment_file` writes, per input ``<name>.<ext>``: the ScanNet benchmark prediction files
(``<out>/<name>.txt`` + ``<out>/pred_mask/<name>_<k>.txt``, scored by ``tracklift eval``), a PLY coloured by
instance (``<out>/<name>_instances.ply``, the input's faces kept, per-vertex ``instance`` field) and a JSON
summary (``<out>/<name>.json``: one entry per instance with its score, size, colour and bounding box).

Superpoints are computed on the fly (ScanNet's mesh segmentator on a mesh's faces, its k-nearest-neighbour
variant on a bare cloud) when the model's ``predict`` takes them; a model without superpoint decoding
segments points directly and no time is spent on them.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tracklift import storage
from tracklift.datasets.pointclouds import DEFAULT_MAX_POINTS, cloud_name, colors_uint8, read_point_cloud
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError

if TYPE_CHECKING:
    from tracklift.models.segmenter import Segmenter
    from tracklift.structures import Instances

log = logging.getLogger(__name__)
NO_INSTANCE_COLOR = (90, 90, 90)  # points of no instance in the coloured PLY


def load_segmenter(checkpoint: str, device: str = "cpu", backend: str | None = None) -> Segmenter:
    """Load a trained checkpoint (path, ``s3://`` URL) once, for many :func:`segment` calls.

    Args:
        checkpoint: written by ``tracklift train`` (``<out>/stage3/last.pt``) or ``save_checkpoint``.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        backend: sparse-convolution backend (``torch``, ``minkowski``, ``spconv``); default the checkpoint's.
    """
    from tracklift.models.segmenter import Segmenter

    return Segmenter.from_checkpoint(checkpoint, device=device, backend=backend)


def takes_superpoints(model: Any) -> bool:
    """True when the model decodes masks per superpoint (a :class:`~tracklift.models.Segmenter` says so in
    ``superpoint_level``; another model when its ``predict`` accepts a ``superpoints=`` argument)."""
    level = getattr(model, "superpoint_level", None)
    if isinstance(level, bool):
        return level
    try:
        return "superpoints" in inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False


def _check_points(points: Any, source: str) -> np.ndarray:
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.dtype.kind not in "iuf":
        raise DataError(
            source, f"points must be an (N, 3) array of numbers, got shape {pts.shape} {pts.dtype}"
        )
    if len(pts) < 2:
        raise DataError(source, f"a cloud needs at least 2 points, got {len(pts)}")
    pts = pts.astype(np.float32)
    if not np.isfinite(pts).all():
        raise DataError(source, "points hold NaN or infinite coordinates")
    return pts


def compute_cloud_superpoints(mesh: Mesh, source: str = "points") -> np.ndarray:
    """(N,) int64 superpoints 0..K-1: the mesh segmentator on ``mesh.faces``, the kNN variant without."""
    from tracklift.datasets.superpoints import compute_superpoints

    return compute_superpoints(mesh, source=source)


def segment(
    points: Any,
    colors: Any = None,
    *,
    checkpoint: str | Segmenter,
    superpoints: Any = None,
    device: str = "cpu",
    faces: Any = None,
) -> Instances:
    """Segment one point cloud into class-agnostic instances.

    Args:
        points: (N, 3) coordinates, metres (any float or int dtype; N >= 2, all finite).
        colors: (N, 3) RGB as uint8 / ints 0..255 or floats in [0, 1] (or 0..255); None = mid-grey.
        checkpoint: a checkpoint path / URL, or a model from :func:`load_segmenter` (pass a model to
            segment many clouds without reloading it).
        superpoints: optional (N,) int superpoint id per point; computed when the model takes superpoints
            and none are given, ignored (with a warning) when the model does not take them.
        device: torch device for a checkpoint path (a loaded model stays where it is).
        faces: optional (F, 3) triangle vertex ids, used only to compute superpoints of a mesh.

    Returns:
        :class:`~tracklift.structures.Instances`: (K, N) bool ``masks``, (K,) ``scores``.

    Raises:
        DataError: malformed points / colours / superpoints, or an unreadable checkpoint.
    """
    pts = _check_points(points, "points")
    cols = colors_uint8(None if colors is None else np.asarray(colors), len(pts), "colors")
    model = load_segmenter(checkpoint, device=device) if isinstance(checkpoint, str) else checkpoint
    if not takes_superpoints(model):
        if superpoints is not None:
            log.warning("the model has no superpoint decoding: the given superpoints are not used")
        return model.predict(pts, cols)
    if superpoints is None:
        superpoints = compute_cloud_superpoints(Mesh(pts, cols, faces))
    sp = np.asarray(superpoints)
    if sp.shape != (len(pts),) or sp.dtype.kind not in "iu":
        raise DataError("superpoints", f"expected ({len(pts)},) integer ids, got shape {sp.shape} {sp.dtype}")
    return model.predict(pts, cols, superpoints=sp.astype(np.int64))


def segment_file(
    url: str,
    model: Segmenter,
    out: str,
    name: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> dict:
    """Read one point-cloud file, segment it and write its outputs (see the module docstring).

    Args:
        url: a ``.ply`` / ``.pcd`` / ``.npy`` / ``.npz`` file (path, ``s3://`` URL).
        model: from :func:`load_segmenter`.
        out: output folder URL.
        name: output name (default: the file name without its suffix).
        max_points: refuse files holding or declaring more points.

    Returns:
        The JSON summary that was written to ``<out>/<name>.json``.

    Raises:
        DataError: the file cannot be read (naming it and the problem) or the model refuses the cloud.
    """
    name = name or cloud_name(url)
    t0 = time.perf_counter()
    mesh = read_point_cloud(url, max_points)
    t_read = time.perf_counter()
    superpoints = None
    if takes_superpoints(model):
        superpoints = compute_cloud_superpoints(mesh, source=url)
    t_sp = time.perf_counter()
    try:
        inst = segment(
            mesh.vertices, mesh.colors, checkpoint=model, superpoints=superpoints, faces=mesh.faces
        )
    except ValueError as e:  # the model's refusals (too few points, too many voxels) name no file
        raise DataError(url, str(e)) from None
    t_model = time.perf_counter()
    timings = {"read": t_read - t0, "superpoints": t_sp - t_read, "segment": t_model - t_sp}
    return write_outputs(out, name, mesh, inst, source=url, superpoints=superpoints, timings_s=timings)


def write_outputs(
    out: str,
    name: str,
    mesh: Mesh,
    instances: Instances,
    source: str = "",
    superpoints: np.ndarray | None = None,
    timings_s: dict[str, float] | None = None,
) -> dict:
    """Write one cloud's predictions: ScanNet files, a PLY coloured by instance, a JSON summary.

    Args:
        out: output folder URL.
        name: the cloud's name (file names and the ScanNet scene id).
        mesh: the input: vertices (N, 3), colors, optional faces (kept in the coloured PLY).
        instances: (K, N) predictions.
        source: the input's URL (recorded in the summary).
        superpoints: (N,) ids when they were computed (their count is recorded).
        timings_s: seconds per phase (recorded).

    Returns:
        The summary dict written to ``<out>/<name>.json``.
    """
    from tracklift.datasets.ply import write_ply
    from tracklift.evaluation.pictures import id_colors
    from tracklift.evaluation.scannet_io import write_predictions

    listing = write_predictions(out, name, instances)
    ids = instances.to_ids()
    colored = Mesh(mesh.vertices, id_colors(ids, none_color=NO_INSTANCE_COLOR), mesh.faces)
    ply_url = storage.join(out, f"{name}_instances.ply")
    write_ply(ply_url, colored, extra={"instance": ids.astype(np.int32)})
    palette = id_colors(np.arange(1, len(instances) + 1))
    entries = []
    for k in range(len(instances)):
        pts = mesh.vertices[instances.masks[k]]
        entries.append(
            {
                "id": k + 1,
                "score": float(instances.scores[k]),
                "num_points": int(len(pts)),
                "mask": f"pred_mask/{name}_{k}.txt",
                "color": [int(c) for c in palette[k]],
                # metres, to 0.1 mm (the input's float32 coordinates carry no more)
                "bbox_min": [round(float(v), 4) for v in pts.min(axis=0)] if len(pts) else None,
                "bbox_max": [round(float(v), 4) for v in pts.max(axis=0)] if len(pts) else None,
            }
        )
    summary = {
        "name": name,
        "input": source,
        "num_points": int(len(mesh.vertices)),
        "num_faces": int(len(mesh.faces)) if mesh.faces is not None else 0,
        "num_superpoints": int(superpoints.max() + 1)
        if superpoints is not None and len(superpoints)
        else None,
        "num_instances": len(instances),
        "num_points_in_no_instance": int((ids == 0).sum()),
        "instances": entries,
        "outputs": {"scannet": listing, "ply": ply_url, "json": storage.join(out, f"{name}.json")},
        "timings_s": {k: round(v, 4) for k, v in (timings_s or {}).items()},
    }
    storage.write_text(summary["outputs"]["json"], json.dumps(summary, indent=2))
    return summary


def output_names(urls: list[str]) -> list[str]:
    """One output name per input: the file name without its suffix, or with the suffix kept
    (``room_ply``, ``room_npz``) where two inputs share a name."""
    stems = [cloud_name(u) for u in urls]
    return [s if stems.count(s) == 1 else storage.basename(u).replace(".", "_") for s, u in zip(stems, urls)]
