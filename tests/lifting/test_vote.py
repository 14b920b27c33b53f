import numpy as np
import pytest

from tracklift.lifting.smooth import mesh_edges, smooth_labels
from tracklift.lifting.vote import PseudoLabels, VoteAccumulator, group_winners


def _acc(frames, n=5, **kw):
    acc = VoteAccumulator(n, **kw)
    for idx, ids in frames:
        acc.add(np.array(idx), np.array(ids))
    return acc


def test_group_winners_majority_and_ties():
    g = np.array([0, 0, 0, 2, 2, 5, 5, 5, 5])
    lab = np.array([3, 4, 4, 9, 7, 1, 2, 2, 1])
    v, w, c = group_winners(g, lab)
    assert v.tolist() == [0, 2, 5]
    assert w.tolist() == [4, 7, 1]  # ties go to the smallest label
    assert c.tolist() == [2, 1, 2]
    v, w, c = group_winners(np.array([1, 1]), np.array([5, 6]), np.array([1, 3]))
    assert w.tolist() == [6] and c.tolist() == [3]


def test_resolve_rules():
    frames = [
        ([0, 1, 2, 3], [5, 5, 6, 0]),
        ([0, 1, 2, 3], [5, 6, 6, 0]),
        ([0, 1, 3], [5, 6, 8]),
        ([0, 1], [0, 7]),
    ]
    lab = _acc(frames).resolve(min_votes=2, min_ratio=0.5)
    # vertex 0: 5,5,5,0 -> 3/4; vertex 1: 5,6,6,7 -> 6 with 2/4; vertex 2: 6,6 -> 2/2
    # vertex 3: 0,0,8 -> 8 has 1 vote; vertex 4 never seen
    assert lab.ids.tolist() == [5, 6, 6, 0, 0]
    assert lab.seen.tolist() == [4, 4, 2, 3, 0]
    assert lab.votes.tolist() == [3, 2, 2, 1, 0]
    np.testing.assert_allclose(lab.confidence, [0.75, 0.5, 1.0, 1 / 3, 0.0])
    strict = _acc(frames).resolve(min_votes=2, min_ratio=0.6)
    assert strict.ids.tolist() == [5, 0, 6, 0, 0]
    loose = _acc(frames).resolve(min_votes=1, min_ratio=0.3)
    assert loose.ids.tolist() == [5, 6, 6, 8, 0]


def test_compaction_does_not_change_results():
    rng = np.random.default_rng(1)
    n = 200
    frames = []
    for _ in range(30):
        idx = np.sort(rng.choice(n, size=120, replace=False))
        frames.append((idx, rng.integers(0, 6, size=120)))
    a = _acc(frames, n=n, buffer_entries=50).resolve(1, 0.0)
    b = _acc(frames, n=n).resolve(1, 0.0)
    for name in ("ids", "confidence", "votes", "seen"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # brute force
    counts = np.zeros((n, 6), int)
    for idx, ids in frames:
        counts[idx, ids] += 1
    counts[:, 0] = 0
    np.testing.assert_array_equal(a.votes, counts.max(1))
    expect = np.where(counts.max(1) > 0, counts.argmax(1), 0)
    np.testing.assert_array_equal(a.ids, expect)


def test_rows_returns_the_stored_votes():
    acc = _acc([([0, 2, 3], [4, 4, 9]), ([2, 3], [4, 8]), ([3], [8])])
    row, ids, cnt = acc.rows(np.array([3, 1, 2]))
    got = sorted(zip(row.tolist(), ids.tolist(), cnt.tolist()))
    assert got == [(0, 8, 2), (0, 9, 1), (2, 4, 2)]


def test_large_ids_and_bad_ids():
    acc = _acc([([0, 1], [40_001_000, 3]), ([0], [40_001_000])])
    lab = acc.resolve(1, 0.5)
    assert lab.ids.tolist()[:2] == [40_001_000, 3]
    with pytest.raises(ValueError, match="2\\*\\*32"):
        acc.add(np.array([0]), np.array([-1]))


def test_pseudo_labels_instances():
    ids = np.array([0, 3, 3, 3, 5, 5, 9, 0])
    conf = np.array([0, 1.0, 0.5, 0.6, 0.9, 0.7, 1.0, 0], np.float32)
    lab = PseudoLabels(ids, conf, np.ones(8), np.ones(8), score_half_vertices=0)
    k, s = lab.instance_scores(min_vertices=2)
    assert k.tolist() == [3, 5]
    np.testing.assert_allclose(s, [0.7, 0.8], rtol=1e-6)
    assert lab.filtered_ids(2).tolist() == [0, 3, 3, 3, 5, 5, 0, 0]
    inst = lab.to_instances(min_vertices=2)
    assert inst.masks.shape == (2, 8)
    np.testing.assert_array_equal(inst.masks[0], ids == 3)
    np.testing.assert_array_equal(inst.masks[1], ids == 5)
    np.testing.assert_allclose(inst.scores, [0.7, 0.8], rtol=1e-6)
    assert len(lab.to_instances(min_vertices=4)) == 0
    with pytest.raises(ValueError, match="confidence"):
        PseudoLabels(ids, conf[:3], np.ones(8), np.ones(8))
    with pytest.raises(ValueError, match="score_half_vertices"):
        PseudoLabels(ids, conf, np.ones(8), np.ones(8), score_half_vertices=-1)


def test_instance_scores_rank_a_confident_fragment_below_an_object():
    """A small piece that a few views saw, always with the same id, has mean confidence 1; a large
    object loses confidence along its boundary. Ranked by mean confidence alone (the rule before the size
    prior) the fragment came first, and on the training scans such fragments outnumbered true positives."""
    ids = np.array([1] * 5000 + [2] * 150)
    conf = np.concatenate([np.full(4000, 0.95), np.full(1000, 0.5), np.ones(150)]).astype(np.float32)
    ones = np.ones(len(ids))
    _, plain = PseudoLabels(ids, conf, ones, ones, score_half_vertices=0).instance_scores(100)
    assert plain[1] > plain[0]  # by confidence alone the fragment wins
    lab = PseudoLabels(ids, conf, ones, ones, score_half_vertices=3000)
    k, s = lab.instance_scores(100)
    assert k.tolist() == [1, 2] and s[0] > s[1]
    np.testing.assert_allclose(s, [0.86 * 5000 / 8000, 150 / 3150], rtol=1e-5)
    assert np.all((s > 0) & (s <= 1))


def _grid_faces(nx, ny):
    i, j = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
    c = (i * ny + j).ravel()
    return np.concatenate([np.stack([c, c + ny, c + ny + 1], 1), np.stack([c, c + ny + 1, c + 1], 1)])


def test_mesh_edges_are_symmetric_and_unique():
    src, dst = mesh_edges(np.array([[0, 1, 2], [2, 1, 3], [3, 3, 1]]), 4)
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}
    assert len(src) == len(pairs)


def test_smoothing_fills_holes_and_keeps_confident_vertices():
    nx = ny = 6
    faces = _grid_faces(nx, ny)
    ids = np.full(nx * ny, 4, np.int64)
    ids[: ny * 2] = 0  # two rows unlabelled: only their border row may be filled... by majority
    hole = 3 * ny + 3
    ids[hole] = 0  # an inner hole surrounded by 4
    conf = np.where(ids > 0, 0.9, 0.0).astype(np.float32)
    wrong = 4 * ny + 2
    ids[wrong], conf[wrong] = 7, 0.2  # unsure wrong vertex inside the 4 region
    lab = PseudoLabels(ids, conf, np.ones(nx * ny), np.ones(nx * ny))
    out = smooth_labels(lab, faces, min_confidence=0.5, majority=0.5, iterations=1)
    assert out.ids[hole] == 4 and out.ids[wrong] == 4
    assert 0 < out.confidence[hole] <= 0.9
    # row 0 has no labelled neighbour, row 1 borders row 2 with less than a strict majority
    assert (out.ids[:ny] == 0).all()
    assert (out.ids[ny : 2 * ny] == 0).all()
    # confident vertices never change
    sure = conf >= 0.5
    np.testing.assert_array_equal(out.ids[sure], ids[sure])
    np.testing.assert_array_equal(out.votes, lab.votes)
