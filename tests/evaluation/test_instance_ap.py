"""Hand-computed cases of the ScanNet instance protocol (class-agnostic).

Expected values follow the protocol's curve: one point (precision, recall) per distinct score s, counting
entries with score >= s, plus the point (recall 0, precision 1); AP = sum_i p_i * (r_{i-1} - r_{i+1}) / 2
with r_{-1} = r_0 and a trailing 0 (ScanNet's ``np.convolve(recall, [-.5, 0, .5])`` step widths).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklift.evaluation import OVERLAPS, AllAnnotated, average_precision, evaluate, get_preset
from tracklift.structures import Instances

KEYS = ["0.50", "0.55", "0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90", "0.25"]


def make_gt(n: int, blocks: dict[int, tuple[int, int]], fill: int = 0) -> np.ndarray:
    gt = np.full(n, fill, dtype=np.int64)
    for gid, (a, b) in blocks.items():
        gt[a:b] = gid
    return gt


def make_preds(n: int, preds: list[tuple[list[tuple[int, int]], float]]) -> Instances:
    masks = np.zeros((len(preds), n), dtype=bool)
    for k, (ranges, _) in enumerate(preds):
        for a, b in ranges:
            masks[k, a:b] = True
    return Instances(masks, np.array([s for _, s in preds], dtype=np.float64))


def per_threshold(result: dict) -> list[float]:
    return [result["per_threshold"][k] for k in KEYS]


def test_overlaps_are_scannets():
    assert len(OVERLAPS) == 10
    assert np.array_equal(OVERLAPS, np.append(np.arange(0.5, 0.95, 0.05), 0.25))


def test_perfect_prediction_is_one():
    gt = make_gt(1000, {1001: (0, 150), 3002: (150, 350), 40003: (400, 700)})
    pred = make_preds(1000, [([(0, 150)], 0.3), ([(150, 350)], 0.9), ([(400, 700)], 0.6)])
    r = evaluate({"s": pred}, {"s": gt})
    assert per_threshold(r) == pytest.approx([1.0] * 10, abs=1e-12)  # widths of 1/3 sum to 1 - 1e-16
    assert (r["AP"], r["AP50"], r["AP25"]) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    assert (r["num_scenes"], r["num_gt"], r["num_pred"]) == (1, 3, 3)


def test_duplicate_is_false_positive_at_lower_score_and_gt_keeps_higher():
    # G1 matched first by the 0.7 copy (file order); the 0.9 copy is the duplicate: FP at min = 0.7,
    # G1's score becomes 0.9. Entries: TP 0.9, FP 0.7, TP 0.5 (G2).
    # Points (ascending s): s=.5 p=2/3 r=1; s=.7 p=1/2 r=1/2; s=.9 p=1 r=1/2; artificial p=1 r=0.
    # Widths: (1-.5)/2, (1-.5)/2, (.5-0)/2, (.5-0)/2 → AP = (2/3 + 1/2 + 1 + 1) / 4 = 19/24.
    gt = make_gt(1000, {1001: (0, 200), 1002: (200, 400)})
    pred = make_preds(1000, [([(0, 200)], 0.7), ([(0, 200)], 0.9), ([(200, 400)], 0.5)])
    r = evaluate({"s": pred}, {"s": gt})
    assert per_threshold(r) == pytest.approx([19 / 24] * 10, abs=1e-12)
    # Had the GT kept the first (0.7) score, the FP at 0.9 would give 10/24: the order matters.
    assert r["AP"] != pytest.approx(10 / 24)


def test_duplicate_stays_free_to_match_a_later_gt():
    # P2 = [80, 400): IoU with G1 = 120/400 = .3, with G2 = 200/320 = .625.
    # t=.25: P2 is G1's duplicate (FP at .8) and then G2's true positive at .8:
    #   entries TP .9, FP .8, TP .8 → s=.8 p=2/3 r=1; s=.9 p=1 r=1/2 → AP = 2/3*.25 + .5 + .25 = 11/12.
    # t in .5..6: P2 matches G2 only → AP 1. t >= .65: P2 is an FP at .8, G2 missed:
    #   s=.8 p=1/2 r=1/2; s=.9 p=1 r=1/2 → AP = 0 + 1/4 + 1/4 = 1/2.
    gt = make_gt(1000, {1001: (0, 200), 1002: (200, 400)})
    pred = make_preds(1000, [([(0, 200)], 0.9), ([(80, 400)], 0.8)])
    r = evaluate({"s": pred}, {"s": gt})
    assert per_threshold(r) == pytest.approx([1, 1, 1] + [0.5] * 6 + [11 / 12], abs=1e-12)
    assert r["AP"] == pytest.approx(2 / 3, abs=1e-12)
    assert r["AP50"] == 1.0
    assert r["AP25"] == pytest.approx(11 / 12, abs=1e-12)


@pytest.mark.parametrize("void_id", [0, 5, 999])  # unannotated, or ignored groups (< 1000)
def test_prediction_over_void_is_ignored_until_share_is_below_threshold(void_id):
    # P3: 150 void + 20 of G2 → IoU(G2) = 20/350, void share 150/170 = .882: ignored for t <= .85,
    # an FP at .9 for t = .90: entries TP .5, TP .5, FP .9 → points (p 2/3, r 1), (p 0, r 0), (p 1, r 0);
    # widths (1-0)/2, (1-0)/2, 0 → AP = 1/3.
    gt = make_gt(1000, {1001: (0, 200), 2001: (200, 400), void_id: (400, 600)})
    pred = make_preds(1000, [([(0, 200)], 0.5), ([(200, 400)], 0.5), ([(400, 550), (380, 400)], 0.9)])
    r = evaluate({"s": pred}, {"s": gt})
    assert per_threshold(r) == pytest.approx([1.0] * 8 + [1 / 3, 1.0], abs=1e-12)
    assert r["AP"] == pytest.approx((8 + 1 / 3) / 9, abs=1e-12)
    assert r["num_gt"] == 2


def test_small_gt_is_not_a_gt_and_its_overlap_is_ignored():
    # S (99 vertices) is not a GT; G3 (exactly 100) is. P2 = S + 60 of G1 (159 vertices):
    # IoU(S) = 99/159 = .623 → "found a GT" and ignored for t <= .6 and t = .25;
    # for t >= .65 its ignored share .623 <= t → FP at .9 above both TPs → AP 1/3 (as in the void test).
    gt = make_gt(1000, {1001: (0, 300), 1002: (300, 399), 1003: (399, 499)})
    pred = make_preds(1000, [([(0, 300)], 0.5), ([(300, 399), (0, 60)], 0.9), ([(399, 499)], 0.5)])
    r = evaluate({"s": pred}, {"s": gt})
    assert r["num_gt"] == 2
    assert per_threshold(r) == pytest.approx([1.0, 1.0, 1.0] + [1 / 3] * 6 + [1.0], abs=1e-12)
    # A prediction exactly on the small GT has 99 vertices: dropped, not an FP.
    r2 = evaluate({"s": make_preds(1000, [([(0, 300)], 0.5), ([(300, 399)], 0.9)])}, {"s": gt})
    assert r2["num_pred"] == 1
    # G1 found, G3 missed: points (p 1, r 1/2), (p 1, r 0) → AP = 1/4 + 1/4.
    assert r2["per_threshold"]["0.50"] == pytest.approx(0.5, abs=1e-12)


def test_prediction_below_min_size_is_dropped():
    gt = make_gt(1000, {1001: (0, 150)})
    r = evaluate({"s": make_preds(1000, [([(0, 99)], 0.9)])}, {"s": gt})
    assert r["num_pred"] == 0 and r["num_gt"] == 1
    assert per_threshold(r) == [0.0] * 10
    r = evaluate({"s": make_preds(1000, [([(0, 100)], 0.9)])}, {"s": gt})  # IoU 100/150
    assert r["num_pred"] == 1
    assert per_threshold(r) == [1.0] * 4 + [0.0] * 5 + [1.0]


@pytest.mark.parametrize(("fp_score", "ap50"), [(0.5, 0.375), (0.4, 0.5), (0.6, 0.125)])
def test_equal_scores_are_one_operating_point(fp_score, ap50):
    # TP at .5 on G1; P2 covers 150 of G2's 400 (IoU .375): FP for t >= .5, G2 missed.
    # Tie: one point p=1/2 r=1/2, then (r 0, p 1): AP = .5*.25 + 1*.25 = .375.
    # FP at .4: points (1/2, 1/2), (1, 1/2) → 0 + .25 + .25 = .5.
    # FP at .6: points (p 1/2, r 1/2), (p 0, r 0), (p 1, r 0) → .5 * .25 + 0 * .25 + 1 * 0 = .125.
    gt = make_gt(1000, {1001: (0, 200), 1002: (200, 600)})
    pred = make_preds(1000, [([(0, 200)], 0.5), ([(200, 350)], fp_score)])
    r = evaluate({"s": pred}, {"s": gt})
    assert r["AP50"] == pytest.approx(ap50, abs=1e-12)
    assert r["AP25"] == 1.0


def test_no_prediction_gives_zero_and_no_gt_gives_nan():
    gt = make_gt(500, {1001: (0, 200)})
    r = evaluate({}, {"s": gt})
    assert per_threshold(r) == [0.0] * 10 and r["num_pred"] == 0
    r = evaluate({"s": Instances.empty(500)}, {"s": gt})
    assert r["AP"] == 0.0
    only_void = make_gt(500, {5: (0, 200), 1001: (300, 350)})  # a group and a too-small instance
    r = evaluate({"s": make_preds(500, [([(0, 200)], 0.9)])}, {"s": only_void})
    assert r["num_gt"] == 0
    assert all(math.isnan(v) for v in per_threshold(r)) and math.isnan(r["AP"])


def test_gt_present_but_every_prediction_ignored_is_zero():
    gt = make_gt(600, {1001: (0, 200)})
    r = evaluate({"s": make_preds(600, [([(300, 500)], 0.9)])}, {"s": gt})  # all on unannotated
    assert r["num_pred"] == 1
    assert per_threshold(r) == [0.0] * 10


def test_scannet200_preset_treats_wall_floor_and_unlisted_labels_as_void():
    # wall (1), floor (3), chair (2), label 12 (not a ScanNet200 id), each predicted exactly.
    gt = make_gt(1000, {1001: (0, 300), 3001: (300, 600), 2001: (600, 800), 12001: (800, 1000)})
    exact = [([(0, 300)], 0.9), ([(300, 600)], 0.8), ([(600, 800)], 0.7), ([(800, 1000)], 0.6)]
    r_all = evaluate({"s": make_preds(1000, exact)}, {"s": gt}, preset="all_annotated")
    r_200 = evaluate({"s": make_preds(1000, exact)}, {"s": gt}, preset="scannet200_198")
    assert r_all["num_gt"] == 4 and r_200["num_gt"] == 1
    assert r_all["AP"] == 1.0 and r_200["AP"] == 1.0  # wall/floor/12 predictions are ignored, not FPs
    # Without the chair prediction: all_annotated still has 3 of 4, ScanNet200 has nothing.
    no_chair = [exact[0], exact[1], exact[3]]
    assert evaluate({"s": make_preds(1000, no_chair)}, {"s": gt}, preset="scannet200_198")["AP"] == 0.0
    # A wall-sized prediction over a chair: under ScanNet200 its wall part is void.
    wide = make_preds(1000, [([(0, 300)], 0.9), ([(500, 800)], 0.8)])  # 100 floor + 200 chair
    r = evaluate({"s": wide}, {"s": gt}, preset="scannet200_198")
    assert r["AP50"] == 1.0  # IoU(chair) = 200/300 > .5 and the void share never counts against it
    assert r["per_threshold"]["0.70"] == 0.0  # .667 <= .7: no TP; void share 1/3 <= .7 → FP


def test_scenes_are_pooled_not_averaged():
    # Scene a: TP at .9. Scene b: FP at .8 (IoU .458 with G2, .129 with G1), both GTs missed for t >= .5.
    # Pooled at t=.5: s=.8 p=1/2 r=1/3; s=.9 p=1 r=1/3; (r 0, p 1) → AP = 1/6 + 1/6 = 1/3.
    gt_a = make_gt(500, {1001: (0, 200)})
    gt_b = make_gt(500, {1001: (0, 200), 1002: (200, 400)})
    preds = {"a": make_preds(500, [([(0, 200)], 0.9)]), "b": make_preds(500, [([(160, 310)], 0.8)])}
    r = evaluate(preds, {"a": gt_a, "b": gt_b})
    assert r["AP50"] == pytest.approx(1 / 3, abs=1e-12)
    assert r["num_scenes"] == 2 and r["num_gt"] == 3


def test_ignore_mask_removes_vertices_before_evaluation():
    gt = make_gt(600, {1001: (0, 200)})
    pred = {"s": make_preds(600, [([(0, 150)], 0.9)])}  # IoU .75
    assert evaluate(pred, {"s": gt})["per_threshold"]["0.90"] == 0.0
    ignore = np.zeros(600, dtype=bool)
    ignore[150:200] = True  # G1 shrinks to the predicted 150 → IoU 1
    assert evaluate(pred, {"s": gt}, ignore={"s": ignore})["per_threshold"]["0.90"] == 1.0
    ignore[60:150] = True  # the prediction shrinks to 60 vertices → dropped; G1 too (60 < 100)
    r = evaluate(pred, {"s": gt}, ignore={"s": ignore})
    assert r["num_pred"] == 0 and r["num_gt"] == 0


def test_average_precision_direct():
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.7, 0.5]), 0)
    assert ap == pytest.approx(19 / 24, abs=1e-12)
    # One TP and a missed GT: p=1, r=1/2 → AP = 1 * (1/2 - 0)/2 + 1 * (1/2 - 0)/2 = 1/2.
    assert average_precision(np.array([True]), np.array([0.3]), 1) == pytest.approx(0.5)


def test_custom_min_region_size():
    gt = make_gt(100, {1001: (0, 20)})
    pred = {"s": make_preds(100, [([(0, 20)], 0.9)])}
    assert math.isnan(evaluate(pred, {"s": gt})["AP"])
    assert evaluate(pred, {"s": gt}, preset=AllAnnotated(min_region_size=10))["AP"] == 1.0


def test_bad_arguments():
    gt = make_gt(300, {1001: (0, 200)})
    with pytest.raises(ValueError, match="points"):
        evaluate({"s": Instances.empty(299)}, {"s": gt})
    with pytest.raises(ValueError, match="without ground truth"):
        evaluate({"t": Instances.empty(300)}, {"s": gt})
    with pytest.raises(ValueError, match="unknown evaluation preset"):
        get_preset("scannet20")
    with pytest.raises(ValueError, match=">= 0"):
        evaluate({}, {"s": -gt})
    with pytest.raises(ValueError, match="ignore"):
        evaluate({}, {"s": gt}, ignore={"s": np.zeros(3, dtype=bool)})
