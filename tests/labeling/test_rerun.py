"""Reruns trust only what is there: outputs are recorded and checked (issue 10, defect 4), settings are
hashed per scene (defect 8), and partial failure has its own exit status (defect 12)."""

import json
import os

import pytest

from tests.actors.corpora import tiny_corpus
from tracklift import storage
from tracklift.cli import main
from tracklift.labeling import LabelConfig, OutputLayout, label_corpus
from tracklift.lifting import LiftConfig, read_pseudo_labels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("corpus"))
    return root, tiny_corpus(root, scenes=2, seed=90, frames=4, width=64)


def _status(out: str, sid: str) -> dict:
    return json.loads(storage.read_text(OutputLayout(out).status(sid)))


def test_rerun_redoes_a_scene_whose_outputs_are_missing_or_changed(corpus, tmp_path):
    _, urls = corpus
    out, sid = str(tmp_path / "labels"), "synth0090_00"
    layout = OutputLayout(out)
    cfg = LabelConfig(scenes=urls[0], out=out, runner="local")
    label_corpus(cfg, log=lambda s: None)
    outputs = _status(out, sid)["outputs"]
    expected = {
        f"scenes/{sid}/pseudo_labels.npz",
        f"scenes/{sid}/pseudo_labels.txt",
        f"scenes/{sid}/tracks.png",
        f"scenes/{sid}/pseudo_labels.png",
        f"pred/{sid}.txt",
        *(f"shards/stage{n}/{sid}.parquet" for n in (1, 2, 3)),
    }
    assert expected <= set(outputs) and any(rel.startswith("pred/pred_mask/") for rel in outputs)
    assert all(os.path.getsize(layout.url(rel)) == size for rel, size in outputs.items())
    gone = [f"scenes/{sid}/pseudo_labels.txt", f"shards/stage2/{sid}.parquet"]
    before = {rel: storage.read_bytes(layout.url(rel)) for rel in gone}
    for rel in gone:
        storage.remove(layout.url(rel))
    logs = []
    entry = label_corpus(cfg, log=logs.append)["scenes"][sid]
    assert entry["status"] == "complete" and not entry.get("skipped_rerun")
    assert f"scenes/{sid}/pseudo_labels.txt missing" in entry["redone"]
    assert f"shards/stage2/{sid}.parquet missing" in entry["redone"]
    assert any("redone" in line for line in logs)
    assert {rel: storage.read_bytes(layout.url(rel)) for rel in gone} == before  # the same bytes again
    # an output cut short (another size than written) is redone too
    mask = next(rel for rel in outputs if rel.startswith("pred/pred_mask/"))
    storage.write_bytes(layout.url(mask), b"0\n")
    entry = label_corpus(cfg, log=lambda s: None)["scenes"][sid]
    assert not entry.get("skipped_rerun") and f"{mask} is 2 bytes" in entry["redone"]
    # and an intact scene is skipped
    assert label_corpus(cfg, log=lambda s: None)["scenes"][sid]["skipped_rerun"] is True


def test_outputs_on_s3_are_checked_and_lost_objects_redone(corpus, s3_bucket, s3_server):
    import boto3

    _, urls = corpus
    out, sid = f"{s3_bucket}/labels", "synth0090_00"
    cfg = LabelConfig(scenes=urls[0], out=out, runner="local", pictures=False)
    assert label_corpus(cfg, log=lambda s: None)["scenes"][sid]["status"] == "complete"
    outputs = _status(out, sid)["outputs"]
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = s3_bucket[len("s3://") :]
    for rel, size in outputs.items():
        assert client.head_object(Bucket=bucket, Key=f"labels/{rel}")["ContentLength"] == size
    # objects lost behind tracklift's back (an object store that came back empty, a lifecycle rule)
    lost = [f"scenes/{sid}/pseudo_labels.npz", f"shards/stage3/{sid}.parquet"]
    for rel in lost:
        client.delete_object(Bucket=bucket, Key=f"labels/{rel}")
    entry = label_corpus(cfg, log=lambda s: None)["scenes"][sid]
    assert entry["status"] == "complete" and not entry.get("skipped_rerun")
    assert all(f"{rel} missing" in entry["redone"] for rel in lost)
    for rel in lost:
        assert client.head_object(Bucket=bucket, Key=f"labels/{rel}")["ContentLength"] == outputs[rel]


def test_rerun_with_other_settings_is_refused_unless_forced(corpus, tmp_path):
    root, urls = corpus
    out, sid = str(tmp_path / "labels"), "synth0090_00"
    layout = OutputLayout(out)
    label_corpus(LabelConfig(scenes=root, out=out, runner="local", pictures=False), log=lambda s: None)
    made = storage.read_bytes(layout.pseudo_labels(sid))
    other = LabelConfig(scenes=root, out=out, runner="local", pictures=False, method="independent", limit=1)
    manifest = label_corpus(other, log=lambda s: None)
    entry = manifest["scenes"][sid]
    assert entry["status"] == "refused"
    assert "method: tracked -> independent" in entry["error"] and "--force" in entry["error"]
    assert storage.read_bytes(layout.pseudo_labels(sid)) == made  # the old outputs are kept
    # the manifest lists every scene in the folder, and says which settings made each
    assert manifest["scenes"]["synth0091_00"]["in_this_run"] is False
    assert manifest["scenes"]["synth0091_00"]["config_hash"] == _status(out, "synth0091_00")["config_hash"]
    assert manifest["config_hash"] == other.config_hash() != _status(out, sid)["config_hash"]
    # --force redoes the scene with the new settings
    forced = label_corpus(LabelConfig(**{**other.__dict__, "force": True}), log=lambda s: None)
    assert forced["scenes"][sid]["status"] == "complete" and "method" in forced["scenes"][sid]["redone"]
    assert read_pseudo_labels(layout.pseudo_labels(sid))[1]["method"] == "independent"
    assert _status(out, sid)["config_hash"] == other.config_hash()
    # where or how fast a run goes is not a setting of the outputs; what the lifting does is
    assert LabelConfig(num_actors=7, runner="ray", limit=3).config_hash() == LabelConfig().config_hash()
    assert LabelConfig(lift=LiftConfig(min_votes=3)).config_hash() != LabelConfig().config_hash()


def test_partial_failure_has_its_own_exit_status(tmp_path, capsys):
    root = str(tmp_path / "corpus")
    urls = tiny_corpus(root, scenes=2, seed=95, frames=3, width=64)
    storage.write_bytes(storage.join(urls[1], "depth", "1.png"), b"not a png")
    args = ["label", "--out", str(tmp_path / "labels"), "--runner", "local", "--pictures", "false"]
    assert main([*args, "--scenes", root]) == 3  # one scene complete, one failed
    assert main([*args, "--scenes", urls[1]]) == 1  # every scene of the run failed
    assert main([*args, "--scenes", urls[0]]) == 0  # complete (skipped: done before)
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 when every scene is complete; 3 when some scenes failed" in text
