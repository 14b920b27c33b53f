"""Shards as Ray Dataset rows and back, without a Ray cluster: rows, decoding, ordering, storage, CLI wiring."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.samples import make_sample
from tracklift import storage
from tracklift.cli import TrainCommandConfig, main
from tracklift.config import from_args
from tracklift.errors import ConfigError, DataError
from tracklift.lifting import Sample, write_samples
from tracklift.lifting.shards import sample_shard_sizes, sample_to_row
from tracklift.training import load_stage_samples
from tracklift.training.distributed import RayTrainOptions, ray_address
from tracklift.training.ray_shards import (
    ShardLoader,
    check_enough_rows,
    ingest_config,
    npz_rows,
    pyarrow_filesystem,
    row_key,
    stage_dataset,
    stream_windows,
)


def shard(labels: str, name: str, samples) -> str:
    url = storage.join(labels, "shards", "stage1", name)
    write_samples(url, samples)
    return url


def test_npz_rows_name_every_usable_sample_from_the_offsets(tmp_path):
    tiny = Sample(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(1), "s1", 1, (9,))
    a = shard(str(tmp_path), "a.npz", [make_sample(1, 0), tiny, make_sample(1, 1)])
    b = shard(str(tmp_path), "b.npz", [make_sample(1, 2)])
    assert sample_shard_sizes(a).tolist() == [150, 1, 150]
    assert npz_rows([a, b]) == [{"url": a, "index": 0}, {"url": a, "index": 2}, {"url": b, "index": 0}]
    bad = str(tmp_path / "bad.npz")
    storage.write_bytes(bad, b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        sample_shard_sizes(bad)


def test_loader_orders_rows_like_the_one_process_trainer(tmp_path):
    labels = str(tmp_path)
    a = shard(labels, "a.npz", [make_sample(1, 0), make_sample(1, 1)])
    b = shard(labels, "b.npz", [make_sample(1, 2, n_boxes=2)])
    rows = npz_rows([a, b])
    got = ShardLoader("npz").samples(reversed(rows))  # Ray Data may hand rows over in any order
    want = load_stage_samples(labels, 1)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert np.array_equal(g.points, w.points) and np.array_equal(g.instance, w.instance)
    with pytest.raises(DataError, match="a.npz"):
        ShardLoader("npz").samples([{"url": a, "index": 5}])


def test_parquet_rows_decode_and_relabel_once(tmp_path):
    samples = [make_sample(1, seed) for seed in (3, 1, 2)]
    rows = [sample_to_row(s) for s in samples]
    calls = []

    def relabel(s):
        calls.append(s.frames)
        return Sample(s.points, s.colors, s.instance + 10, s.scene_id, s.stage, s.frames), 1

    loader = ShardLoader("parquet", relabel)
    for _ in range(2):
        got = loader.samples(rows)
        assert [s.frames for s in got] == [(1,), (2,), (3,)]  # sorted by (scene, stage, frames)
        assert all(np.array_equal(g.instance, make_sample(1, g.frames[0]).instance + 10) for g in got)
        assert loader.last_added == 3
    assert sorted(calls) == [(1,), (2,), (3,)]  # the teacher ran once per sample, not once per epoch
    broken = dict(rows[0], points=rows[0]["points"][:-4])
    with pytest.raises(DataError, match="points"):
        loader.samples([broken])
    assert row_key(rows[0]) == ("s0", 1, (3,))


def test_stage_folder_may_hold_parquet_and_npz_but_ray_wants_one(tmp_path):
    labels = str(tmp_path)
    shard(labels, "a.npz", [make_sample(1, 0)])
    shard(labels, "b.parquet", [make_sample(1, 1), make_sample(1, 2)])
    assert [s.frames for s in load_stage_samples(labels, 1)] == [(0,), (1,), (2,)]
    with pytest.raises(DataError, match="both .npz and .parquet"):
        stage_dataset(labels, 1)


def test_ray_storage_filesystems(tmp_path, s3_bucket):
    path, fs = pyarrow_filesystem(str(tmp_path / "runs"))
    assert fs is None and path == str(tmp_path / "runs")
    with pytest.raises(ConfigError, match="memory://"):
        pyarrow_filesystem("memory://x/runs")
    storage.write_text(storage.join(s3_bucket, "runs", "hello.txt"), "hi")
    path, fs = pyarrow_filesystem(storage.join(s3_bucket, "runs"))
    assert not path.startswith("s3://") and path.endswith("/runs")
    with fs.open_input_stream(path + "/hello.txt") as f:  # the moto endpoint comes through fsspec
        assert f.read() == b"hi"


def test_worker_count_and_address_checks(monkeypatch):
    check_enough_rows(2, 2, 1)
    with pytest.raises(ConfigError, match="fewer than the 3 workers"):
        check_enough_rows(2, 3, 2)
    with pytest.raises(ConfigError):
        RayTrainOptions(num_workers=0)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(None) == "10.0.0.1:6379" and ray_address("auto") == "auto"


def test_train_command_picks_the_ray_runner(tmp_path, monkeypatch):
    from tracklift.cli import build_parser

    args = build_parser().parse_args(
        [
            "train",
            "--runner",
            "ray",
            "--ray.num-workers",
            "3",
            "--ray.use-gpu",
            "true",
            "--ray.address",
            "h:6379",
        ]
    )
    cfg = from_args(TrainCommandConfig, args)
    assert (cfg.runner, cfg.ray.num_workers, cfg.ray.use_gpu, cfg.ray.address) == ("ray", 3, True, "h:6379")

    seen = {}

    def fake(tcfg, options):
        seen.update(
            tcfg=tcfg, num_workers=options.num_workers, address=options.address, use_gpu=options.use_gpu
        )
        return {s.stage: f"{tcfg.out}/stage{s.stage}/last.pt" for s in tcfg.stages}

    monkeypatch.setattr("tracklift.training.distributed.train_curriculum_ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "h:6379")  # runner auto + RAY_ADDRESS = ray
    out = str(tmp_path / "o")
    argv = [
        "train",
        "--train.labels",
        "L",
        "--train.out",
        out,
        "--train.epochs",
        "1,2,3",
        "--ray.num-workers",
        "4",
    ]
    assert main(argv) == 0
    assert seen["num_workers"] == 4 and seen["address"] is None and not seen["use_gpu"]
    assert [s.epochs for s in seen["tcfg"].stages] == [1, 2, 3] and seen["tcfg"].out == out
    seen.clear()
    monkeypatch.delenv("RAY_ADDRESS")
    assert (
        main(["train", "--train.labels", str(tmp_path / "none"), "--train.out", out]) == 1
    )  # local: no shards
    assert not seen


def _damaged(labels: str, damage: str) -> str:
    """A stage-1 folder with one good shard and one damaged one; returns the damaged shard's URL."""
    suffix = ".npz" if damage.endswith("npz") else ".parquet"
    shard(labels, "a" + suffix, [make_sample(1, 0), make_sample(1, 1)])
    bad = storage.join(labels, "shards", "stage1", "b" + suffix)
    if damage.startswith("truncated"):
        write_samples(bad, [make_sample(1, 2), make_sample(1, 3)])
        data = storage.read_bytes(bad)
        storage.write_bytes(bad, data[: len(data) // 2])
    elif damage == "foreign":  # a valid Parquet file, but not a sample shard
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"scene": ["x", "y"], "value": [1.0, 2.0]}), bad)
    elif damage == "missing member npz":  # a valid archive lacking the colours
        np.savez(bad, kind=np.array("samples"), version=np.array(1), offsets=np.array([0, 2]))
    return bad


@pytest.mark.parametrize("damage", ["truncated", "foreign", "truncated npz", "missing member npz"])
def test_every_shard_is_checked_on_the_driver_naming_the_file(ray_local, tmp_path, damage):
    """Defect 9: the Ray path refuses what the local reader refuses, before any worker starts, and names
    the file (a truncated Parquet shard failed in Ray Data without its name; a Parquet file of other
    columns was silently dropped and training went on)."""
    labels = str(tmp_path / "labels")
    bad = _damaged(labels, damage)
    with pytest.raises(DataError) as local:
        load_stage_samples(labels, 1)
    with pytest.raises(DataError) as ray_side:
        stage_dataset(labels, 1)
    assert local.value.url == ray_side.value.url == bad


def test_worker_side_row_errors_name_the_file(tmp_path):
    """Defect 9: a row that fails to decode in a worker names the Parquet file it came from."""
    row = dict(sample_to_row(make_sample(1, 0)), path="/data/labels/shards/stage1/a.parquet")
    broken = dict(row, points=row["points"][:-4])
    with pytest.raises(DataError, match="points") as err:
        ShardLoader("parquet").samples([broken])
    assert err.value.url == "/data/labels/shards/stage1/a.parquet"


def _worker_rows(ray, ds, preserve_order: bool) -> list[list[tuple]]:
    """The row keys each of two consumers gets from Ray Train's split of ``ds`` (one epoch each, read at
    the same time, as two training workers read their shards)."""
    node = ray.get_runtime_context().get_node_id()
    splits = ingest_config(preserve_order).configure(
        {"train": ds}, world_size=2, worker_handles=None, worker_node_ids=[node, node]
    )

    @ray.remote(num_cpus=0.5)
    def read(it):
        return [row_key(r) for rows in stream_windows(it, 4) for r in rows]

    return ray.get([read.remote(s["train"]) for s in splits])


@pytest.mark.parametrize("materialize", [False, True])
def test_the_split_between_workers_repeats_run_after_run(ray_local, tmp_path, materialize):
    """The main job's network rows swung by up to 8 AP50 between two runs of one command: Parquet read tasks
    finished in a different order each run, so Ray Data's splitter gave the workers different samples.
    With ``preserve_order`` (the default) every worker gets the same rows in the same order every time."""
    labels = str(tmp_path / "labels")
    for f in range(9):  # 18 samples in shards of unequal length: the splitter cuts blocks to even them
        samples = [make_sample(2, 10 * f + k, scene_id=f"scene{f}") for k in range(1 + f % 3)]
        write_samples(storage.join(labels, "shards", "stage2", f"s{f}.parquet"), samples)
    want = sorted(
        row_key(sample_to_row(make_sample(2, 10 * f + k, scene_id=f"scene{f}")))
        for f in range(9)
        for k in range(1 + f % 3)
    )
    runs = []
    for _ in range(3):
        ds, kind, rows = stage_dataset(labels, 2, materialize=materialize)
        assert (kind, rows) == ("parquet", len(want))
        runs.append(_worker_rows(ray_local, ds, preserve_order=True))
    first = runs[0]
    assert len(first[0]) == len(first[1]) == len(want) // 2  # equal shares, every row once
    assert sorted(first[0] + first[1]) == want
    assert all(r == first for r in runs[1:])
