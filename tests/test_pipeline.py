"""The main job end to end on a tiny corpus: every stage runs and the report is written."""

import json

from tracklift import storage
from tracklift.pipeline import RunConfig, run


def test_main_job_on_a_tiny_corpus(tmp_path, capsys):
    out = str(tmp_path / "demo")
    results = run(RunConfig(out=out, scenes=1, frames=8, width=160, height=120))
    assert set(results) == {"whole_mesh", "seen_vertices"}
    for part in results.values():
        assert set(part) == {
            "gt_as_prediction",
            "mesh_connected_components",
            "pseudo_labels_tracked",
            "pseudo_labels_independent",
        }
        assert part["gt_as_prediction"]["AP"] == 1.0
    seen, whole = results["seen_vertices"], results["whole_mesh"]
    assert seen["pseudo_labels_tracked"]["num_gt"] < whole["pseudo_labels_tracked"]["num_gt"]
    printed = capsys.readouterr().out
    assert "[4/4] evaluating" in printed and "pseudo_labels_tracked" in printed
    summary = json.loads(storage.read_text(storage.join(out, "results.json")))
    assert summary["results"]["whole_mesh"]["gt_as_prediction"]["AP50"] == 1.0
    report = storage.read_text(storage.join(out, "report.md"))
    assert "synth1000_00_gt.png" in report and "tracks.png" in report
    assert storage.exists(storage.join(out, "pictures", "synth1000_00_gt.png"))
