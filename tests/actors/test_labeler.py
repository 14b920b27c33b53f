"""The labeling actor as a plain object: same outputs as the one-process job, bad scenes, S3 outages."""

import json
import socket
import threading
import time

import numpy as np
import pytest

from tracklift import storage
from tracklift.actors.labeler import LabelActor
from tracklift.actors.retry import RetryPolicy
from tracklift.labeling import LabelConfig, label_corpus
from tracklift.lifting import read_pseudo_labels, read_samples

from .corpora import tiny_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("corpus"))
    urls = tiny_corpus(root, scenes=2, seed=70)
    # the second scene gets a depth image that is not an image
    storage.write_bytes(storage.join(urls[1], "depth", "2.png"), b"not a png")
    return root, urls


def test_actor_matches_the_one_process_job_and_reports_bad_scenes(corpus, tmp_path):
    root, urls = corpus
    cfg = LabelConfig(scenes=root, out=str(tmp_path / "actor"), pictures=False, runner="local")
    actor = LabelActor(cfg, log=lambda s: None)
    out = actor({"url": np.array(urls, dtype=object)})
    assert list(out["status"]) == ["complete", "failed"]
    good, bad = (json.loads(e) for e in out["entry"])
    assert good["frames"] == 6 and good["samples"]["stage3"] == 1 and good["worker"]["scene_number"] == 1
    assert "depth/2.png" in bad["error"] and bad["worker"]["scene_number"] == 2
    assert storage.exists(storage.join(cfg.out, "scenes", "synth0070_00", "status.json"))
    assert not storage.exists(storage.join(cfg.out, "scenes", "synth0071_00", "status.json"))
    # the one-process job on the same scene gives the same labels and shards (same code underneath)
    ref = LabelConfig(scenes=urls[0], out=str(tmp_path / "local"), pictures=False, runner="local")
    label_corpus(ref, log=lambda s: None)
    a, _ = read_pseudo_labels(storage.join(cfg.out, "scenes", "synth0070_00", "pseudo_labels.npz"))
    b, _ = read_pseudo_labels(storage.join(ref.out, "scenes", "synth0070_00", "pseudo_labels.npz"))
    np.testing.assert_array_equal(a.ids, b.ids)
    for stage in (1, 2, 3):
        sa = read_samples(storage.join(cfg.out, "shards", f"stage{stage}", "synth0070_00.parquet"))
        sb = read_samples(storage.join(ref.out, "shards", f"stage{stage}", "synth0070_00.parquet"))
        assert [len(s) for s in sa] == [len(s) for s in sb] and len(sa) > 0
    # a second call skips the complete scene and carries its stats from status.json
    again = json.loads(actor({"url": np.array(urls[:1], dtype=object)})["entry"][0])
    assert again["skipped_rerun"] is True and again["frames"] == 6 and again["instances"] == good["instances"]


def test_switching_shard_format_leaves_one_shard_per_scene(corpus, tmp_path):
    root, urls = corpus
    out = str(tmp_path / "fmt")
    label_corpus(
        LabelConfig(scenes=urls[0], out=out, pictures=False, shard_format="npz", runner="local"), log=str
    )
    assert storage.listdir(storage.join(out, "shards", "stage3")) == ["synth0070_00.npz"]
    storage.remove(storage.join(out, "scenes", "synth0070_00", "status.json"))  # make it redo the scene
    label_corpus(LabelConfig(scenes=urls[0], out=out, pictures=False, runner="local"), log=str)
    assert storage.listdir(storage.join(out, "shards", "stage3")) == ["synth0070_00.parquet"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def flaky_s3():
    """A moto server of our own (stopped and restarted by the tests) holding a one-scene corpus; storage
    talks to it with fast-failing requests so that the retries under test, not botocore's, do the waiting."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _port()
    endpoint = f"http://127.0.0.1:{port}"
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port)]
    with pytest.MonkeyPatch.context() as mp:
        creds = dict(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
        )
        for k, v in creds.items():
            mp.setenv(k, v)
        options = {
            "client_kwargs": {"endpoint_url": endpoint},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5},
            "skip_instance_cache": True,
        }
        mp.setitem(storage._OPTIONS, "s3", options)
        servers[0].start()
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="flaky")

        class Control:
            url = "s3://flaky"
            (scene,) = tiny_corpus("s3://flaky/corpus", scenes=1, seed=72, frames=3, width=64)

            def stop(self):
                servers[-1].stop()

            def start(self):
                servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port))
                servers[-1].start()

        yield Control()
        servers[-1].stop()


@pytest.mark.slow
@pytest.mark.s3
def test_s3_outage_is_retried_with_backoff_then_the_scene_completes(flaky_s3):
    url = flaky_s3.scene
    cfg = LabelConfig(scenes=url, out=storage.join(flaky_s3.url, "labels"), pictures=False, runner="local")
    logs = []
    actor = LabelActor(
        cfg, storage_options=storage.configured_options(), retry=RetryPolicy(6, 0.5, 2, 4), log=logs.append
    )
    flaky_s3.stop()
    restart = threading.Timer(2.5, flaky_s3.start)  # the endpoint comes back while the actor backs off
    restart.start()
    t0 = time.perf_counter()
    sid, entry = actor.label(url)
    restart.join()
    assert entry["status"] == "complete", entry.get("error")
    retries = [m for m in logs if m.startswith("[retry]")]
    assert retries and "open the scene" in retries[0] and time.perf_counter() - t0 > 2.0
    # the outputs are all there
    assert (
        json.loads(storage.read_text(storage.join(cfg.out, "scenes", sid, "status.json")))["status"]
        == "complete"
    )
    assert len(read_samples(storage.join(cfg.out, "shards", "stage3", f"{sid}.parquet"))) == 1


@pytest.mark.s3
def test_s3_that_stays_down_fails_the_scene_with_the_reason(flaky_s3):
    url = flaky_s3.scene
    cfg = LabelConfig(
        scenes=url, out=storage.join(flaky_s3.url, "labels_down"), pictures=False, runner="local"
    )
    actor = LabelActor(cfg, retry=RetryPolicy(3, 0.2, 2, 1), log=lambda s: None)
    flaky_s3.stop()
    try:
        sid, entry = actor.label(url)
    finally:
        flaky_s3.start()
    assert entry["status"] == "failed"
    assert "StorageUnavailable" in entry["error"] and "failed 3 times" in entry["error"]
    assert not storage.exists(storage.join(cfg.out, "scenes", "synth0072_00", "status.json"))


def test_a_rerun_sweeps_what_killed_writers_left(corpus, tmp_path):
    root, urls = corpus
    out = str(tmp_path / "swept")
    leftovers = [
        storage.join(out, "shards", "stage1", "synth0070_00.parquet.tmp-0123456789ab"),
        storage.join(out, "scenes", "synth0070_00", "status.json.tmp-ba9876543210"),
    ]
    keep = storage.join(out, "notes", "plan.tmp-draft")  # not one of write_bytes' temporary names
    for url in [*leftovers, keep]:
        storage.write_bytes(url, b"half")
    label_corpus(LabelConfig(scenes=urls[0], out=out, pictures=False, runner="local"), log=lambda s: None)
    assert not any(storage.exists(u) for u in leftovers) and storage.exists(keep)
    assert storage.listdir(storage.join(out, "shards", "stage1")) == ["synth0070_00.parquet"]
