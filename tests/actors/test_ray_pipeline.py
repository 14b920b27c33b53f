"""The Ray labeling job on a local Ray: outputs and manifest, reruns, a corrupt scene, a killed actor."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from tracklift import storage
from tracklift.labeling import LabelConfig, label_corpus
from tracklift.lifting import read_pseudo_labels, read_samples

from .corpora import tiny_corpus

ray = pytest.importorskip("ray")

ACTOR_CLASS = "MapWorker(MapBatches(LabelActor))"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of our own; its dashboard (on 127.0.0.1) serves the state API the kill test uses."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=port,
        log_to_driver=False,
    )
    yield "http://" + ctx.dashboard_url
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("corpus"))
    urls = tiny_corpus(root, scenes=3, seed=80)
    storage.write_bytes(storage.join(urls[2], "depth", "1.png"), b"\x89PNG broken")
    return root, urls


@pytest.mark.slow
def test_ray_job_labels_a_corpus_like_the_one_process_job(local_ray, corpus, tmp_path):
    from tracklift.actors.pipeline import label_corpus_ray
    from tracklift.lifting.shards import sample_from_row

    root, urls = corpus
    out = str(tmp_path / "ray")
    cfg = LabelConfig(scenes=root, out=out, pictures=False, num_actors=2)
    logs = []
    manifest = label_corpus_ray(cfg, log=logs.append)
    scenes = manifest["scenes"]
    assert {k: v["status"] for k, v in scenes.items()} == {
        "synth0080_00": "complete",
        "synth0081_00": "complete",
        "synth0082_00": "failed",
    }
    assert "depth/1.png" in scenes["synth0082_00"]["error"]
    assert manifest["run"]["runner"] == "ray" and manifest["run"]["num_actors"] == 2
    on_disk = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert on_disk["scenes"].keys() == scenes.keys()
    progress = [m for m in logs if m.startswith("[label-ray] ") and "scenes/min" in m and "ETA" in m]
    assert len(progress) == 3 and "1 failed" in progress[-1]
    # same labels and shards as the one-process job on the same scenes
    ref = LabelConfig(scenes=root, out=str(tmp_path / "local"), pictures=False, runner="local", limit=2)
    label_corpus(ref, log=lambda s: None)
    for sid in ("synth0080_00", "synth0081_00"):
        a, _ = read_pseudo_labels(storage.join(out, "scenes", sid, "pseudo_labels.npz"))
        b, _ = read_pseudo_labels(storage.join(ref.out, "scenes", sid, "pseudo_labels.npz"))
        np.testing.assert_array_equal(a.ids, b.ids)
        for stage in (1, 2, 3):
            n = len(read_samples(storage.join(out, "shards", f"stage{stage}", f"{sid}.parquet")))
            assert n == scenes[sid]["samples"][f"stage{stage}"] > 0
    # the Ray Train side reads a stage folder with ray.data.read_parquet; rows become Samples again
    rows = ray.data.read_parquet(storage.join(out, "shards", "stage1")).take_all()
    assert len(rows) == sum(scenes[s]["samples"]["stage1"] for s in ("synth0080_00", "synth0081_00"))
    assert {sample_from_row(r).scene_id for r in rows} == {"synth0080_00", "synth0081_00"}
    # a rerun skips the complete scenes (their stats kept), redoes one whose shard is gone, and tries the
    # failed one again
    lost = storage.join(out, "shards", "stage2", "synth0081_00.parquet")
    storage.remove(lost)
    again = label_corpus_ray(cfg, log=lambda s: None)
    assert again["scenes"]["synth0080_00"]["skipped_rerun"] is True
    assert again["scenes"]["synth0080_00"]["frames"] == 6
    assert "shards/stage2/synth0081_00.parquet missing" in again["scenes"]["synth0081_00"]["redone"]
    assert storage.exists(lost) and not again["scenes"]["synth0081_00"].get("skipped_rerun")
    assert again["scenes"]["synth0082_00"]["status"] == "failed"


def _labeling_actor_pid(dashboard: str, timeout: float = 120.0) -> int:
    from ray.util.state import list_actors

    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = list_actors(
            address=dashboard, filters=[("class_name", "=", ACTOR_CLASS), ("state", "=", "ALIVE")]
        )
        if alive:
            return int(alive[0].pid)
        time.sleep(0.2)
    raise TimeoutError("no labeling actor came up")


@pytest.mark.slow
def test_actor_killed_mid_scene_is_restarted_and_every_scene_is_labeled_once(local_ray, tmp_path):
    from tracklift.actors.pipeline import label_corpus_ray

    root = str(tmp_path / "corpus")
    tiny_corpus(root, scenes=3, seed=85, frames=16, width=128)
    out = str(tmp_path / "labels")
    cfg = LabelConfig(scenes=root, out=out, pictures=False, num_actors=1)
    killed: dict = {}

    def kill_during_the_second_scene():
        pid = _labeling_actor_pid(local_ray)
        while not any(
            storage.exists(storage.join(out, "scenes", f"synth00{85 + i}_00", "status.json"))
            for i in range(3)
        ):
            time.sleep(0.05)
        # at once: the actor has started the next scene (a fixed wait raced a fast machine through the
        # remaining scenes); a kill between two scenes is also a restart with scenes still to do
        killed["complete_before"] = {
            sid
            for sid in storage.listdir(storage.join(out, "scenes"))
            if storage.exists(storage.join(out, "scenes", sid, "status.json"))
        }
        killed["pid"] = pid
        os.kill(pid, signal.SIGKILL)  # the actor's process dies as in a crash or an OOM kill

    killer = threading.Thread(target=kill_during_the_second_scene, daemon=True)
    killer.start()
    manifest = label_corpus_ray(cfg, log=lambda s: None)
    killer.join(timeout=5)
    assert "pid" in killed, "the actor was never killed"
    scenes = manifest["scenes"]
    assert sorted(scenes) == ["synth0085_00", "synth0086_00", "synth0087_00"]
    assert all(e["status"] == "complete" for e in scenes.values()), scenes
    redone = set(scenes) - killed["complete_before"]
    assert redone, "the kill came after the last scene"
    # the scenes that were not complete at the kill were labeled by the restarted actor
    assert all(scenes[sid]["worker"]["pid"] != killed["pid"] for sid in redone)
    # exactly one of every output per scene, no temporary keys left behind
    for stage in (1, 2, 3):
        names = storage.listdir(storage.join(out, "shards", f"stage{stage}"))
        assert names == sorted(f"{sid}.parquet" for sid in scenes), names
        for sid in scenes:
            n = len(read_samples(storage.join(out, "shards", f"stage{stage}", f"{sid}.parquet")))
            assert n == scenes[sid]["samples"][f"stage{stage}"]
    fs, path = storage.filesystem(out)
    assert not [p for p in fs.find(path) if ".tmp-" in p]
    preds = [n for n in storage.listdir(storage.join(out, "pred")) if n.endswith(".txt")]
    assert preds == sorted(f"{sid}.txt" for sid in scenes)


@pytest.mark.slow
def test_a_scene_that_kills_its_actor_every_time_is_given_up_without_deprecated_ray_args(
    local_ray, tmp_path, monkeypatch
):
    """The retry bound of a poison scene is the job's own count (no ``max_task_retries`` through Ray Data's
    deprecated ``**ray_remote_args``); the other scenes complete; Ray warns about nothing deprecated."""
    import warnings

    import ray.data.dataset as ray_dataset

    from tracklift.actors.labeler import LabelActor
    from tracklift.actors.pipeline import label_corpus_ray

    root = str(tmp_path / "corpus")
    tiny_corpus(root, scenes=2, seed=93, frames=3, width=64)
    poison = "synth0094_00"

    class CrashingActor(LabelActor):
        """Dies (as in a segfault or an OOM kill) whenever it starts the poison scene."""

        def label(self, url: str):
            if url.rstrip("/").endswith(poison):
                os._exit(1)
            return super().label(url)

    remote_args = []  # what the pipeline handed Ray Data as **ray_remote_args (the deprecated route)
    real = ray_dataset._warn_on_ray_remote_args

    def spy(args):
        remote_args.append(dict(args))
        return real(args)

    monkeypatch.setattr(ray_dataset, "_warn_on_ray_remote_args", spy)
    out = str(tmp_path / "labels")
    cfg = LabelConfig(scenes=root, out=out, pictures=False, num_actors=1, scene_retries=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = label_corpus_ray(cfg, log=lambda s: None, actor_class=CrashingActor)
    assert remote_args and all(a == {} for a in remote_args), remote_args
    deprecated = [str(w.message) for w in caught if "ray_remote_args" in str(w.message)]
    assert not deprecated, deprecated

    scenes = manifest["scenes"]
    assert scenes["synth0093_00"]["status"] == "complete"
    assert scenes[poison]["status"] == "failed"
    # scene_retries=1: the first try and one redo each killed the actor, the third try was refused
    assert "died on each of 2 tries" in scenes[poison]["error"]
    assert not storage.exists(storage.join(out, "scenes", poison, "status.json"))
