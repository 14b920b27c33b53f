"""ScanNet-protocol instance AP, class-agnostic: AP (0.50:0.90), AP50, AP25.

Semantics are those of ScanNet's ``evaluate_semantic_instance.py`` applied to a single class (FACTS.md §2):

- predictions and GT instances under ``min_region_size`` (100) vertices are dropped; a dropped GT still
  exists for the false-positive test below;
- GT instances are the distinct ids whose label ``id // 1000`` is valid for the preset; ids below 1000 are
  ignored groups; vertices with an invalid label (unannotated 0 included) are void;
- per threshold t, GTs in ascending id and predictions in input order: the first not-yet-used prediction
  with IoU > t is the GT's true positive; any further prediction with IoU > t on that GT is a false
  positive at the lower of the two scores, the GT keeps the higher, and (as in ScanNet) that prediction
  stays free to match a later GT;
- a prediction with IoU > t with no GT at all is a false positive only if its share of vertices on void,
  ignored groups and too-small GTs is <= t; otherwise it is ignored;
- IoU = inter / (gt_size + pred_size - inter), sizes counting every vertex (void included);
- matches are made per scene; the precision/recall curve is computed over all scenes together.

Per scene the (prediction × GT id) intersection counts come from one ``np.bincount``; the matching loops
run over (GT, prediction) pairs above the threshold only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tracklift.evaluation.presets import EvalPreset, get_preset
from tracklift.structures import Instances

#: ScanNet's overlap thresholds: 0.50, 0.55, ..., 0.90 (nine values, with float round-off) and 0.25.
OVERLAPS: np.ndarray = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
THRESHOLD_KEYS: tuple[str, ...] = tuple(f"{t:.2f}" for t in OVERLAPS)
_AP_RANGE = ~np.isclose(OVERLAPS, 0.25)
_I50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
_I25 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.25))[0])


@dataclass
class SceneMatches:
    """What one scene contributes at each threshold.

    Attributes:
        y_true: per threshold, (M,) bool: True for a matched GT, False for a false positive.
        y_score: per threshold, (M,) float64 confidence of each entry of ``y_true``.
        false_negatives: per threshold, GTs no prediction matched.
        num_gt: evaluated GT instances (valid label, id >= 1000, at least min_region_size vertices).
        num_pred: predictions kept (at least min_region_size vertices).
    """

    y_true: list[np.ndarray]
    y_score: list[np.ndarray]
    false_negatives: list[int]
    num_gt: int
    num_pred: int


def _overlap_counts(masks: np.ndarray, gt_index: np.ndarray, num_ids: int) -> np.ndarray:
    """(K, U) int64: ``out[k, u]`` = vertices of mask k whose GT id is the u-th distinct id."""
    k, n = masks.shape
    # flatnonzero on the flat view is ~6x faster than 2-D np.nonzero; rows/cols come from the flat index.
    flat = np.flatnonzero(masks)
    rows = flat // max(n, 1)
    pair = rows * num_ids + gt_index[flat - rows * n]
    return np.bincount(pair, minlength=k * num_ids).reshape(k, num_ids)


def match_scene(pred: Instances, gt: np.ndarray, preset: EvalPreset | str = "all_annotated") -> SceneMatches:
    """Match one scene's predictions to its GT at every threshold of :data:`OVERLAPS`.

    Args:
        pred: K predictions over the N vertices, in file order (order decides greedy matching).
        gt: (N,) int per-vertex GT, ``label_id * 1000 + instance``, 0 = unannotated.
        preset: which labels count (see :mod:`tracklift.evaluation.presets`).

    Returns:
        The scene's true/false positive entries and false-negative counts per threshold.
    """
    preset = get_preset(preset)
    gt = np.asarray(gt)
    if gt.ndim != 1 or (gt.size and not np.issubdtype(gt.dtype, np.integer)):
        raise ValueError(f"GT must be a 1-D integer array, got {gt.dtype} of shape {gt.shape}")
    if pred.num_points != gt.shape[0]:
        raise ValueError(f"predictions cover {pred.num_points} points but the GT has {gt.shape[0]}")
    if gt.size and gt.min() < 0:
        raise ValueError("GT ids must be >= 0")
    min_size = preset.min_region_size

    ids, gt_index, id_sizes = np.unique(gt, return_inverse=True, return_counts=True)
    inter = _overlap_counts(pred.masks, gt_index.reshape(-1), len(ids))
    keep = inter.sum(axis=1) >= min_size  # every vertex has an id (0 included): row sums are mask sizes
    inter, scores = inter[keep], pred.scores[keep]
    pred_sizes = inter.sum(axis=1)

    valid = preset.valid_labels(ids // 1000)
    candidate = valid & (ids != 0)  # ScanNet's GT instances before the size/group filter
    evaluated = candidate & (ids >= 1000) & (id_sizes >= min_size)
    ignored_ids = candidate & (ids < 1000)
    small_ids = candidate & (id_sizes < min_size)
    # Void, group and small-GT overlaps are summed separately, as ScanNet does.
    ignored_inter = inter[:, ~valid].sum(1) + inter[:, ignored_ids].sum(1) + inter[:, small_ids].sum(1)
    ignored_share = ignored_inter / np.maximum(pred_sizes, 1)

    union = id_sizes[None, :] + pred_sizes[:, None] - inter
    iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    iou_cand = iou[:, candidate]
    iou_eval = iou[:, evaluated]
    num_gt = iou_eval.shape[1]

    y_true, y_score, fns = [], [], []
    for t in OVERLAPS:
        hit = iou_eval > t
        used = np.zeros(len(scores), dtype=bool)
        gt_score = np.full(num_gt, -np.inf)
        dup_scores: list[float] = []
        # Pairs (gt, pred) above t, in ascending GT then file order: ScanNet's greedy loop.
        gis, pis = np.nonzero(hit.T)
        for g, p in zip(gis.tolist(), pis.tolist()):
            if used[p]:
                continue
            s = float(scores[p])
            if gt_score[g] == -np.inf:
                gt_score[g] = s
                used[p] = True
            else:
                dup_scores.append(min(gt_score[g], s))
                gt_score[g] = max(gt_score[g], s)
        matched = gt_score > -np.inf
        lonely = ~(iou_cand > t).any(axis=1) & (ignored_share <= t)
        n_fp = len(dup_scores) + int(lonely.sum())
        y_true.append(np.concatenate([np.ones(int(matched.sum()), bool), np.zeros(n_fp, bool)]))
        y_score.append(np.concatenate([gt_score[matched], np.asarray(dup_scores), scores[lonely]]))
        fns.append(int(num_gt - matched.sum()))
    return SceneMatches(y_true, y_score, fns, num_gt, int(keep.sum()))


def average_precision(y_true: np.ndarray, y_score: np.ndarray, false_negatives: int) -> float:
    """ScanNet's AP from pooled matches: one curve point per distinct score, plus (recall 0, precision 1).

    Args:
        y_true: (M,) bool, True = matched GT, False = false positive.
        y_score: (M,) float scores.
        false_negatives: GTs never matched (they cap recall).

    Returns:
        Area under the raw (not monotone-smoothed) curve, each point weighted by half the recall span
        between its two neighbours. 0.0 when nothing is above any threshold.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.size == 0:
        # ScanNet crashes here (GTs exist, every prediction ignored); the curve is the lone
        # artificial point at recall 0, whose area is 0.
        return 0.0
    order = np.argsort(y_score, kind="stable")
    sorted_scores, sorted_true = y_score[order], y_true[order]
    true_before = np.concatenate([[0], np.cumsum(sorted_true)])  # matched GTs strictly before index i
    _, first = np.unique(sorted_scores, return_index=True)  # operating points: score >= each distinct score
    total_true = true_before[-1]
    tp = total_true - true_before[first]
    fp = (len(sorted_scores) - first) - tp
    fn = true_before[first] + false_negatives
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    # ScanNet's np.convolve(recall, [-0.5, 0, 0.5], 'valid') on the recall padded with its first value
    # in front and 0 behind: half the recall drop from the previous to the next point.
    padded = np.concatenate([recall[:1], recall, [0.0]])
    widths = 0.5 * (padded[:-2] - padded[2:])
    return float(np.dot(precision, widths))


@dataclass
class APAccumulator:
    """Pools scenes one at a time (memory stays per-scene) and computes AP over all of them.

    Args:
        preset: preset name or object.
    """

    preset: EvalPreset | str = "all_annotated"
    _scenes: dict[str, SceneMatches] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.preset = get_preset(self.preset)

    def add(self, scene_id: str, pred: Instances, gt: np.ndarray, ignore: np.ndarray | None = None) -> None:
        """Match one scene.

        Args:
            scene_id: unique name; adding the same scene twice is an error.
            pred: predictions over the scene's N vertices.
            gt: (N,) per-vertex GT ids.
            ignore: optional (N,) bool, True = vertex removed before anything else (ScanNet++ exclusions).
        """
        if scene_id in self._scenes:
            raise ValueError(f"scene {scene_id!r} was already added")
        gt = np.asarray(gt)
        if ignore is not None:
            ignore = np.asarray(ignore)
            if ignore.dtype != np.bool_ or ignore.shape != gt.shape:
                raise ValueError(
                    f"scene {scene_id}: ignore must be a bool array of shape {gt.shape}, "
                    f"got {ignore.dtype} {ignore.shape}"
                )
            if pred.num_points != gt.shape[0]:
                raise ValueError(
                    f"scene {scene_id}: predictions cover {pred.num_points} points but the GT has {gt.shape[0]}"
                )
            kept = ~ignore
            pred = Instances(pred.masks[:, kept], pred.scores, pred.labels)
            gt = gt[kept]
        try:
            self._scenes[scene_id] = match_scene(pred, gt, self.preset)
        except ValueError as e:
            raise ValueError(f"scene {scene_id}: {e}") from None

    def result(self) -> dict:
        """``{"AP", "AP50", "AP25", "per_threshold": {"0.50": ..., "0.25": ...}, "num_scenes", "num_gt",
        "num_pred", "preset"}``; AP values in [0, 1], NaN when there is no GT instance."""
        scenes = list(self._scenes.values())
        num_gt = sum(s.num_gt for s in scenes)
        num_pred = sum(s.num_pred for s in scenes)
        aps = np.full(len(OVERLAPS), np.nan)
        for i in range(len(OVERLAPS)):
            if num_gt == 0:
                continue  # no GT: undefined (ScanNet's NaN)
            if num_pred == 0:
                aps[i] = 0.0
                continue
            aps[i] = average_precision(
                np.concatenate([s.y_true[i] for s in scenes]),
                np.concatenate([s.y_score[i] for s in scenes]),
                sum(s.false_negatives[i] for s in scenes),
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN is NaN, which is meant
            ap = float(np.nanmean(aps[_AP_RANGE]))
        return {
            "AP": ap,
            "AP50": float(aps[_I50]),
            "AP25": float(aps[_I25]),
            "per_threshold": {k: float(v) for k, v in zip(THRESHOLD_KEYS, aps)},
            "num_scenes": len(scenes),
            "num_gt": int(num_gt),
            "num_pred": int(num_pred),
            "preset": self.preset.name,
        }


def evaluate(
    preds: Mapping[str, Instances],
    gts: Mapping[str, np.ndarray],
    preset: EvalPreset | str = "all_annotated",
    ignore: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Class-agnostic ScanNet AP over several scenes.

    Args:
        preds: ``{scene_id: Instances}``; a GT scene missing here counts as having no predictions.
        gts: ``{scene_id: (N,) int}`` per-vertex GT in ScanNet encoding.
        preset: ``"all_annotated"`` (Segment3D), ``"scannet200_198"`` (Open3DIS) or an ``EvalPreset``.
        ignore: optional ``{scene_id: (N,) bool}`` vertices removed before evaluation.

    Returns:
        See :meth:`APAccumulator.result`.
    """
    extra = sorted(set(preds) - set(gts))
    if extra:
        raise ValueError(f"predictions for scenes without ground truth: {extra[:5]}")
    acc = APAccumulator(preset)
    for scene_id, gt in gts.items():
        gt = np.asarray(gt)
        pred = preds.get(scene_id)
        if pred is None:
            pred = Instances.empty(gt.shape[0] if gt.ndim == 1 else 0)
        acc.add(scene_id, pred, gt, None if ignore is None else ignore.get(scene_id))
    return acc.result()
