"""``status.json`` names what the reader left out or read another way (issue 10, defect 14)."""

import json

import numpy as np

from tracklift import storage
from tracklift.datasets.formats import open_scene, write_scene
from tracklift.datasets.scannet import write_export_scene, write_sens_scene
from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.labeling import LabelConfig, OutputLayout, label_corpus


def _status(out: str, sid: str) -> dict:
    return json.loads(storage.read_text(OutputLayout(out).status(sid)))


def test_skipped_frames_are_named_with_their_reason(tmp_path):
    data = generate_scene(97, SynthConfig(width=64, height=48, n_frames=5, n_groups=2))
    data.frames[2].pose = np.full((4, 4), np.inf)  # tracking lost on this frame
    url = str(tmp_path / "corpus" / data.scene_id)
    write_scene(data, url, "tracklift")
    out = str(tmp_path / "labels")
    cfg = LabelConfig(scenes=url, out=out, runner="local", pictures=False, write_shards=False)
    entry = label_corpus(cfg, log=lambda s: None)["scenes"][data.scene_id]
    fid = data.frames[2].index
    assert entry["status"] == "complete" and entry["skipped_frames"] == 1
    assert _status(out, data.scene_id)["skipped"] == [{"frame": fid, "reason": "invalid pose"}]
    assert entry["skipped"] == [{"frame": fid, "reason": "invalid pose"}]


def test_export_without_intrinsics_read_from_sens_is_recorded(tmp_path):
    data = generate_scene(98, SynthConfig(width=64, height=48, n_frames=4, n_groups=2))
    url = str(tmp_path / "scans" / data.scene_id)
    write_sens_scene(data, url)
    write_export_scene(data, url)
    storage.remove(storage.join(url, "intrinsic"), recursive=True)
    scene = open_scene(url)
    assert scene.format == "scannet-sens" and len(scene) == 4
    (note,) = scene.notes
    assert "lacks intrinsic/" in note and f"{data.scene_id}.sens" in note and "4 frames" in note
    out = str(tmp_path / "labels")
    cfg = LabelConfig(scenes=url, out=out, runner="local", pictures=False, write_shards=False)
    entry = label_corpus(cfg, log=lambda s: None)["scenes"][data.scene_id]
    assert entry["status"] == "complete", entry.get("error")
    assert _status(out, data.scene_id)["notes"] == [note]
