"""Parquet sample shards: round trip, the fixed schema, format choice by extension, bad files."""

import io

import numpy as np
import pytest

from tests.lifting.test_shards import _assert_same
from tests.lifting.test_shards import _samples as npz_samples
from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting import Sample, read_samples, write_samples
from tracklift.lifting.shards import is_parquet, sample_from_row, sample_to_row


def _samples(rng):
    # ids k * 1000 + 7: larger than the npz tests' 0..4
    return npz_samples(rng, id_scale=1000, id_offset=7)


@pytest.mark.parametrize("compress", [False, True])
def test_parquet_roundtrip_and_schema(compress):
    import pyarrow as pa
    import pyarrow.parquet as pq

    samples = _samples(np.random.default_rng(0))
    url = f"memory://pq/run1/s-{int(compress)}.parquet"
    write_samples(url, samples, compress=compress)
    _assert_same(samples, read_samples(url))
    assert not any(".tmp-" in n for n in storage.listdir("memory://pq/run1"))
    table = pq.read_table(io.BytesIO(storage.read_bytes(url)))
    assert table.num_rows == 3
    assert table.schema.field("scene_id").type == pa.string()
    assert table.schema.field("stage").type == pa.int32()
    assert table.schema.field("frames").type == pa.list_(pa.int32())
    assert table.schema.field("num_points").type == pa.int64()
    for name in ("points", "colors", "ids"):
        assert table.schema.field(name).type == pa.binary()
    row = table.slice(0, 1).to_pylist()[0]
    assert row["num_points"] == 50 and row["frames"] == [3]
    # the byte layout a reader without tracklift relies on
    np.testing.assert_array_equal(np.frombuffer(row["points"], "<f4").reshape(-1, 3), samples[0].points)
    np.testing.assert_array_equal(np.frombuffer(row["ids"], "<i4"), samples[0].instance)
    np.testing.assert_array_equal(np.frombuffer(row["colors"], np.uint8).reshape(-1, 3), samples[0].colors)


def test_extension_picks_the_format(tmp_path):
    samples = _samples(np.random.default_rng(1))
    pq_url, npz_url = str(tmp_path / "a.parquet"), str(tmp_path / "a.npz")
    write_samples(pq_url, samples)
    write_samples(npz_url, samples)
    assert storage.read_bytes(pq_url)[:4] == b"PAR1" and storage.read_bytes(npz_url)[:2] == b"PK"
    _assert_same(read_samples(pq_url), read_samples(npz_url))
    assert is_parquet("s3://b/x/Y.PARQUET") and not is_parquet("s3://b/x/y.npz")


def test_empty_parquet_shard(tmp_path):
    url = str(tmp_path / "empty.parquet")
    write_samples(url, [])
    assert read_samples(url) == []


def test_ids_outside_int32_are_refused():
    s = Sample(np.zeros((2, 3)), np.zeros((2, 3)), [1, 2**40], "x", 3)
    with pytest.raises(ValueError, match="int32"):
        sample_to_row(s)


def test_bad_parquet_files_are_data_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    junk = str(tmp_path / "junk.parquet")
    storage.write_bytes(junk, b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="junk.parquet.*not a readable Parquet"):
        read_samples(junk)
    # a Parquet file of something else: no sample columns
    other = str(tmp_path / "other.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), buf)
    storage.write_bytes(other, buf.getvalue())
    with pytest.raises(DataError, match="lacks column"):
        read_samples(other)
    # a truncated points blob
    row = sample_to_row(_samples(np.random.default_rng(2))[0])
    row["points"] = row["points"][:-4]
    with pytest.raises(DataError, match="points holds"):
        sample_from_row(row, "mem://x.parquet")
    row = sample_to_row(_samples(np.random.default_rng(2))[0])
    row["stage"] = 7
    with pytest.raises(DataError, match="stage"):
        sample_from_row(row, "mem://x.parquet")
