"""benchmarks/label_errors.py: the error classes behind the README's label error counts."""

import numpy as np

from . import load_benchmark


def test_each_error_class_is_recognised():
    errors = load_benchmark("label_errors")
    # GT: five objects of 300 vertices each (ids 1..5) and 300 vertices of nothing
    gt = np.repeat([1, 2, 3, 4, 5, 0], 300)
    labels = np.zeros_like(gt)
    labels[gt == 1] = 10  # object 1: matched exactly
    labels[(gt == 2) | (gt == 3)] = 20  # objects 2 and 3 under one label (IoU 0.5 each): merged, a union
    labels[gt == 4] = np.repeat([40, 41, 42], 100)  # object 4 in three thirds: split, three fragments
    labels[np.flatnonzero(gt == 5)[:20]] = 50  # object 5: only a 20-vertex label touches it: missed
    counts = errors.error_counts(labels, gt, np.ones(len(gt), bool))
    assert {k: counts[k] for k in errors.GT_KINDS} == {"matched": 1, "split": 1, "merged": 2, "missed": 1}
    # label 50 is under 100 vertices: not counted
    assert {k: counts[k] for k in errors.LABEL_KINDS} == {"tp": 1, "fragment": 3, "union": 1}
    # vertices that do not count are left out on both sides: object 1 alone remains, still matched
    only_first = gt == 1
    counts = errors.error_counts(labels, gt, only_first)
    assert counts["matched"] == 1 and sum(counts[k] for k in errors.GT_KINDS) == 1
