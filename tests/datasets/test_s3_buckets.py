"""Writing under an S3 bucket that does not exist is refused with an error naming the bucket, and never
creates it (issue 10, defect 13: a typo in ``--out`` used to make a stray bucket). Real moto server."""

from __future__ import annotations

import uuid

import boto3
import pytest

from tests.conftest import make_scene_data
from tracklift import storage
from tracklift.cli import main
from tracklift.datasets.formats import write_scene
from tracklift.errors import DataError

pytestmark = pytest.mark.s3


def _buckets(endpoint: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return {b["Name"] for b in client.list_buckets().get("Buckets", [])}


@pytest.fixture
def missing_bucket(s3_server):
    name = f"tl-typo-{uuid.uuid4().hex[:8]}"
    assert name not in _buckets(s3_server)
    return name


def test_writes_under_a_missing_bucket_are_refused(s3_server, missing_bucket):
    url = f"s3://{missing_bucket}/labels/run1/status.json"
    with pytest.raises(DataError, match=f"bucket '{missing_bucket}' does not exist") as e:
        storage.write_text(url, "{}")
    assert e.value.url == url
    with pytest.raises(DataError, match=missing_bucket):
        storage.makedirs(f"s3://{missing_bucket}/labels")
    with pytest.raises(DataError, match=missing_bucket):
        write_scene(make_scene_data(), f"s3://{missing_bucket}/scans/scene0000_00", "tracklift")
    assert missing_bucket not in _buckets(s3_server)


def test_existing_buckets_still_take_writes(s3_bucket):
    url = storage.join(s3_bucket, "deep", "er", "x.txt")
    storage.makedirs(storage.join(s3_bucket, "deep"))
    storage.write_text(url, "hello")
    assert storage.read_text(url) == "hello"


def test_cli_with_a_typo_in_out_fails_naming_the_bucket(s3_server, missing_bucket, capsys):
    out = f"s3://{missing_bucket}/corpus"
    # two neighbouring frames (``start``): two frames spread over the room may share no surface to fuse
    argv = ["synth", "--out", out, "--scenes", "1", "--width", "32", "--height", "24", "--frames", "2"]
    argv += ["--frames-span", "start"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert missing_bucket in err and "does not exist" in err
    assert missing_bucket not in _buckets(s3_server)
