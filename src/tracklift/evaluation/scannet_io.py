"""ScanNet benchmark text formats for instance GT and predictions, and folder-level evaluation.

GT folder: ``<scene>.txt``, one integer per mesh vertex (``label_id * 1000 + instance``, 0 = unannotated).
Prediction folder: ``<scene>.txt`` with one line per instance, ``<relative/mask/path.txt> <label_id>
<confidence>``; each mask file holds one integer per vertex, non-zero = in the mask. Mask paths are
relative to the prediction folder and must stay inside it (ScanNet's own rule); for local folders that
includes symbolic links: the real path of the listing and of every mask must lie inside the real path of
the folder. All access goes through :mod:`tracklift.storage`, so folders may be local paths, ``file://``,
``s3://`` or ``memory://`` URLs.

Errors name the file and the line but never quote a file's content: a prediction folder may come from
someone else, and its files could be links to (or copies of) files the evaluator's user can read.
"""

from __future__ import annotations

import math
import os
import posixpath

import numpy as np

from tracklift import storage
from tracklift.datasets.tracklift_format import write_int_lines
from tracklift.errors import DataError
from tracklift.evaluation.instance_ap import APAccumulator
from tracklift.evaluation.presets import EvalPreset
from tracklift.structures import Instances

MASK_FOLDER = "pred_mask"
#: Label id written for class-agnostic predictions (the evaluator ignores labels).
DEFAULT_LABEL_ID = 1


def _parse_int_lines(url: str, data: bytes) -> np.ndarray:
    """One integer per line → (L,) int64; a :class:`DataError` naming ``url`` and the bad line otherwise."""
    raw = np.frombuffer(data, dtype=np.uint8)
    # Fast path (~100x): single-digit lines "0\n1\n...", what mask writers produce; 100 masks of 50k
    # vertices per scene would otherwise take seconds to parse.
    if raw.size and raw.size % 2 == 0 and np.all(raw[1::2] == ord("\n")):
        digits = raw[0::2]
        if np.all((digits >= ord("0")) & (digits <= ord("9"))):
            return (digits - ord("0")).astype(np.int64)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(url, "not UTF-8 text, expected one integer per line") from None
    if not lines:
        raise DataError(url, "file is empty, expected one integer per vertex")
    try:
        return np.array(lines, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next((i for i, s in enumerate(lines) if not _is_int64(s)), 0)
        raise DataError(
            url, f"line {bad + 1} is not an integer in int64 range, expected one integer per line"
        ) from None


def _is_int64(s: str) -> bool:
    """Whether numpy reads ``s`` as an int64 (the rule of the bulk parse, so the reported line is the one
    it failed on: a 20-digit line is a Python int but overflows int64)."""
    try:
        np.array(s, dtype=np.int64)
    except (ValueError, OverflowError):
        return False
    return True


def read_gt(url: str) -> np.ndarray:
    """Read a GT file.

    Args:
        url: ``<gt folder>/<scene>.txt``.

    Returns:
        (N,) int64 per-vertex ids.
    """
    gt = _parse_int_lines(url, storage.read_bytes(url))
    if gt.min() < 0:
        raise DataError(url, f"negative GT id {int(gt.min())}")
    return gt


def write_gt(url: str, ids: np.ndarray) -> None:
    """Write (N,) per-vertex GT ids, one per line."""
    write_int_lines(url, ids)


def read_mask(url: str, num_points: int) -> np.ndarray:
    """(N,) bool mask from a mask file (non-zero = inside); its line count must equal ``num_points``."""
    values = _parse_int_lines(url, storage.read_bytes(url))
    if len(values) != num_points:
        raise DataError(url, f"has {len(values)} lines but the GT has {num_points} vertices")
    return values != 0


def _mask_url(pred_dir: str, listing_url: str, lineno: int, rel: str) -> str:
    """URL of a mask listed in a prediction file; refuses paths leaving the prediction folder."""
    if rel.startswith(("/", "\\")) or "://" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(
            listing_url, f"line {lineno}: the mask path is absolute; it must be relative to the folder"
        )
    norm = posixpath.normpath(rel.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise DataError(listing_url, f"line {lineno}: the mask path points outside the prediction folder")
    return storage.join(pred_dir, norm)


def _check_inside(pred_dir: str, url: str, what: str) -> None:
    """Refuse a local file whose real path (symbolic links resolved) is not inside ``pred_dir``'s.

    Object stores and ``memory://`` have no links; their paths were checked by :func:`_mask_url`.

    Raises:
        DataError: naming ``url`` (never where the link leads).
    """
    if storage.protocol_of(pred_dir) not in ("file", "local"):
        return
    root = os.path.realpath(storage.filesystem(pred_dir)[1])
    real = os.path.realpath(storage.filesystem(url)[1])
    if os.path.commonpath([root, real]) != root:
        raise DataError(
            url, f"{what} is a symbolic link (or under one) leading outside the prediction folder"
        )


def read_predictions(pred_dir: str, scene_id: str, num_points: int) -> Instances:
    """Read one scene's predictions.

    Args:
        pred_dir: prediction folder URL holding ``<scene_id>.txt`` and the mask files.
        scene_id: scene name.
        num_points: vertex count of the scene's mesh (= GT length); every mask must have it.

    Returns:
        Instances in file order, with ``labels`` from the files; empty if ``<scene_id>.txt`` lists nothing.

    Raises:
        DataError: naming the listing or mask file, for malformed lines, non-numeric values, mask paths
            outside the folder, missing mask files, masks listed twice, or a wrong line count.
    """
    url = storage.join(pred_dir, f"{scene_id}.txt")
    _check_inside(pred_dir, url, "the prediction listing")
    masks, labels, scores, seen = [], [], [], set()
    for lineno, line in enumerate(storage.read_text(url).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(
                url,
                f"line {lineno} has {len(parts)} fields: expected '<relative mask path> <label id> <confidence>'",
            )
        rel, label_s, conf_s = parts
        try:
            label_f, conf = float(label_s), float(conf_s)
        except ValueError:
            raise DataError(url, f"line {lineno}: label id and confidence must be numbers") from None
        if not (math.isfinite(label_f) and math.isfinite(conf)):
            raise DataError(url, f"line {lineno}: label id and confidence must be finite")
        mask_url = _mask_url(pred_dir, url, lineno, rel)
        if mask_url in seen:
            raise DataError(url, f"line {lineno}: its mask is listed twice")
        seen.add(mask_url)
        # Where a link leads is checked first: what lies outside must not even be told apart by existence.
        _check_inside(pred_dir, mask_url, f"the mask file listed on line {lineno} of {url}")
        if not storage.exists(mask_url):
            raise DataError(mask_url, f"mask file listed on line {lineno} of {url} does not exist")
        if storage.isdir(mask_url):
            raise DataError(url, f"line {lineno}: the mask path names a folder, not a mask file")
        masks.append(read_mask(mask_url, num_points))
        labels.append(int(label_f))  # ScanNet reads label ids as int(float(...))
        scores.append(conf)
    if not masks:
        return Instances.empty(num_points)
    return Instances(np.stack(masks), np.asarray(scores), np.asarray(labels, dtype=np.int64))


def _mask_bytes(mask: np.ndarray) -> bytes:
    # "0\n"/"1\n" per vertex without a Python loop: digits at even bytes, newlines at odd ones.
    out = np.full(2 * mask.shape[0], ord("\n"), dtype=np.uint8)
    out[0::2] = ord("0") + mask.astype(np.uint8)
    return out.tobytes()


def write_predictions(url: str, scene_id: str, instances: Instances) -> str:
    """Write one scene's predictions in ScanNet's format.

    Masks go to ``<url>/pred_mask/<scene_id>_<k>.txt`` (k = position in ``instances``), then the listing
    ``<url>/<scene_id>.txt`` is written last, so a reader never sees a listing with missing masks.
    Scores are written with full precision; labels default to :data:`DEFAULT_LABEL_ID`.

    Returns:
        URL of the listing file.
    """
    labels = instances.labels if instances.labels is not None else np.full(len(instances), DEFAULT_LABEL_ID)
    lines = []
    for k in range(len(instances)):
        rel = f"{MASK_FOLDER}/{scene_id}_{k}.txt"
        storage.write_bytes(storage.join(url, rel), _mask_bytes(instances.masks[k]))
        lines.append(f"{rel} {int(labels[k])} {float(instances.scores[k])!r}")
    listing = storage.join(url, f"{scene_id}.txt")
    storage.write_text(listing, "".join(line + "\n" for line in lines))
    return listing


def _scene_ids(folder: str) -> list[str]:
    return sorted(name[:-4] for name in storage.listdir(folder) if name.endswith(".txt"))


def evaluate_dirs(
    pred_url: str,
    gt_url: str,
    preset: str | EvalPreset = "all_annotated",
    scenes: list[str] | None = None,
    ignore: dict[str, np.ndarray] | None = None,
) -> dict:
    """Evaluate a prediction folder against a GT folder (ScanNet protocol, class-agnostic).

    Args:
        pred_url: prediction folder (``<scene>.txt`` listings + mask files).
        gt_url: GT folder (``<scene>.txt`` per-vertex ids).
        preset: see :mod:`tracklift.evaluation.presets`.
        scenes: scene ids to evaluate; default every ``*.txt`` in the GT folder. A scene without a
            prediction listing counts as having no predictions.
        ignore: optional ``{scene_id: (N,) bool}``, vertices removed before evaluating (True = removed).

    Returns:
        See :meth:`tracklift.evaluation.instance_ap.APAccumulator.result`.
    """
    scene_ids = _scene_ids(gt_url) if scenes is None else list(scenes)
    if not scene_ids:
        raise DataError(gt_url, "no GT files (<scene>.txt) found")
    if not storage.isdir(pred_url):
        # a typo in the path would otherwise score as "no predictions anywhere" (AP 0)
        raise DataError(pred_url, "prediction folder not found")
    acc = APAccumulator(preset)
    for scene_id in scene_ids:
        gt_file = storage.join(gt_url, f"{scene_id}.txt")
        gt = read_gt(gt_file)
        listing = storage.join(pred_url, f"{scene_id}.txt")
        # before the existence test: a link out of the folder must not tell missing from existing targets
        _check_inside(pred_url, listing, "the prediction listing")
        if storage.exists(listing):
            pred = read_predictions(pred_url, scene_id, len(gt))
        else:
            pred = Instances.empty(len(gt))
        acc.add(scene_id, pred, gt, ignore=None if ignore is None else ignore.get(scene_id))
    return acc.result()


def _pct(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{100.0 * x:.1f}"


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table, one row per method: AP, AP50, AP25 in percent with one decimal.

    Args:
        results: ``{method name: evaluate() result}``.
    """
    width = max([len("method"), *(len(name) for name in results)])
    head = f"{'method':<{width}}  {'AP':>6}  {'AP50':>6}  {'AP25':>6}  {'scenes':>6}"
    rows = [head, "-" * len(head)]
    for name, r in results.items():
        rows.append(
            f"{name:<{width}}  {_pct(r['AP']):>6}  {_pct(r['AP50']):>6}  {_pct(r['AP25']):>6}"
            f"  {r.get('num_scenes', ''):>6}"
        )
    return "\n".join(rows)
