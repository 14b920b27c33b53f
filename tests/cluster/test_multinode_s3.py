"""Must-show: a two-node Ray cluster on this machine labels a synthetic corpus stored on S3 (moto on
127.0.0.1); an independent S3 client reads the outputs back and checks them."""

import io
import json

import numpy as np
import pytest

from tracklift import storage
from tracklift.labeling import LabelConfig

from ..actors.corpora import tiny_corpus

ray = pytest.importorskip("ray")


@pytest.fixture
def two_node_cluster(s3_server):
    """Head + one worker node, 1 CPU each, started after the S3 environment is set (the nodes inherit it)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
@pytest.mark.s3
def test_two_nodes_label_an_s3_corpus(two_node_cluster, s3_bucket, s3_server):
    import boto3

    from tracklift.actors.pipeline import label_corpus_ray

    corpus, out = storage.join(s3_bucket, "scans"), storage.join(s3_bucket, "labels")
    urls = tiny_corpus(corpus, scenes=3, seed=95, frames=4, width=64)
    cfg = LabelConfig(scenes=corpus, out=out, pictures=False, num_actors=2, num_cpus=1)
    manifest = label_corpus_ray(cfg, log=lambda s: None)
    assert manifest["run"]["nodes"] == 2

    # read everything back with a client that shares nothing with tracklift's storage layer
    bucket = s3_bucket.removeprefix("s3://")
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")

    def get(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in p.get("Contents", [])
    ]
    assert not [k for k in keys if ".tmp-" in k]  # every write was moved into place
    on_s3 = json.loads(get("labels/manifest.json"))
    sids = [f"synth00{95 + i}_00" for i in range(3)]
    assert sorted(on_s3["scenes"]) == sids and all(
        e["status"] == "complete" for e in on_s3["scenes"].values()
    )
    # both nodes did work: two actors, one per 1-CPU node
    assert len({e["worker"]["node"] for e in on_s3["scenes"].values()}) == 2

    import pyarrow.parquet as pq

    for sid, url in zip(sids, urls):
        entry = on_s3["scenes"][sid]
        assert entry["url"] == url and entry["frames"] == 4
        for stage in (1, 2, 3):
            key = f"labels/shards/stage{stage}/{sid}.parquet"
            table = pq.read_table(io.BytesIO(get(key)))
            assert table.num_rows == entry["samples"][f"stage{stage}"] > 0
            for row in table.to_pylist():  # the documented byte layout holds for every row
                m = row["num_points"]
                assert (
                    len(row["points"]) == 12 * m and len(row["ids"]) == 4 * m and len(row["colors"]) == 3 * m
                )
        # per-vertex pseudo-labels: one per mesh vertex of the scan
        with np.load(io.BytesIO(get(f"labels/scenes/{sid}/pseudo_labels.npz"))) as z:
            ids = z["ids"]
        n_vertices = len(get(f"scans/{sid}/gt_instance.txt").split())
        assert len(ids) == n_vertices and (ids > 0).any()
        assert len(get(f"labels/scenes/{sid}/pseudo_labels.txt").split()) == n_vertices
        assert json.loads(get(f"labels/scenes/{sid}/status.json"))["status"] == "complete"
