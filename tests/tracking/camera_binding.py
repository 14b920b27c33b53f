"""Shared check of the tests that a camera-less weightless generator gets the scan's camera."""

from collections.abc import Callable

import numpy as np

from tracklift.datasets.scene import Scene
from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.geometry.camera import centred_intrinsics
from tracklift.tracking.weightless import WeightlessMaskGenerator


def wide_angle_scene() -> Scene:
    """A small scan through a wide-angle camera (focal 0.5 × width), on which the weightless generator's
    fallback camera (0.9 × width) gives other masks."""
    scene = generate_scene(21, SynthConfig.classic(width=160, height=120, n_frames=6, focal=0.5)).as_scene()
    assert scene.intrinsics.fx == 0.5 * 160
    return scene


def assert_bound_to_scene_camera(maps: Callable[[WeightlessMaskGenerator], dict], scene: Scene) -> None:
    """``maps(generator)`` (frame → id map) of a generator built without a camera equals that of one built
    with ``scene``'s camera, and differs from that of one built with the fallback camera."""
    unbound = maps(WeightlessMaskGenerator())
    own = maps(WeightlessMaskGenerator(intrinsics=scene.intrinsics))
    fallback = maps(WeightlessMaskGenerator(intrinsics=centred_intrinsics(160, 120, 0.9)))
    assert unbound.keys() == own.keys() and unbound
    assert all(np.array_equal(unbound[k], own[k]) for k in unbound)
    assert any(not np.array_equal(unbound[k], fallback[k]) for k in unbound)
