"""Scenes written to and read from S3 (a local moto server), checked with an independent boto3 client."""

import boto3
import numpy as np
import pytest

from tests.conftest import make_scene_data
from tests.datasets.test_scannet import assert_same_frames
from tracklift import storage
from tracklift.datasets.formats import detect_format, list_scenes, open_scene, write_scene

pytestmark = pytest.mark.s3


def _keys(endpoint: str, bucket_url: str, prefix: str) -> set[str]:
    bucket = bucket_url.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


@pytest.mark.parametrize(
    "fmt, scene_id, subdir",
    [
        ("tracklift", "scene0000_00", ""),
        ("scannet", "scene0002_00", "scans"),
        ("scannet-sens", "scene0001_00", "scans"),
        ("scannetpp", "0d2ee665be", "data"),
    ],
)
def test_s3_roundtrip(s3_server, s3_bucket, fmt, scene_id, subdir):
    data = make_scene_data(scene_id, n_frames=3)
    root = storage.join(s3_bucket, "corpus")
    url = storage.join(root, subdir, scene_id) if subdir else storage.join(root, scene_id)
    write_scene(data, url, fmt)
    assert detect_format(url) == fmt
    assert list_scenes(root) == [url]
    scene = open_scene(url)
    if fmt == "scannet-sens":
        assert_same_frames(data, scene, frame_ids=[0, 1, 2], pose_atol=1e-6)
    else:
        assert_same_frames(data, scene)
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)
    # An independent client sees the objects under their final names, and no temporary keys.
    prefix = url.removeprefix(s3_bucket + "/") + "/"
    keys = _keys(s3_server, s3_bucket, prefix)
    expected = {
        "tracklift": ["scene.json", "mesh.ply", "color/10.jpg", "depth/20.png"],
        "scannet": ["pose/10.txt", "intrinsic/intrinsic_depth.txt", f"{scene_id}_vh_clean_2.ply"],
        "scannet-sens": [f"{scene_id}.sens", f"{scene_id}_vh_clean_2.ply", f"{scene_id}.aggregation.json"],
        "scannetpp": ["iphone/depth.bin", "iphone/pose_intrinsic_imu.json", "scans/segments_anno.json"],
    }[fmt]
    assert {prefix + k for k in expected} <= keys
    assert not [k for k in keys if ".tmp-" in k]
