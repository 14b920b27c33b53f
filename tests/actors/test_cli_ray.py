"""`tracklift label --runner ray` with no address: starts a local Ray, labels, shuts it down again."""

import json

import pytest

from tracklift import storage
from tracklift.cli import main

from .corpora import tiny_corpus

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_cli_ray_runner_starts_and_stops_a_local_ray(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    root, out = str(tmp_path / "corpus"), str(tmp_path / "labels")
    tiny_corpus(root, scenes=2, seed=97, frames=4, width=64)
    argv = [
        "label",
        "--scenes",
        root,
        "--out",
        out,
        "--runner",
        "ray",
        "--num-actors",
        "2",
        "--pictures",
        "false",
    ]
    try:
        assert main(argv) == 0
    finally:
        started_here = ray.is_initialized()
        if started_here:
            ray.shutdown()
    assert not started_here, "the job left its local Ray running"
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert manifest["run"]["address"] == "local" and manifest["run"]["num_actors"] == 2
    assert (
        all(e["status"] == "complete" for e in manifest["scenes"].values()) and len(manifest["scenes"]) == 2
    )
    printed = capsys.readouterr().out
    assert "[label-ray] started a local Ray" in printed and "[label-ray] 2/2" in printed
