"""``LabelConfig`` nests the algorithms' configs whole: every field is a flag, and YAML takes nested keys."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import yaml

from tracklift import config as config_lib
from tracklift.cli import build_parser
from tracklift.labeling import LabelConfig
from tracklift.lifting import LiftConfig, SampleConfig, VisibilityConfig
from tracklift.tracking.base import for_camera
from tracklift.tracking.consistent import ConsistencyConfig
from tracklift.tracking.geometric import GeometricConfig
from tracklift.tracking.weightless import WeightlessConfig, WeightlessMaskGenerator

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _flags(prefix: str, cls: type) -> set[str]:
    """``--prefix.field-name`` for every leaf field of ``cls`` (nested dataclasses recursed)."""
    out = set()
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        name = f"{prefix}.{f.name.replace('_', '-')}"
        out |= _flags(name, type(default)) if dataclasses.is_dataclass(default) else {name}
    return out


def test_label_help_lists_every_field_of_the_nested_configs():
    expected = (
        _flags("--lift", LiftConfig)
        | _flags("--samples", SampleConfig)
        | _flags("--consistency", ConsistencyConfig)
        | _flags("--weightless", WeightlessConfig)
    )
    # the visibility config is the lifting's own (one depth test, one default)
    assert _flags("--lift.visibility", VisibilityConfig) <= expected
    assert len(expected) >= 12 + 4 + 7 + 13 - 1
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    text = subprocess.run(
        [sys.executable, "-m", "tracklift.cli", "label", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    missing = sorted(flag for flag in expected if flag not in text)
    assert not missing, f"tracklift label --help lacks {missing}"


def test_nested_flags_reach_the_algorithm_configs():
    parser = build_parser()
    args = parser.parse_args(
        ["label", "--lift.min-votes", "3", "--lift.visibility.depth-abs-tol", "0.01", "--samples.window", "7"]
    )
    cfg = config_lib.from_args(LabelConfig, args)
    assert cfg.lift.min_votes == 3 and cfg.lift.visibility.depth_abs_tol == 0.01
    assert cfg.visibility is cfg.lift.visibility
    assert cfg.samples.window == 7 and cfg.samples.stride == SampleConfig().stride
    # defaults are the algorithms' own
    assert LabelConfig().lift == LiftConfig() and LabelConfig().samples == SampleConfig()


def test_label_config_from_yaml_with_nested_keys(tmp_path):
    path = tmp_path / "label.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "method": "independent",
                "lift": {"min_votes": 4, "merge_iou": 0.4, "visibility": {"depth_rel_tol": 0.03}},
                "samples": {"voxel_size": 0.05, "stage3_min_seen": 0},
                "consistency": {"keyframe_interval": 7},
            }
        )
    )
    args = build_parser().parse_args(["label", "--config", str(path), "--lift.min-ratio", "0.6"])
    cfg = config_lib.from_args(LabelConfig, args)
    assert isinstance(cfg.lift, LiftConfig) and isinstance(cfg.lift.visibility, VisibilityConfig)
    assert cfg.method == "independent"
    assert (cfg.lift.min_votes, cfg.lift.merge_iou, cfg.lift.min_ratio) == (4, 0.4, 0.6)
    assert cfg.lift.visibility.depth_rel_tol == 0.03
    assert cfg.lift.visibility.depth_abs_tol == VisibilityConfig().depth_abs_tol
    assert (cfg.samples.voxel_size, cfg.samples.stage3_min_seen) == (0.05, 0)
    assert cfg.consistency.keyframe_interval == 7


def test_geometric_tracker_settings_reach_the_tracker():
    """The geometric tracker's settings are flags of the label stage and reach the tracker it builds."""
    from tracklift.labeling.config import build_tracker

    args = build_parser().parse_args(["label", "--geometric.stride", "3", "--geometric.voxel", "0.05"])
    cfg = config_lib.from_args(LabelConfig, args)
    tracker = build_tracker(cfg)
    assert (tracker.cfg.stride, tracker.cfg.voxel) == (3, 0.05)
    assert tracker.cfg.stride_for(640) == 3
    auto = GeometricConfig(stride=0, work_width=160)  # 0: the stride that gives a ~160-pixel-wide image
    assert [auto.stride_for(w) for w in (160, 320, 640, 1296)] == [1, 2, 4, 8]


def test_the_main_job_takes_the_tracker_settings_of_the_label_stage():
    """``tracklift run --geometric.* --consistency.*`` reach the tracked label stage of the main job (and
    not the independent baseline, which has no tracker)."""
    from tracklift.main_job import RunConfig, label_configs

    args = build_parser().parse_args(
        ["run", "--geometric.stride", "1", "--consistency.new-order", "area", "--vote-unit", "vertex"]
    )
    cfg = config_lib.from_args(RunConfig, args)
    corpora = {"train": "corpus_train", "held_out": "corpus_held_out"}
    labels = {split: f"labels_{split}" for split in corpora}
    tracked, independent = label_configs(cfg, corpora, labels, "labels_independent")
    assert set(tracked) == {"train", "held_out"}
    for split, lcfg in tracked.items():
        assert (lcfg.scenes, lcfg.out, lcfg.method) == (corpora[split], labels[split], "tracked")
        assert lcfg.geometric.stride == 1 and lcfg.consistency.new_order == "area"
        assert lcfg.lift.vote_unit == "vertex"
    assert independent.method == "independent" and independent.scenes == "corpus_held_out"
    assert independent.lift == tracked["train"].lift
    default = label_configs(RunConfig(), corpora, labels, "x")[0]["train"]
    assert default.geometric == GeometricConfig() and default.consistency == ConsistencyConfig()


def test_weightless_generator_settings_reach_the_generator():
    """``--weightless.*`` flags configure the mask generator the label stage builds."""
    from tracklift.labeling.config import build_generator

    args = build_parser().parse_args(
        ["label", "--weightless.scales", "1,4,16", "--weightless.work-width", "80"]
    )
    generator = build_generator(config_lib.from_args(LabelConfig, args))
    assert generator.cfg.scales == [1.0, 4.0, 16.0] and generator.cfg.work_width == 80
    assert build_generator(LabelConfig()).cfg == WeightlessConfig()


def test_label_scene_gives_the_weightless_generator_the_scene_camera():
    """The weightless generator's normals need the scan's camera: ``label_scene`` binds a generator built
    without one (as ``tracklift label`` builds it) to the scene's intrinsics, here a wide-angle camera
    (focal 0.5 × width) on which the generator's fallback camera (0.9 × width) gives other masks."""
    from tracklift.geometry.camera import centred_intrinsics
    from tracklift.labeling import label_scene

    from ..tracking.camera_binding import assert_bound_to_scene_camera, wide_angle_scene

    scene = wide_angle_scene()
    cfg = LabelConfig(method="independent", pictures=False, write_shards=False)

    def maps(generator):
        return label_scene(scene, cfg, generator, None).single_maps

    assert_bound_to_scene_camera(maps, scene)
    camera = centred_intrinsics(160, 120, 0.7)
    assert for_camera(WeightlessMaskGenerator(intrinsics=camera), scene.intrinsics).intrinsics == camera
