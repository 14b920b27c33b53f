"""Ranking by cosine similarity, the feature files beside predictions, and queries over them."""

from __future__ import annotations

import numpy as np
import pytest

from tracklift import storage
from tracklift.errors import DataError
from tracklift.openvocab import (
    ClipConfig,
    clip_features_url,
    query_predictions,
    rank_instances,
    read_clip_features,
    write_clip_features,
)


def test_rank_is_argsort_of_cosine_with_unseen_last():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(20, 8)) * rng.uniform(0.1, 5.0, size=(20, 1))  # any row lengths
    unseen = np.array([2, 7, 15])
    feats[unseen] = 0.0
    text = rng.normal(size=8)
    order, sim = rank_instances(feats, text)
    assert order.dtype == np.int64 and sim.dtype == np.float32 and sim.shape == (20,)
    seen = np.setdiff1d(np.arange(20), unseen)
    cos = feats[seen] @ text / (np.linalg.norm(feats[seen], axis=1) * np.linalg.norm(text))
    np.testing.assert_allclose(sim[seen], cos, rtol=1e-5)
    assert np.all(sim[unseen] == 0)
    np.testing.assert_array_equal(order[: len(seen)], seen[np.argsort(-cos, kind="stable")])
    np.testing.assert_array_equal(order[len(seen) :], unseen)
    # a negative similarity still ranks above an unseen instance
    assert sim[order[len(seen) - 1]] < 0


def test_rank_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        rank_instances(np.ones((3, 4)), np.ones(5))
    with pytest.raises(ValueError, match="zero"):
        rank_instances(np.ones((3, 4)), np.zeros(4))
    order, sim = rank_instances(np.zeros((0, 4)), np.ones(4))
    assert order.shape == (0,) and sim.shape == (0,)


def _write(pred, scene_id, feats, model="m"):
    masks = [f"pred_mask/{scene_id}_{k}.txt" for k in range(len(feats))]
    views = np.array([int(np.any(f)) * 3 for f in feats])
    return write_clip_features(
        pred, scene_id, np.asarray(feats, np.float32), masks, views, ClipConfig(model=model)
    )


def test_feature_file_round_trip_and_errors():
    pred = "memory://ov-files/pred"
    feats = np.eye(3, 4, dtype=np.float32)
    url = _write(pred, "scene0001_00", feats)
    assert url == clip_features_url(pred, "scene0001_00") and url.endswith("scene0001_00_clip.npz")
    cf = read_clip_features(url)
    assert cf.scene_id == "scene0001_00" and cf.model == "m" and cf.checkpoint == ""
    np.testing.assert_array_equal(cf.features, feats)
    assert cf.masks == [f"pred_mask/scene0001_00_{k}.txt" for k in range(3)]
    np.testing.assert_array_equal(cf.views, [3, 3, 3])
    storage.write_bytes(storage.join(pred, "junk_clip.npz"), b"not an npz")
    with pytest.raises(DataError, match="not a CLIP feature file"):
        read_clip_features(storage.join(pred, "junk_clip.npz"))
    with pytest.raises(DataError, match="named"):
        read_clip_features(storage.join(pred, "scene0001_00.npz"))
    with pytest.raises(ValueError, match="disagree"):
        write_clip_features(pred, "x", feats, ["a"], np.zeros(3), ClipConfig())


class TextEncoder:
    """Embeds a prompt as a fixed direction: 'x' → e0, 'y' → e1."""

    name = "m"
    dim = 3

    def encode_text(self, texts):
        return np.stack([np.eye(3, dtype=np.float32)[{"x": 0, "y": 1}[t]] for t in texts])


def test_query_ranks_across_scenes():
    pred = "memory://ov-query/pred"
    _write(pred, "a", [[1, 0, 0], [0, 0, 0], [0.6, 0.8, 0]])
    _write(pred, "b", [[0.8, 0.6, 0], [-1, 0, 0]])
    hits = query_predictions(pred, "x", TextEncoder())
    got = [(h.scene_id, h.mask.rsplit("_", 1)[1], round(h.similarity, 3), h.seen) for h in hits]
    assert got == [
        ("a", "0.txt", 1.0, True),
        ("b", "0.txt", 0.8, True),
        ("a", "2.txt", 0.6, True),
        ("b", "1.txt", -1.0, True),
        ("a", "1.txt", 0.0, False),
    ]
    assert [h.scene_id for h in query_predictions(pred, "y", TextEncoder(), top_k=2)] == ["a", "b"]
    assert [h.scene_id for h in query_predictions(pred, "x", TextEncoder(), scene_ids=["b"])] == ["b", "b"]


def test_query_refuses_features_of_another_model():
    pred = "memory://ov-other/pred"
    _write(pred, "a", [[1, 0, 0]], model="ViT-L-14")
    with pytest.raises(DataError, match="'ViT-L-14'"):
        query_predictions(pred, "x", TextEncoder())
    with pytest.raises(DataError, match="no CLIP feature files"):
        query_predictions("memory://ov-empty/pred", "x", TextEncoder())
