"""Per-instance CLIP features: which frames are chosen, where the crops are cut, how they are averaged."""

from __future__ import annotations

import numpy as np
import pytest

from tests.openvocab.scenes import EYES_X, PATCHES, WALL_COLOR, wall_scene
from tracklift.errors import DataError
from tracklift.geometry.camera import project
from tracklift.openvocab import ClipConfig, instance_features, rank_instances, select_views
from tracklift.openvocab.features import PAD_COLOR, crop_box, crop_image
from tracklift.structures import Instances


class RecordingEncoder:
    """A stand-in image encoder: embedding = unit (mean R, mean G, mean B, 64); remembers every crop."""

    dim = 4

    def __init__(self):
        self.crops: list[np.ndarray] = []

    def embed(self, img: np.ndarray) -> np.ndarray:
        v = np.append(img.reshape(-1, 3).mean(axis=0), 64.0)
        return v / np.linalg.norm(v)

    def encode_images(self, images):
        self.crops.extend(images)
        return np.stack([self.embed(i) for i in images]).astype(np.float32)


@pytest.fixture(scope="module")
def wall():
    data, inst, names = wall_scene()
    return data.as_scene(), inst, names


def _in_image_counts(scene, mask) -> list[int]:
    """Independent count: instance vertices projecting inside each frame (the wall hides nothing on it)."""
    out = []
    for k in range(len(scene)):
        f = scene.frame(k)
        col, row, z = project(scene.vertices[mask], scene.intrinsics, f.pose)
        inside = (z > 0) & (col >= 0) & (col < scene.intrinsics.width) & (row >= 0)
        out.append(int((inside & (row < scene.intrinsics.height)).sum()))
    return out


def test_views_are_the_frames_that_see_the_instance_best(wall):
    scene, inst, names = wall
    views = dict(zip(names, select_views(scene, inst, ClipConfig(frames_per_instance=3, min_mask_pixels=4))))
    for name in ("red", "blue"):  # fully in view everywhere: all three frames, ties in frame order
        assert [v.position for v in views[name]] == [0, 1, 2]
        assert all(v.visible == inst.sizes[names.index(name)] for v in views[name])
    assert [v.position for v in views["right_edge"]] == [2]  # only the rightmost camera sees it
    # wide_left leaves the image as the camera slides right: best view first, counts as projected
    wl = views["wide_left"]
    expected = _in_image_counts(scene, inst.masks[names.index("wide_left")])
    assert expected[0] > expected[1] > expected[2] > 0
    assert [v.position for v in wl] == [0, 1, 2]
    assert [v.visible for v in wl] == expected
    assert views["far"] == []  # outside every frame
    assert views["hidden"] == []  # in the frustum but 0.5 m behind the wall: the depth test rejects it


def test_frame_limit_and_pixel_threshold(wall):
    scene, inst, names = wall
    views = select_views(scene, inst, ClipConfig(frames_per_instance=2))
    assert [v.position for v in views[names.index("red")]] == [0, 1]
    wl = names.index("wide_left")
    assert [v.position for v in views[wl]] == [0, 1]
    # a threshold above the third view's pixel count drops only that view
    few = select_views(scene, inst, ClipConfig(frames_per_instance=3, min_mask_pixels=4))[wl]
    cut = few[2].pixels + 1
    assert [v.position for v in select_views(scene, inst, ClipConfig(min_mask_pixels=cut))[wl]] == [0, 1]


def test_crops_are_cut_where_the_instance_projects(wall):
    scene, inst, names = wall
    for name in ("red", "blue"):
        k = names.index(name)
        enc = RecordingEncoder()
        instance_features(scene, inst[[k]], enc, ClipConfig(crop_scales=(1.0, 2.0)))
        assert len(enc.crops) == 2 * len(EYES_X)  # three views, two scales
        color = np.array(PATCHES[name][1])
        share = [np.mean(np.all(c == color, axis=-1)) for c in enc.crops]
        tight, wide = share[0::2], share[1::2]  # crops of a view come scale by scale
        assert min(tight) > 0.6, tight
        assert all(0 < w < t for t, w in zip(tight, wide))  # the wider crop adds wall around the patch
        for c in enc.crops:
            assert c.shape[0] == c.shape[1]  # square, so CLIP's centre crop keeps all of it
            assert np.all(c[c.shape[0] // 2, c.shape[1] // 2] == color)  # centred on the patch
        assert all(np.any(np.all(c == WALL_COLOR, axis=-1)) for c in enc.crops[1::2])


def test_features_are_the_renormalised_mean_and_unseen_rows_are_zero(wall):
    scene, inst, names = wall
    enc = RecordingEncoder()
    cfg = ClipConfig(crop_scales=(1.0, 1.5), min_mask_pixels=4)
    feats = instance_features(scene, inst, enc, cfg)
    assert feats.shape == (len(inst), 4) and feats.dtype == np.float32
    views = select_views(scene, inst, cfg)
    # crops arrive frame by frame, instance by instance within a frame, scale by scale
    owners = [
        v.instance for p in range(len(scene)) for vs in views for v in vs if v.position == p for _ in (1, 2)
    ]
    assert len(owners) == len(enc.crops)
    for k, name in enumerate(names):
        mine = [enc.embed(c) for c, o in zip(enc.crops, owners) if o == k]
        if name in ("far", "hidden"):
            assert not mine and np.all(feats[k] == 0)
            continue
        mean = np.mean(mine, axis=0)
        np.testing.assert_allclose(feats[k], mean / np.linalg.norm(mean), atol=1e-6)
    # the whole chain: a "red" query ranks the red patch first and the unseen ones last
    order, sim = rank_instances(feats, np.array([1.0, 0.0, 0.0, 0.0]))
    assert names[order[0]] == "red"
    assert [names[i] for i in order[-2:]] == ["far", "hidden"] and np.all(sim[order[-2:]] == 0)


def test_tiny_clip_features(wall, tiny_clip):
    scene, inst, names = wall
    cfg, enc = tiny_clip
    feats = instance_features(scene, inst, enc, cfg)
    assert feats.shape == (len(inst), enc.dim) and feats.dtype == np.float32
    norms = np.linalg.norm(feats, axis=1)
    seen = np.array([n not in ("far", "hidden") for n in names])
    np.testing.assert_allclose(norms[seen], 1.0, atol=1e-5)
    assert np.all(norms[~seen] == 0)
    assert np.abs(feats[0] - feats[1]).max() > 1e-4  # red and blue crops differ
    assert instance_features(scene, inst[np.zeros(len(inst), bool)], enc, cfg).shape == (0, enc.dim)


def test_crop_box_and_padding():
    # inside the image: a square of the box's longer side times the scale, centred on the box
    assert crop_box((10, 20, 20, 24), 1.0, 80, 60) == (10, 17, 20, 27)
    assert crop_box((10, 20, 20, 24), 2.0, 80, 60) == (5, 12, 25, 32)
    # at the border it is shifted inside, still containing the box
    x0, y0, x1, y1 = crop_box((0, 0, 6, 6), 2.0, 80, 60)
    assert (x0, y0) == (0, 0) and x1 - x0 == 12 and y1 - y0 == 12
    # larger than the image: cut to it, and crop_image pads to a square with CLIP's mean colour
    box = crop_box((10, 10, 70, 50), 2.0, 80, 60)
    assert box == (0, 0, 80, 60)
    img = np.zeros((60, 80, 3), np.uint8)
    sq = crop_image(img, box)
    assert sq.shape == (80, 80, 3)
    assert np.all(sq[:10] == PAD_COLOR) and np.all(sq[10:70] == 0) and np.all(sq[70:] == PAD_COLOR)


def test_instances_must_match_the_mesh(wall):
    scene, _, _ = wall
    with pytest.raises(DataError, match="instances are over 5 points"):
        select_views(scene, Instances(np.ones((1, 5), bool)), ClipConfig())


def test_synthetic_scan_views_show_their_objects():
    from tracklift.datasets.synthetic import generate_scene
    from tracklift.datasets.synthetic.config import SynthConfig

    data = generate_scene(7, SynthConfig.classic(width=160, height=120, n_frames=8, n_groups=2))
    scene = data.as_scene()
    ids = np.unique(data.gt_instance[data.gt_instance > 0])
    inst = Instances(np.stack([data.gt_instance == i for i in ids]))
    views = select_views(scene, inst, ClipConfig(frames_per_instance=3))
    maps = [f.instance for f in data.frames]
    n_with_views = 0
    for k, gid in enumerate(ids):
        shown = [int((m == gid).sum()) for m in maps]
        if not any(shown):
            assert views[k] == []  # never in any frame: no view
        for v in views[k]:
            assert shown[v.position] > 0  # the GT map of a chosen frame shows the object
            x0, y0, x1, y1 = v.box
            assert (maps[v.position][y0:y1, x0:x1] == gid).any()  # and the box is on it
        n_with_views += bool(views[k])
    assert n_with_views >= len(ids) // 2
