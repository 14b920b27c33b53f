"""The vectorised evaluator against a deliberately plain reference, and invariances of the protocol.

The reference below is written from the protocol description (FACTS.md §2 and the module docstring of
``tracklift.evaluation.instance_ap``) with per-vertex loops and dictionaries, no numpy tricks, so that
the two implementations share nothing but the thresholds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracklift.evaluation import OVERLAPS, AllAnnotated, ScanNet200Instances, evaluate
from tracklift.evaluation.scannet200 import VALID_CLASS_IDS_200
from tracklift.structures import Instances

THRESHOLDS = [float(t) for t in OVERLAPS]
KEYS = ["0.50", "0.55", "0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90", "0.25"]


# ---------------------------------------------------------------- reference implementation


def ref_is_valid(preset_name: str, label: int) -> bool:
    if preset_name == "all_annotated":
        return label >= 1
    return label in VALID_CLASS_IDS_200 and label not in (1, 3)  # ScanNet200 minus wall, floor


def ref_scene(masks: list[list[bool]], scores: list[float], gt: list[int], preset_name: str, min_size: int):
    """Per threshold: list of (is_true, score) entries and the number of missed GTs; plus counts."""
    n = len(gt)
    size_of: dict[int, int] = {}
    for v in range(n):
        size_of[gt[v]] = size_of.get(gt[v], 0) + 1
    # GT instances before filtering: non-zero ids with a valid label; kept: id >= 1000 and big enough.
    candidates = sorted(i for i in size_of if i != 0 and ref_is_valid(preset_name, i // 1000))
    kept_gts = [i for i in candidates if i >= 1000 and size_of[i] >= min_size]

    preds = []
    for mask, score in zip(masks, scores):
        size = 0
        void = 0
        inter: dict[int, int] = {}
        for v in range(n):
            if not mask[v]:
                continue
            size += 1
            if not ref_is_valid(preset_name, gt[v] // 1000):
                void += 1
            if gt[v] in candidates:
                inter[gt[v]] = inter.get(gt[v], 0) + 1
        if size >= min_size:
            preds.append({"size": size, "score": score, "void": void, "inter": inter})

    def iou(p, g):
        i = p["inter"].get(g, 0)
        return i / (size_of[g] + p["size"] - i)

    per_t = []
    for t in THRESHOLDS:
        used = [False] * len(preds)
        entries: list[tuple[bool, float]] = []
        missed = 0
        for g in kept_gts:
            best = None
            for j, p in enumerate(preds):
                if used[j] or g not in p["inter"]:
                    continue
                if iou(p, g) > t:
                    if best is None:
                        best = p["score"]
                        used[j] = True
                    else:  # duplicate: false positive at the lower score, GT keeps the higher
                        entries.append((False, min(best, p["score"])))
                        best = max(best, p["score"])
            if best is None:
                missed += 1
            else:
                entries.append((True, best))
        for p in preds:
            if any(iou(p, g) > t for g in p["inter"]):
                continue
            ignored = p["void"]
            for g, c in p["inter"].items():
                if g < 1000:
                    ignored += c
                if size_of[g] < min_size:
                    ignored += c
            if ignored / p["size"] <= t:
                entries.append((False, p["score"]))
        per_t.append((entries, missed))
    return per_t, len(kept_gts), len(preds)


def ref_ap(entries: list[tuple[bool, float]], missed: int) -> float:
    if not entries:
        return 0.0
    total_true = sum(1 for ok, _ in entries if ok)
    points = []  # (precision, recall) per distinct score, ascending
    for s in sorted({score for _, score in entries}):
        tp = sum(1 for ok, sc in entries if ok and sc >= s)
        fp = sum(1 for ok, sc in entries if not ok and sc >= s)
        fn = (total_true - tp) + missed
        points.append((tp / (tp + fp), tp / (tp + fn)))
    points.append((1.0, 0.0))
    ap = 0.0
    for i, (p, _) in enumerate(points):
        before = points[i - 1][1] if i > 0 else points[0][1]
        after = points[i + 1][1] if i + 1 < len(points) else 0.0
        ap += p * (before - after) / 2.0
    return ap


def ref_evaluate(scenes: dict, preset_name: str, min_size: int) -> dict:
    pooled = [([], 0) for _ in THRESHOLDS]
    num_gt = num_pred = 0
    for masks, scores, gt in scenes.values():
        per_t, g, p = ref_scene(masks.tolist(), scores.tolist(), gt.tolist(), preset_name, min_size)
        num_gt += g
        num_pred += p
        pooled = [(acc + e, m0 + m) for (acc, m0), (e, m) in zip(pooled, per_t)]
    out = {}
    for key, (entries, missed) in zip(KEYS, pooled):
        if num_gt == 0:
            out[key] = math.nan
        elif num_pred == 0:
            out[key] = 0.0
        else:
            out[key] = ref_ap(entries, missed)
    return {"per_threshold": out, "num_gt": num_gt, "num_pred": num_pred}


# ---------------------------------------------------------------- random scenes

LABELS = [1, 2, 3, 4, 12, 1191]  # wall, chair, floor, table, (12: not ScanNet200), mattress
SCORE_POOL = [0.1, 0.5, 0.5, 0.9]  # repeated values make ties likely


@st.composite
def random_scenes(draw, max_scenes: int = 3, n_range: tuple[int, int] = (30, 90)):
    """Several scenes: GT blocks (valid/invalid labels, groups < 1000, unannotated, small instances) and
    predictions that are noisy copies, unions, duplicates, random subsets, tiny or empty."""
    num_scenes = draw(st.integers(1, max_scenes))
    seed = draw(st.integers(0, 2**32 - 1))
    tie_scores = draw(st.booleans())
    rng = np.random.default_rng(seed)
    scenes = {}
    for s in range(num_scenes):
        n = int(rng.integers(*n_range))
        gt = np.zeros(n, dtype=np.int64)
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(1, 9))), replace=False))
        for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, n])):
            kind = rng.random()
            if kind < 0.15:
                gt[a:b] = 0
            elif kind < 0.25:
                gt[a:b] = int(rng.integers(1, 1000))  # ignored group
            else:
                gt[a:b] = int(rng.choice(LABELS)) * 1000 + k + 1
        gt = gt[rng.permutation(n)] if rng.random() < 0.3 else gt  # sometimes scattered instances
        ids = [i for i in np.unique(gt) if i != 0]
        masks = []
        for _ in range(int(rng.integers(0, 9))):
            kind = rng.random()
            if kind < 0.45 and ids:
                m = gt == rng.choice(ids)
                m ^= rng.random(n) < rng.choice([0.0, 0.05, 0.2])  # noisy copy
            elif kind < 0.6 and len(ids) >= 2:
                a, b = rng.choice(ids, size=2, replace=False)
                m = (gt == a) | (gt == b)
            elif kind < 0.75 and masks:
                m = masks[int(rng.integers(len(masks)))].copy()  # exact duplicate
            elif kind < 0.85:
                m = np.zeros(n, dtype=bool)
                m[: int(rng.integers(0, 4))] = True  # tiny or empty
            else:
                m = rng.random(n) < rng.random()
            masks.append(m)
        masks_arr = np.array(masks, dtype=bool).reshape(len(masks), n)
        pool = SCORE_POOL if tie_scores else None
        scores = rng.choice(pool, len(masks)) if pool else rng.random(len(masks))
        scenes[f"scene{s:04d}_00"] = (masks_arr, np.asarray(scores, dtype=np.float64), gt)
    return scenes


PRESET_CASES = [("all_annotated", AllAnnotated), ("scannet200_198", ScanNet200Instances)]


def run_ours(scenes: dict, preset) -> dict:
    preds = {k: Instances(m, s) for k, (m, s, _) in scenes.items()}
    return evaluate(preds, {k: gt for k, (_, _, gt) in scenes.items()}, preset=preset)


def same_values(a: dict, b: dict, tol: float = 1e-12) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or abs(a[k] - b[k]) <= tol for k in KEYS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes=random_scenes(), case=st.sampled_from(PRESET_CASES), min_size=st.sampled_from([1, 3, 8]))
def test_matches_reference_on_random_scenes(scenes, case, min_size):
    name, cls = case
    ours = run_ours(scenes, cls(min_region_size=min_size))
    ref = ref_evaluate(scenes, name, min_size)
    assert (ours["num_gt"], ours["num_pred"]) == (ref["num_gt"], ref["num_pred"])
    assert same_values(ours["per_threshold"], ref["per_threshold"]), (
        ours["per_threshold"],
        ref["per_threshold"],
    )
    nine = [ref["per_threshold"][k] for k in KEYS[:9]]
    if all(math.isnan(v) for v in nine):
        assert math.isnan(ours["AP"])
    else:
        assert ours["AP"] == pytest.approx(float(np.nanmean(nine)), abs=1e-12)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes=random_scenes(max_scenes=2, n_range=(300, 700)), case=st.sampled_from(PRESET_CASES))
def test_matches_reference_with_scannet_min_size(scenes, case):
    name, _ = case
    ours = run_ours(scenes, name)  # the real preset: min region size 100
    ref = ref_evaluate(scenes, name, 100)
    assert (ours["num_gt"], ours["num_pred"]) == (ref["num_gt"], ref["num_pred"])
    assert same_values(ours["per_threshold"], ref["per_threshold"])


def test_reference_catches_a_wrong_evaluator():
    """The comparison has teeth: marking duplicates as used (a common variant) changes results."""
    gt = np.zeros(400, dtype=np.int64)
    gt[:200], gt[200:] = 1001, 1002
    masks = np.zeros((2, 400), dtype=bool)
    masks[0, :200] = True
    masks[1, 80:] = True  # G1's duplicate at t=.25, then G2's match
    ref = ref_evaluate({"s": (masks, np.array([0.9, 0.8]), gt)}, "all_annotated", 100)
    assert ref["per_threshold"]["0.25"] == pytest.approx(11 / 12)
    assert run_ours({"s": (masks, np.array([0.9, 0.8]), gt)}, "all_annotated")["AP25"] == pytest.approx(
        11 / 12
    )


# ---------------------------------------------------------------- invariances

SMALL = AllAnnotated(min_region_size=3)


@settings(max_examples=40, deadline=None)
@given(scenes=random_scenes(), seed=st.integers(0, 2**32 - 1))
def test_vertex_permutation_does_not_matter(scenes, seed):
    rng = np.random.default_rng(seed)
    permuted = {}
    for k, (m, s, gt) in scenes.items():
        perm = rng.permutation(len(gt))
        permuted[k] = (m[:, perm], s, gt[perm])
    a, b = run_ours(scenes, SMALL), run_ours(permuted, SMALL)
    assert same_values(a["per_threshold"], b["per_threshold"], tol=0.0)


@settings(max_examples=40, deadline=None)
@given(scenes=random_scenes())
def test_scene_order_does_not_matter_and_doubling_the_data_does_not_either(scenes):
    reversed_scenes = dict(reversed(list(scenes.items())))
    doubled = {**scenes, **{k + "_copy": v for k, v in scenes.items()}}
    a = run_ours(scenes, SMALL)
    assert same_values(a["per_threshold"], run_ours(reversed_scenes, SMALL)["per_threshold"])
    d = run_ours(doubled, SMALL)
    assert same_values(a["per_threshold"], d["per_threshold"])  # every TP, FP, FN count doubles
    assert d["num_gt"] == 2 * a["num_gt"]


@settings(max_examples=40, deadline=None)
@given(scenes=random_scenes())
def test_monotone_score_transform_does_not_matter(scenes):
    squashed = {k: (m, np.exp(3.0 * s) - 7.0, gt) for k, (m, s, gt) in scenes.items()}
    assert same_values(run_ours(scenes, SMALL)["per_threshold"], run_ours(squashed, SMALL)["per_threshold"])


@settings(max_examples=40, deadline=None)
@given(scenes=random_scenes(), seed=st.integers(0, 2**32 - 1))
def test_lowest_score_prediction_off_the_gt_instances_does_not_matter(scenes, seed):
    """A last prediction below every score, on vertices of no evaluated GT: either ignored or an FP at
    the bottom of the curve, whose recall equals its neighbour's, so its step width is 0."""
    rng = np.random.default_rng(seed)
    lowest = min([float(s.min()) for _, s, _ in scenes.values() if len(s)] + [0.0]) - 1.0
    extended = {}
    for k, (m, s, gt) in scenes.items():
        ids, counts = np.unique(gt, return_counts=True)
        evaluated = ids[(ids >= 1000) & (counts >= SMALL.min_region_size)]
        free = ~np.isin(gt, evaluated)
        extra = free & (rng.random(len(gt)) < 0.8)
        extended[k] = (np.vstack([m, extra[None]]), np.append(s, lowest), gt)
    a, b = run_ours(scenes, SMALL), run_ours(extended, SMALL)
    assert same_values(a["per_threshold"], b["per_threshold"])


@settings(max_examples=30, deadline=None)
@given(scenes=random_scenes(), seed=st.integers(0, 2**32 - 1))
def test_ignore_equals_evaluating_the_kept_vertices(scenes, seed):
    rng = np.random.default_rng(seed)
    ignore = {k: rng.random(len(gt)) < 0.3 for k, (_, _, gt) in scenes.items()}
    preds = {k: Instances(m, s) for k, (m, s, _) in scenes.items()}
    gts = {k: gt for k, (_, _, gt) in scenes.items()}
    a = evaluate(preds, gts, preset=SMALL, ignore=ignore)
    cut = {k: (m[:, ~ignore[k]], s, gt[~ignore[k]]) for k, (m, s, gt) in scenes.items()}
    b = run_ours(cut, SMALL)
    assert same_values(a["per_threshold"], b["per_threshold"], tol=0.0)
