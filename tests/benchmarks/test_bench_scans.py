"""benchmarks/bench_scans.py on one tiny scene: the scans.json layout of issue 12 and its value ranges."""

import json
import math

import pytest

from tracklift.datasets.synthetic import SynthConfig

from . import load_benchmark


def test_bench_scans_core_on_one_tiny_scene():
    bench = load_benchmark("bench_scans")
    cfg = SynthConfig(width=64, height=48, n_frames=8)
    result = bench.run_benchmark([5], [77], cfg, workers=1, segmentator_sizes={"100k": 900, "1M": 1600})
    json.dumps(result)  # serialisable as written
    assert set(result) == {
        "scenes",
        "mesh_connected_components",
        "coverage_mean",
        "superpoint_purity_mean",
        "segmentator_seconds",
        "seconds_per_scene",
        "meta",
    }
    (row,) = result["scenes"]
    assert set(bench.ROW_KEYS) <= set(row)
    assert row["scene"] == "synth0005_00" and row["frames"] == 8
    assert row["vertices"] > 0 and row["components"] >= 1 and row["instances"] >= 1
    assert 1 <= row["superpoints"] <= row["vertices"]
    for key in ("largest_component_share", "coverage", "superpoint_purity"):
        assert 0.0 < row[key] <= 1.0, key
    ap = result["mesh_connected_components"]
    assert set(ap) == {"AP", "AP50", "AP25"}
    assert all(0.0 <= ap[k] <= 1.0 for k in ap) and ap["AP"] <= ap["AP50"] <= ap["AP25"]
    assert result["coverage_mean"] == row["coverage"]
    assert result["superpoint_purity_mean"] == row["superpoint_purity"]
    assert set(result["segmentator_seconds"]) == {"100k", "1M"}
    assert all(s > 0 and math.isfinite(s) for s in result["segmentator_seconds"].values())
    assert result["seconds_per_scene"] > 0
    meta = result["meta"]
    assert meta["seeds"] == [5] and meta["style_seeds"] == [77] and "style" in meta
    assert len(meta["load_average_1_5_15"]) == 3


def test_bench_scans_refuses_style_seeds_that_are_layout_seeds():
    bench = load_benchmark("bench_scans")
    with pytest.raises(ValueError, match="style seeds must differ"):
        bench.run_benchmark([5, 6], [6, 7], SynthConfig(width=64, height=48, n_frames=8))
