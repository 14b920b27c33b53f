"""Writes the storage's way (issue 15): one PUT per file on S3, temporary file and rename on disk; S3 request
timeouts and retries set once. Real moto server; requests counted by moto's own recorder."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import boto3
import numpy as np
import pytest

from tests.actors.corpora import tiny_corpus
from tracklift import storage
from tracklift.labeling import LabelConfig, label_corpus

pytestmark = pytest.mark.s3

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench_s3_requests.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_s3_requests", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_corpus(str(tmp_path_factory.mktemp("corpus")), scenes=1, seed=91, frames=4, width=64)


def _label(corpus_url: str, out: str, endpoint: str, log_file: str) -> tuple[dict, object]:
    with _bench().MotoRequestLog(endpoint, log_file) as requests:
        manifest = label_corpus(
            LabelConfig(scenes=corpus_url, out=out, pictures=False, runner="local"), log=lambda s: None
        )
    return manifest, requests


def test_labeling_to_s3_puts_each_file_once_and_boto3_reads_them_back(s3_server, s3_bucket, corpus, tmp_path):
    (scene,) = corpus
    out = storage.join(s3_bucket, "labels")
    manifest, requests = _label(scene, out, s3_server, str(tmp_path / "after.jsonl"))
    (sid,) = manifest["scenes"]
    assert manifest["scenes"][sid]["status"] == "complete"
    ops = requests.operations()
    # the write path: no temporary key, no server-side move, no bucket check per file
    assert not {"CopyObject", "DeleteObject", "DeleteObjects", "HeadBucket"} & set(ops), ops
    bucket = s3_bucket.removeprefix("s3://")
    status_key = f"labels/scenes/{sid}/status.json"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    status = json.loads(client.get_object(Bucket=bucket, Key=status_key)["Body"].read())
    outputs = status["outputs"]
    assert len(outputs) >= 8  # pseudo labels (2), prediction listing and masks, 3 shards
    puts = requests.keys("PutObject")
    # every output once, status.json after all of them, then the manifest
    expected = [f"{bucket}/labels/{rel}" for rel in outputs]
    assert sorted(puts[: len(outputs)]) == sorted(expected)
    assert puts[len(outputs) :] == [f"{bucket}/{status_key}", f"{bucket}/labels/manifest.json"]

    listed = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="labels/")
        for o in page.get("Contents", [])
    }
    assert not [k for k in listed if ".tmp-" in k]
    for rel, size in outputs.items():  # each output whole, as recorded
        body = client.get_object(Bucket=bucket, Key=f"labels/{rel}")["Body"].read()
        assert len(body) == size, rel
    npz = client.get_object(Bucket=bucket, Key=f"labels/scenes/{sid}/pseudo_labels.npz")["Body"].read()
    with np.load(io.BytesIO(npz)) as z:
        assert len(z.files) > 0
    # a rerun trusts the scene and writes nothing of it again
    manifest2, again = _label(scene, out, s3_server, str(tmp_path / "rerun.jsonl"))
    assert manifest2["scenes"][sid]["skipped_rerun"] is True
    assert again.keys("PutObject") == [f"{bucket}/labels/manifest.json"]


def test_fewer_requests_per_scene_than_the_rename_path(s3_server, s3_bucket, corpus, tmp_path):
    (scene,) = corpus
    counts = {}
    for mode in ("rename", "direct"):
        storage.configure_object_store_writes(mode)
        try:
            _, requests = _label(
                scene, storage.join(s3_bucket, mode), s3_server, str(tmp_path / f"{mode}.jsonl")
            )
        finally:
            storage.configure_object_store_writes("direct")
        counts[mode] = requests.operations()
    old, new = counts["rename"], counts["direct"]
    assert new["PutObject"] == old["PutObject"]  # the same files ...
    assert old["CopyObject"] == old["PutObject"] and "CopyObject" not in new  # ... without a move each
    assert sum(new.values()) < sum(old.values()) - 2 * new["PutObject"]


def test_missing_bucket_after_a_direct_put_names_the_bucket(s3_server):
    from tracklift.errors import DataError

    with pytest.raises(DataError, match="bucket 'tl-never-made' does not exist"):
        storage.write_bytes("s3://tl-never-made/a/b.bin", b"x")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    assert "tl-never-made" not in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_local_writes_still_go_through_a_renamed_temporary(tmp_path, monkeypatch):
    import fsspec.implementations.local as local

    moves = []
    real_mv = local.LocalFileSystem.mv

    def mv(self, src, dst, **kw):
        moves.append((src, dst))
        return real_mv(self, src, dst, **kw)

    monkeypatch.setattr(local.LocalFileSystem, "mv", mv)
    url = str(tmp_path / "d" / "x.bin")
    storage.write_bytes(url, b"abc")
    assert storage.read_bytes(url) == b"abc"
    ((src, dst),) = moves
    assert dst.endswith("d/x.bin") and ".tmp-" in src
    assert storage.listdir(str(tmp_path / "d")) == ["x.bin"]


def test_s3_request_timeouts_and_retries_are_set_once(s3_server, s3_bucket):
    fs, _ = storage.filesystem(s3_bucket)
    fs.connect()  # the botocore client s3fs made from our options
    config = fs.s3.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    storage.configure_s3_requests(storage.S3Requests(connect_timeout_s=2, read_timeout_s=5, attempts=2))
    try:
        fs2, _ = storage.filesystem(s3_bucket)
        fs2.connect()
        assert (fs2.s3.meta.config.connect_timeout, fs2.s3.meta.config.read_timeout) == (2, 5)
        assert fs2.s3.meta.config.retries["total_max_attempts"] == 2
        # a Ray worker configured with the driver's options makes the same requests
        sent = storage.configured_options()["s3"]["config_kwargs"]
        assert sent["retries"] == {"mode": "standard", "total_max_attempts": 2}
        storage.write_text(storage.join(s3_bucket, "t.txt"), "ok")
        assert storage.read_text(storage.join(s3_bucket, "t.txt")) == "ok"
    finally:
        storage.configure_s3_requests(storage.S3Requests())
