import io

import numpy as np
import pytest

from tracklift import storage
from tracklift.errors import DataError
from tracklift.lifting import (
    PseudoLabels,
    Sample,
    read_pseudo_labels,
    read_samples,
    write_pseudo_labels,
    write_samples,
)


def _samples(rng, id_scale: int = 1, id_offset: int = 0):
    """Samples of stages 1, 2, 3 (the stage-2 one empty); ids are ``k * id_scale + id_offset``, k in 0..4."""
    out = []
    for stage, m, frames in [(1, 50, (3,)), (2, 0, (0, 1, 2)), (3, 80, ())]:
        out.append(
            Sample(
                rng.normal(size=(m, 3)),
                rng.integers(0, 256, size=(m, 3)),
                rng.integers(0, 5, size=m) * id_scale + id_offset,
                f"scene{stage:04d}_00",
                stage,
                frames,
            )
        )
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.points, y.points)
        np.testing.assert_array_equal(x.colors, y.colors)
        np.testing.assert_array_equal(x.instance, y.instance)
        assert (x.scene_id, x.stage, x.frames) == (y.scene_id, y.stage, y.frames)
        assert y.points.dtype == np.float32 and y.colors.dtype == np.uint8 and y.instance.dtype == np.int64


@pytest.mark.parametrize("compress", [False, True])
def test_samples_roundtrip_memory(compress):
    samples = _samples(np.random.default_rng(0))
    url = f"memory://shards/run1/shard-{int(compress)}.npz"
    write_samples(url, samples, compress=compress)
    _assert_same(samples, read_samples(url))
    # atomic write: the shard is there and no temporary key is left next to it
    names = storage.listdir("memory://shards/run1")
    assert f"shard-{int(compress)}.npz" in names
    assert not any(".tmp-" in n for n in names)


def test_samples_roundtrip_file_and_empty(tmp_path):
    url = str(tmp_path / "out" / "empty.npz")
    write_samples(url, [])
    assert read_samples(url) == []
    samples = _samples(np.random.default_rng(1))
    write_samples(f"file://{tmp_path}/out/s.npz", samples)
    _assert_same(samples, read_samples(str(tmp_path / "out" / "s.npz")))
    assert sorted(storage.listdir(str(tmp_path / "out"))) == ["empty.npz", "s.npz"]


def test_bad_shards_are_data_errors():
    storage.write_bytes("memory://bad/garbage.npz", b"not a zip at all")
    with pytest.raises(DataError, match="garbage.npz.*npz"):
        read_samples("memory://bad/garbage.npz")
    with pytest.raises(DataError, match="not found"):
        read_samples("memory://bad/missing.npz")
    labels = PseudoLabels(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    write_pseudo_labels("memory://bad/labels.npz", labels, "scene0000_00")
    with pytest.raises(DataError, match="'samples' archive"):
        read_samples("memory://bad/labels.npz")
    # offsets that do not match the arrays
    buf = io.BytesIO()
    np.savez(
        buf,
        kind=np.array("samples"),
        version=np.array(1),
        points=np.zeros((4, 3), np.float32),
        colors=np.zeros((4, 3), np.uint8),
        instance=np.zeros(4, np.int64),
        offsets=np.array([0, 5]),
        scene_id=np.array(["s"]),
        stage=np.array([1]),
        frames=np.zeros(0, np.int64),
        frame_offsets=np.array([0, 0]),
    )
    storage.write_bytes("memory://bad/offsets.npz", buf.getvalue())
    with pytest.raises(DataError, match="offsets"):
        read_samples("memory://bad/offsets.npz")


def test_pseudo_labels_roundtrip():
    rng = np.random.default_rng(2)
    n = 1000
    labels = PseudoLabels(
        rng.integers(0, 50, n), rng.random(n).astype(np.float32), rng.integers(0, 9, n), rng.integers(0, 9, n)
    )
    url = "memory://pl/scene0001_00.npz"
    write_pseudo_labels(url, labels, "scene0001_00", meta={"min_votes": 2, "tracker": "gct"})
    got, meta = read_pseudo_labels(url, n_vertices=n, scene_id="scene0001_00")
    for name in ("ids", "confidence", "votes", "seen"):
        np.testing.assert_array_equal(getattr(got, name), getattr(labels, name))
        assert getattr(got, name).dtype == getattr(labels, name).dtype
    assert meta == {"min_votes": 2, "tracker": "gct"}
    with pytest.raises(DataError, match="1000 vertices, the mesh has 999"):
        read_pseudo_labels(url, n_vertices=999)
    with pytest.raises(DataError, match="not 'scene0002_00'"):
        read_pseudo_labels(url, scene_id="scene0002_00")


@pytest.mark.s3
def test_shards_on_s3(s3_bucket):
    samples = _samples(np.random.default_rng(3))
    url = storage.join(s3_bucket, "run", "shard-00000.npz")
    write_samples(url, samples)
    _assert_same(samples, read_samples(url))
    assert storage.listdir(storage.join(s3_bucket, "run")) == ["shard-00000.npz"]
