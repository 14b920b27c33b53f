"""The granularity-consistent tracker end to end, with the real geometric tracker on a synthetic scan."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.tracking.consistent import ConsistencyConfig, GranularityConsistentTracker
from tracklift.tracking.geometric import GeometricTracker

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from controlled_prior import ControlledPrior, PriorConfig  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return generate_scene(21, SynthConfig.classic(width=160, height=120, n_frames=16)).as_scene()


def dominant_ids(scene, id_maps, min_px=60):
    """{GT object: [dominant tracked id per frame where the object is visible]}."""
    out = {}
    for pos, ids in id_maps.items():
        inst = scene.frame(pos).instance
        for g in np.unique(inst[inst >= 1000]):
            sel = inst == g
            if sel.sum() >= min_px:
                out.setdefault(int(g), []).append(Counter(ids[sel].tolist()).most_common(1)[0][0])
    return out


def test_ids_are_stable_across_the_scan(scene):
    prior = ControlledPrior(PriorConfig(p_split=0.0, p_miss=0.0, boundary_px=0))
    tracked = GranularityConsistentTracker(prior, GeometricTracker(), ConsistencyConfig()).run(scene)
    assert sorted(tracked.id_maps) == list(range(len(scene)))
    assert all(m.dtype == np.int32 and m.shape == (120, 160) for m in tracked.id_maps.values())
    doms = dominant_ids(scene, tracked.id_maps)
    shares = [Counter(d).most_common(1)[0][1] / len(d) for d in doms.values()]
    assert np.mean(shares) > 0.8  # one object, one id, in (almost) every frame
    # each tracked id stays on one object: its pixels are (almost) all on one GT object
    purity = []
    for pos, ids in tracked.id_maps.items():
        inst = scene.frame(pos).instance
        for i in np.unique(ids[ids > 0]):
            on = inst[ids == i]
            purity.append(Counter(on.tolist()).most_common(1)[0][1] / len(on))
    assert np.mean(purity) > 0.9
    ki = ConsistencyConfig().keyframe_interval
    assert tracked.stats["keyframes"] == len(range(0, len(scene), ki))  # every ki-th frame
    assert sorted(tracked.id_maps) == list(range(len(scene)))


def test_frames_after_the_last_keyframe_are_tracked_from_it(scene):
    """16 frames at interval 4: keyframes 0, 4, 8, 12; frames 13-15 carry keyframe 12's ids, no fresh masks."""
    prior = ControlledPrior(PriorConfig(p_split=0.0, p_miss=0.0, boundary_px=0))
    cfg = ConsistencyConfig(keyframe_interval=4)
    seen = []
    tracked = GranularityConsistentTracker(prior, GeometricTracker(), cfg).run(
        scene, on_keyframe=lambda pos, masks: seen.append(pos)
    )
    assert seen == [0, 4, 8, 12] and tracked.stats["keyframes"] == 4
    last_key = set(np.unique(tracked.id_maps[12])) - {0}
    for pos in (13, 14, 15):
        ids = set(np.unique(tracked.id_maps[pos])) - {0}
        assert len(ids) >= 3 and len(ids & last_key) >= 0.8 * len(ids)


def test_small_objects_next_to_larger_ones_keep_their_own_id(scene):
    """A propagated mask that grows over a neighbour must not make the neighbour's fresh mask a "part"."""
    prior = ControlledPrior(PriorConfig(p_split=0.0, p_miss=0.0, boundary_px=0))
    tracked = GranularityConsistentTracker(prior, GeometricTracker(), ConsistencyConfig()).run(scene)
    usual = [Counter(d).most_common(1)[0][0] for d in dominant_ids(scene, tracked.id_maps).values()]
    usual = [u for u in usual if u != 0]
    assert len(set(usual)) >= 0.9 * len(usual)


def test_granularity_chosen_once_per_object(scene):
    """With views that split objects into parts at random, tracked ids keep one granularity per object:
    an object's usual id covers the same share of it in every frame far more often than per-frame masks."""
    prior = ControlledPrior(PriorConfig(p_split=0.5, p_miss=0.0, boundary_px=0, seed=3))
    tracked = GranularityConsistentTracker(prior, GeometricTracker(), ConsistencyConfig()).run(scene)
    doms = dominant_ids(scene, tracked.id_maps)
    shares = [Counter(d).most_common(1)[0][1] / len(d) for d in doms.values()]
    assert np.mean(shares) > 0.8
    assert tracked.stats["part"] + tracked.stats["union"] + tracked.stats["matched"] > 0


def test_the_tracker_gives_a_camera_less_generator_the_scene_camera():
    """``GranularityConsistentTracker.run`` binds a generator built without a camera to the scene's (a
    wide-angle one here): its tracks equal those of a generator built with the scene's camera and differ
    from those of the weightless generator's fallback camera (0.9 × width)."""
    from .camera_binding import assert_bound_to_scene_camera, wide_angle_scene

    wide = wide_angle_scene()

    def id_maps(generator):
        return (
            GranularityConsistentTracker(generator, GeometricTracker(), ConsistencyConfig()).run(wide).id_maps
        )

    assert_bound_to_scene_camera(id_maps, wide)
