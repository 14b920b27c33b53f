"""SAM2 backend mechanics on the tiny config with random weights at 256 px on the CPU.

Random weights give meaningless masks, so these tests check shapes, plumbing and equalities that hold
for any weights: seeded frames return their seeds, our in-memory video state gives exactly the masks
of SAM2's own JPEG-folder path, a checkpoint round trip reproduces parameters and predictions.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sam2")

import torch  # noqa: E402

from tracklift import storage  # noqa: E402
from tracklift.datasets.scene import Frame  # noqa: E402
from tracklift.errors import ConfigError, DataError  # noqa: E402
from tracklift.tracking.base import Mask2D, MaskGenerator, MaskTracker  # noqa: E402
from tracklift.tracking.sam2_backend import (  # noqa: E402
    Sam2Config,
    Sam2MaskGenerator,
    Sam2Tracker,
    build_sam2_backends,
    build_sam2_model,
    get_sam2_model,
    load_checkpoint,
)
from tracklift.tracking.sam2_generator import clean_masks  # noqa: E402
from tracklift.tracking.sam2_loading import local_checkpoint_path  # noqa: E402
from tracklift.tracking.sam2_tracker import state_footprint  # noqa: E402

pytestmark = pytest.mark.sam2

SIZE = 256
# thresholds off: random weights rarely reach SAM2Object's 0.7 / 0.92
CFG = Sam2Config(image_size=SIZE, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def model():
    from hydra.core.global_hydra import GlobalHydra

    # `import sam2` (pytest.importorskip above) claimed Hydra's global state; building must not need it
    GlobalHydra.instance().clear()
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        return get_sam2_model(CFG)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    try:
        from tracklift.datasets.synthetic import SynthConfig, generate_scene

        return generate_scene(3, SynthConfig.classic(width=128, height=96, n_frames=4)).frames
    except ImportError:  # the synthetic generator is optional for these mechanics
        from tests.conftest import make_scene_data

        return make_scene_data(n_frames=4, width=128, height=96).frames


def _seeds(h: int, w: int) -> dict[int, np.ndarray]:
    a = np.zeros((h, w), bool)
    a[h // 8 : h // 2, w // 8 : w // 2] = True
    b = np.zeros((h, w), bool)
    b[h // 2 : h - 4, w // 2 : w - 8] = True
    return {7: a, 12: b}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------- configuration and building


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="multiple of 32"):
        Sam2Config(image_size=300)
    with pytest.raises(ConfigError, match="device"):
        Sam2Config(device="tpu")
    with pytest.raises(ConfigError, match="unknown SAM2 model config"):
        build_sam2_model(Sam2Config(model_config="configs/sam2.1/nope.yaml", image_size=SIZE))
    with pytest.raises(ConfigError, match="model.key=value"):
        build_sam2_model(Sam2Config(image_size=SIZE, overrides=["image_size=512"]))


def test_import_leaves_hydra_global_state_alone():
    code = (
        "from hydra.core.global_hydra import GlobalHydra\n"
        "from tracklift.tracking.sam2_loading import import_sam2\n"
        "import_sam2()\n"
        "assert not GlobalHydra.instance().is_initialized(), 'sam2 left Hydra initialised'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_model_is_built_once_and_shared(model):
    assert model.image_size == SIZE
    assert not model.training
    assert get_sam2_model(Sam2Config(image_size=SIZE, pred_iou_thresh=0.5)) is model  # inference knobs only
    generator, tracker = build_sam2_backends(CFG)
    assert generator.model is model and tracker.model is model
    assert isinstance(generator, MaskGenerator) and isinstance(tracker, MaskTracker)
    assert generator._amg.predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)]


# ---------------------------------------------------------------- automatic masks


def test_generator_returns_filtered_masks_at_frame_resolution(model, frames):
    f = frames[1]
    # NMS off too: random weights give near-identical masks that NMS would merge into one
    loose_cfg = Sam2Config(
        image_size=SIZE,
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    loose = Sam2MaskGenerator(loose_cfg, model).generate(f.color, f.depth)
    assert len(loose) > 4
    for m in loose:
        assert isinstance(m, Mask2D)
        assert m.mask.shape == f.color.shape[:2] and m.mask.dtype == bool
        assert m.area > 0
        assert np.isfinite(m.score) and 0.0 <= m.stability <= 1.0
    scores = [m.score for m in loose]
    assert scores == sorted(scores, reverse=True)

    cut = float(np.median(scores))
    strict_cfg = Sam2Config(
        image_size=SIZE,
        points_per_side=4,
        pred_iou_thresh=cut,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    strict = Sam2MaskGenerator(strict_cfg, model).generate(f.color, f.depth)
    assert 0 < len(strict) < len(loose)
    assert all(m.score >= cut for m in strict)
    # the same prompts give the same masks: the strict set is the loose set above the cut
    assert len(strict) == sum(s >= cut for s in scores)
    with pytest.raises(ValueError, match="uint8"):
        Sam2MaskGenerator(strict_cfg, model).generate(f.color.astype(np.float32), f.depth)


def test_clean_masks_removes_islands_fills_holes_and_dedupes():
    big = np.zeros((40, 40), bool)
    big[5:30, 5:30] = True
    big[10:12, 10:12] = False  # a 4-pixel hole
    big[35:37, 35:37] = True  # a 4-pixel island
    twin = big.copy()
    twin[36, 36] = False  # differs only in the island: identical after cleaning
    speck = np.zeros((40, 40), bool)
    speck[0:2, 38:40] = True  # only an island: empty after cleaning
    out = clean_masks([Mask2D(twin, 0.8, 0.9), Mask2D(big, 0.9, 0.95), Mask2D(speck, 0.99, 1.0)], 10, 0.7)
    assert len(out) == 1
    (m,) = out
    assert m.score == 0.9
    expected = np.zeros((40, 40), bool)
    expected[5:30, 5:30] = True
    np.testing.assert_array_equal(m.mask, expected)


# ---------------------------------------------------------------- tracking


def test_tracker_propagates_forward_and_reverse(model, frames):
    tracker = Sam2Tracker(CFG, model)
    h, w = frames[0].color.shape[:2]
    seeds = _seeds(h, w)
    state = tracker.start(frames, None)
    try:
        tracker.add_masks(state, 0, seeds)
        forward = list(tracker.propagate(state, start=0))
        assert [p for p, _ in forward] == [0, 1, 2, 3]
        for _, masks in forward:
            assert set(masks) == set(seeds)
            assert all(m.shape == (h, w) and m.dtype == bool for m in masks.values())
        for obj, seed in seeds.items():  # a seeded frame returns its seed (as SAM2 feeds masks through)
            assert _iou(forward[0][1][obj], seed) > 0.9

        tracker.add_masks(state, 3, {7: seeds[12]})  # re-seed object 7 on the last frame
        backward = list(tracker.propagate(state, start=3, reverse=True))
        assert [p for p, _ in backward] == [3, 2, 1, 0]
        assert _iou(backward[0][1][7], seeds[12]) > 0.9
        assert set(backward[-1][1]) == set(seeds)

        partial = list(tracker.propagate(state, start=2, end=1, reverse=True))
        assert [p for p, _ in partial] == [2, 1]
        assert [p for p, _ in tracker.propagate(state, start=0, reverse=True)] == [0]
    finally:
        tracker.close(state)
    with pytest.raises(ValueError, match="closed"):
        tracker.add_masks(state, 0, seeds)

    # a new window reuses the model and the same ids
    state = tracker.start(frames[1:3], None)
    tracker.add_masks(state, 1, seeds)
    out = dict(tracker.propagate(state, start=1, reverse=True))
    assert set(out) == {0, 1} and set(out[0]) == set(seeds)
    assert _iou(out[1][12], seeds[12]) > 0.9
    tracker.close(state)


def test_tracker_matches_sam2_video_path(model, frames, tmp_path):
    """Our in-memory state gives exactly the masks of SAM2's own JPEG-folder loader."""
    from PIL import Image

    decoded = []
    for i, f in enumerate(frames):
        Image.fromarray(f.color).save(tmp_path / f"{i}.jpg", quality=95)
        decoded.append(np.asarray(Image.open(tmp_path / f"{i}.jpg").convert("RGB")))
    h, w = decoded[0].shape[:2]
    seeds = _seeds(h, w)

    ref_state = model.init_state(str(tmp_path))
    for obj, m in seeds.items():
        model.add_new_mask(ref_state, frame_idx=1, obj_id=obj, mask=torch.from_numpy(m))
    reference = {
        t: {o: (logits[i, 0] > 0).numpy() for i, o in enumerate(ids)}
        for t, ids, logits in model.propagate_in_video(ref_state, start_frame_idx=1)
    }
    model.reset_state(ref_state)

    window = [Frame(i, c, frames[i].depth, frames[i].pose) for i, c in enumerate(decoded)]
    lazy = Sam2Config(image_size=SIZE)
    preloaded = Sam2Config(image_size=SIZE, preload_frames=True, offload_state_to_cpu=True, trim_memory=False)
    for cfg in (lazy, preloaded):
        tracker = Sam2Tracker(cfg, model)
        state = tracker.start(window, None)
        tracker.add_masks(state, 1, seeds)
        ours = dict(tracker.propagate(state, start=1))
        tracker.close(state)
        assert set(ours) == set(reference) == {1, 2, 3}
        for t in reference:
            assert set(ours[t]) == set(reference[t])
            for o in reference[t]:
                np.testing.assert_array_equal(
                    ours[t][o], reference[t][o], err_msg=f"frame {t} object {o} {cfg}"
                )


def test_trim_drops_only_outputs_beyond_the_memory_reach(model):
    tracker = Sam2Tracker(CFG, model)
    assert tracker.memory_reach == 16  # tiny config: 7 memory frames, 16 object pointers

    def fake_state():
        outputs = {
            "cond_frame_outputs": {0: {}, 20: {}},
            "non_cond_frame_outputs": {t: {} for t in range(1, 20)},
        }
        return {"output_dict_per_obj": {0: outputs}}

    forward = fake_state()
    tracker._trim(forward, 19, reverse=False)
    assert sorted(forward["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == list(range(3, 20))
    assert sorted(forward["output_dict_per_obj"][0]["cond_frame_outputs"]) == [0, 20]  # seeds stay
    backward = fake_state()
    tracker._trim(backward, 1, reverse=True)
    assert sorted(backward["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == list(range(1, 18))


@pytest.mark.slow
def test_trimmed_memory_gives_the_same_masks(model, frames):
    n = 10
    window = [frames[i % len(frames)] for i in range(n)]
    h, w = window[0].color.shape[:2]
    seed = {3: _seeds(h, w)[7]}
    saved = model.max_obj_ptrs_in_encoder
    model.max_obj_ptrs_in_encoder = 3  # shrinks the memory reach to 7 frames so a short window shows trimming
    try:
        results, kept = [], []
        for trim in (False, True):
            tracker = Sam2Tracker(Sam2Config(image_size=SIZE, trim_memory=trim), model)
            assert tracker.memory_reach == 7
            state = tracker.start(window, None)
            tracker.add_masks(state, 0, seed)
            results.append(dict(tracker.propagate(state, start=0)))
            kept.append(len(state.inference["output_dict_per_obj"][0]["non_cond_frame_outputs"]))
            tracker.close(state)
    finally:
        model.max_obj_ptrs_in_encoder = saved
    assert kept == [n - 1, tracker.memory_reach + 1]  # frames 1..9, then only 2..9
    for t in range(n):
        np.testing.assert_array_equal(results[0][t][3], results[1][t][3], err_msg=f"frame {t}")


# ---------------------------------------------------------------- windowing and offloading

SMALL = 128  # the long-window test runs the network 60 times: the smallest input keeps it to seconds
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.slow
def test_a_long_window_keeps_the_state_bounded(frames):
    """60 frames: the state's outputs, cached features and tensors stop growing once the memory reach is
    full (without trimming they grow with every frame, as the 10-frame test above shows)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "SAM2 .* RANDOM weights", UserWarning)
        small = get_sam2_model(Sam2Config(image_size=SMALL))
    tracker = Sam2Tracker(Sam2Config(image_size=SMALL, trim_memory=True), small)
    reach = tracker.memory_reach
    n = 60
    window = [frames[i % len(frames)] for i in range(n)]
    h, w = window[0].color.shape[:2]
    state = tracker.start(window, None)
    try:
        tracker.add_masks(state, 0, {3: _seeds(h, w)[7]})
        seen = {}
        for pos, masks in tracker.propagate(state, start=0):
            assert set(masks) == {3}
            seen[pos] = state_footprint(state)
    finally:
        end = state_footprint(state)
        tracker.close(state)
    assert sorted(seen) == list(range(n))
    assert all(f.non_cond_outputs <= reach + 1 and f.cond_outputs == 1 for f in seen.values())
    assert all(f.cached_frames <= 1 and f.preloaded_frames == 0 for f in seen.values())
    # full from frame reach + 1 on: nothing grows any more, neither the count nor the bytes
    plateau = seen[reach + 2]
    assert plateau.non_cond_outputs == end.non_cond_outputs == reach + 1
    assert plateau.tensors == end.tensors
    assert plateau.bytes_by_device == end.bytes_by_device
    assert state.inference == {}  # closed: everything released


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("offload", [True, False])
def test_offload_options_place_frames_and_memory(model, frames, device, offload):
    """``offload_state_to_cpu`` keeps SAM2's per-frame memory on the CPU, ``offload_video_to_cpu`` the
    preloaded frames; otherwise both live on the model's device (only distinguishable with a GPU)."""
    cfg = Sam2Config(
        image_size=SIZE,
        device=device,
        preload_frames=True,
        offload_state_to_cpu=offload,
        offload_video_to_cpu=offload,
    )
    net = model if device == "cpu" else get_sam2_model(cfg)
    tracker = Sam2Tracker(cfg, net)
    h, w = frames[0].color.shape[:2]
    state = tracker.start(frames, None)
    try:
        tracker.add_masks(state, 0, _seeds(h, w))
        list(tracker.propagate(state, start=0))
        footprint = state_footprint(state)
        inference = state.inference
        want = torch.device("cpu") if offload else net.device
        assert inference["storage_device"] == want
        assert inference["images"]._ready.device.type == want.type
        assert footprint.preloaded_frames == len(frames)
        assert footprint.non_cond_outputs == 2 * (len(frames) - 1) and footprint.cond_outputs == 2
        for per_obj in inference["output_dict_per_obj"].values():
            for outputs in per_obj.values():
                for out in outputs.values():
                    assert out["maskmem_features"].device.type == want.type
                    assert out["pred_masks"].device.type == want.type
        assert set(footprint.bytes_by_device) <= {str(want), "cpu"} | {str(net.device)}
        if offload:
            # only the (small) object pointers and the last frame's cached features stay on the device
            on_cpu = footprint.bytes_by_device.get("cpu", 0)
            assert on_cpu > 0.5 * sum(footprint.bytes_by_device.values())
    finally:
        tracker.close(state)


def test_tracker_rejects_bad_input(model, frames):
    tracker = Sam2Tracker(Sam2Config(image_size=SIZE, window=3), model)
    with pytest.raises(ConfigError, match="window"):
        tracker.start(frames, None)
    with pytest.raises(ValueError, match="no frames"):
        tracker.start([], None)
    odd = Frame(99, np.zeros((10, 10, 3), np.uint8), frames[0].depth, frames[0].pose)
    with pytest.raises(ValueError, match="frame 99"):
        tracker.start([frames[0], odd], None)
    state = tracker.start(frames[:2], None)
    with pytest.raises(IndexError):
        tracker.propagate(state, start=2)
    with pytest.raises(ValueError, match="shape"):
        tracker.add_masks(state, 0, {1: np.ones((5, 5), bool)})
    with pytest.raises(ValueError, match="direction"):
        tracker.propagate(state, start=1, end=0)
    # nothing seeded (empty masks are skipped): every frame comes back with no objects
    tracker.add_masks(state, 0, {1: np.zeros(frames[0].color.shape[:2], bool)})
    assert list(tracker.propagate(state, start=0)) == [(0, {}), (1, {})]
    tracker.close(state)


# ---------------------------------------------------------------- checkpoints


def _save_checkpoint(url: str, state_dict: dict) -> None:
    buf = io.BytesIO()
    torch.save({"model": state_dict}, buf)
    storage.write_bytes(url, buf.getvalue())


def _assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _assert_same_masks(a: list[Mask2D], b: list[Mask2D]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mask, y.mask)
        assert x.score == y.score and x.stability == y.stability


def test_checkpoint_round_trip_file(model, frames, tmp_path):
    url = f"file://{tmp_path}/sam2_tiny.pt"
    _save_checkpoint(url, model.state_dict())
    torch.manual_seed(1)  # a different random start, so equality must come from the checkpoint
    loaded = build_sam2_model(Sam2Config(image_size=SIZE, checkpoint=url))
    _assert_same_parameters(model, loaded)
    f = frames[2]
    cfg = Sam2Config(image_size=SIZE, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    _assert_same_masks(
        Sam2MaskGenerator(cfg, model).generate(f.color), Sam2MaskGenerator(cfg, loaded).generate(f.color)
    )


@pytest.mark.s3
def test_checkpoint_round_trip_s3_is_cached(model, s3_bucket, tmp_path):
    url = f"{s3_bucket}/models/sam2_tiny.pt"
    _save_checkpoint(url, model.state_dict())
    cache = tmp_path / "cache"
    torch.manual_seed(2)
    loaded = build_sam2_model(Sam2Config(image_size=SIZE, checkpoint=url, cache_dir=str(cache)))
    _assert_same_parameters(model, loaded)
    (copy,) = cache.iterdir()
    assert copy.name.endswith("sam2_tiny.pt")
    assert local_checkpoint_path(url, str(cache)) == str(copy)  # reused, not fetched again
    # a replaced object (new size/ETag) is fetched again
    storage.write_bytes(url, b"a replaced object")
    assert local_checkpoint_path(url, str(cache)) != str(copy)


def test_checkpoint_of_another_config_is_a_clear_error(model, tmp_path):
    good = {k: v.clone() for k, v in model.state_dict().items()}
    tampered = dict(good)
    tampered.pop("sam_mask_decoder.iou_prediction_head.layers.0.weight")
    tampered["image_encoder.trunk.extra_block.weight"] = torch.zeros(3)
    tampered["image_encoder.trunk.pos_embed"] = torch.zeros(1, 144, 7, 7)
    url = f"file://{tmp_path}/other.pt"
    _save_checkpoint(url, tampered)
    with pytest.raises(DataError) as err:
        load_checkpoint(model, url, CFG.model_config)
    msg = str(err.value)
    assert err.value.url == url
    assert "does not match config configs/sam2.1/sam2.1_hiera_t.yaml" in msg
    assert "missing keys sam_mask_decoder.iou_prediction_head.layers.0.weight" in msg
    assert "unexpected keys image_encoder.trunk.extra_block.weight" in msg
    assert "image_encoder.trunk.pos_embed (1, 144, 7, 7) vs (1, 96, 7, 7)" in msg
    for k, v in model.state_dict().items():  # a refused checkpoint leaves the model untouched
        assert torch.equal(v, good[k])


def test_unreadable_checkpoints_are_data_errors(model, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(model, f"file://{tmp_path}/missing.pt", CFG.model_config)
    storage.write_bytes(f"file://{tmp_path}/junk.pt", b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(model, f"file://{tmp_path}/junk.pt", CFG.model_config)
    buf = io.BytesIO()
    torch.save({"weights": {}}, buf)
    storage.write_bytes(f"file://{tmp_path}/nomodel.pt", buf.getvalue())
    with pytest.raises(DataError, match="no 'model' state dict"):
        load_checkpoint(model, f"file://{tmp_path}/nomodel.pt", CFG.model_config)


# ---------------------------------------------------------------- the whole 2D stage on SAM2


def test_granularity_consistent_tracker_runs_on_sam2(model):
    """Mechanics of the paper's pipeline with SAM2 generator and tracker: keyframe masks, segments of
    propagation, stable-id maps for every frame (random weights: the masks themselves mean nothing)."""
    from tracklift.datasets.synthetic import SynthConfig, generate_scene
    from tracklift.tracking.consistent import ConsistencyConfig, GranularityConsistentTracker

    scene = generate_scene(4, SynthConfig.classic(width=128, height=96, n_frames=5)).as_scene()
    generator, tracker = build_sam2_backends(CFG)
    calls = []
    gct = GranularityConsistentTracker(
        generator, tracker, ConsistencyConfig(keyframe_interval=2, min_mask_area=16)
    )
    tracked = gct.run(scene, on_keyframe=lambda pos, masks: calls.append((pos, len(masks))))
    assert [p for p, _ in calls] == [0, 2, 4]
    assert sorted(tracked.id_maps) == [0, 1, 2, 3, 4]
    assert all(m.shape == (96, 128) and m.dtype == np.int32 for m in tracked.id_maps.values())
    assert tracked.stats["fresh"] == sum(n for _, n in calls) > 0
    ids = set(np.unique(np.concatenate([m.ravel() for m in tracked.id_maps.values()]))) - {0}
    assert ids and max(ids) <= tracked.stats["tracks"]


def test_label_command_builds_the_sam2_backends(model):
    from tracklift.labeling import LabelConfig, build_generator, build_tracker

    cfg = LabelConfig(generator="sam2", tracker="sam2", sam2_image_size=SIZE)
    assert isinstance(build_generator(cfg), Sam2MaskGenerator)
    assert isinstance(build_tracker(cfg), Sam2Tracker)
