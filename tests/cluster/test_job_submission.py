"""`tracklift label` submitted as a Ray Job to a real head node (Jobs API, token auth), outputs checked."""

import json
import sys

import pytest

from tracklift import storage
from tracklift.cluster.jobs import run_job, tracklift_entrypoint
from tracklift.lifting import read_samples

from ..actors.corpora import tiny_corpus

pytestmark = pytest.mark.slow  # starts a Ray head node (about 15 s up, 10 s down)


def test_label_job_through_the_jobs_api(ray_head, tmp_path):
    dashboard, token = ray_head
    root, out = str(tmp_path / "corpus"), str(tmp_path / "labels")
    tiny_corpus(root, scenes=2, seed=90, frames=4, width=64)
    entry = tracklift_entrypoint(
        "label",
        [
            "--scenes",
            root,
            "--out",
            out,
            "--runner",
            "ray",
            "--address",
            "auto",
            "--num-actors",
            "1",
            "--pictures",
            "false",
        ],
        python=sys.executable,
    )
    result = run_job(dashboard, entry, token=token, timeout_s=600, poll_s=1, log=lambda s: None)
    assert result.status == "SUCCEEDED", result.logs[-3000:]
    assert "[label-ray] 2/2" in result.logs
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert manifest["run"]["runner"] == "ray" and manifest["run"]["address"] == "auto"
    assert {k: v["status"] for k, v in manifest["scenes"].items()} == {
        "synth0090_00": "complete",
        "synth0091_00": "complete",
    }
    for sid, entry in manifest["scenes"].items():
        shard = storage.join(out, "shards", "stage3", f"{sid}.parquet")
        assert len(read_samples(shard)) == entry["samples"]["stage3"] == 1


def test_a_wrong_token_is_refused(ray_head):
    from tracklift.cluster.jobs import job_client

    dashboard, _ = ray_head
    with pytest.raises(Exception, match="(?i)auth|401|403|forbidden"):
        job_client(dashboard, token="not-the-token").list_jobs()
