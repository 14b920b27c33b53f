"""Training data: a stage's shards in name order, unusable samples skipped, the scanned-part subsample."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.samples import make_sample
from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting import Sample, write_samples
from tracklift.training.data import load_stage_samples, stage_shards


def test_shards_in_name_order_and_samples_under_two_points_skipped(tmp_path):
    labels = str(tmp_path)
    folder = storage.join(labels, "shards", "stage1")
    tiny = Sample(np.zeros((1, 3)), np.zeros((1, 3), np.uint8), np.zeros(1), "s1", 1, (9,))
    write_samples(storage.join(folder, "b.npz"), [make_sample(1, 2), tiny])
    write_samples(storage.join(folder, "a.parquet"), [make_sample(1, 1)])
    storage.write_text(storage.join(folder, "notes.txt"), "not a shard")
    assert stage_shards(labels, 1) == [storage.join(folder, "a.parquet"), storage.join(folder, "b.npz")]
    assert [s.frames for s in load_stage_samples(labels, 1)] == [(1,), (2,)]

    write_samples(storage.join(labels, "shards", "stage2", "a.npz"), [tiny])
    with pytest.raises(DataError, match="no sample with at least 2 points"):
        load_stage_samples(labels, 2)
    storage.makedirs(storage.join(labels, "shards", "stage3"))
    with pytest.raises(DataError, match="holds no .npz or .parquet shard"):
        stage_shards(labels, 3)
