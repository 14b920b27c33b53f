"""ScanNet benchmark text formats: round trips through memory:// and local paths, and bad input."""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import pytest

from tracklift import storage
from tracklift.errors import DataError
from tracklift.evaluation import (
    evaluate,
    evaluate_dirs,
    format_table,
    read_gt,
    read_predictions,
    write_gt,
    write_predictions,
)
from tracklift.structures import Instances


@pytest.fixture
def root():
    url = f"memory://evaltest-{uuid.uuid4().hex[:8]}"
    yield url
    storage.remove(url, recursive=True)


def _scene(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    gt = np.zeros(n, dtype=np.int64)
    gt[:200], gt[200:350], gt[350:500] = 3001, 5002, 7
    masks = np.stack(
        [
            gt == 3001,
            (gt == 5002) ^ (rng.random(n) < 0.1),
            (gt == 3001) | (gt == 7),
            rng.random(n) < 0.3,
        ]
    )
    scores = rng.random(4) / 3.0  # thirds: not exactly representable in short decimals
    return gt, Instances(masks, scores, np.array([3, 5, 1, 9]))


def test_prediction_round_trip_and_evaluate_dirs(root):
    pred_dir, gt_dir = f"{root}/pred", f"{root}/gt"
    preds, gts = {}, {}
    for i, name in enumerate(["scene0000_00", "scene0001_00"]):
        gts[name], preds[name] = _scene(i)
        write_gt(f"{gt_dir}/{name}.txt", gts[name])
        listing = write_predictions(pred_dir, name, preds[name])
        assert listing == f"{pred_dir}/{name}.txt"
    assert storage.listdir(f"{pred_dir}/pred_mask") == sorted(
        f"scene000{s}_00_{k}.txt" for s in (0, 1) for k in range(4)
    )
    back = read_predictions(pred_dir, "scene0000_00", 600)
    assert np.array_equal(back.masks, preds["scene0000_00"].masks)
    assert np.array_equal(back.scores, preds["scene0000_00"].scores)  # exact, not rounded to %f
    assert back.labels.tolist() == [3, 5, 1, 9]
    assert np.array_equal(read_gt(f"{gt_dir}/scene0001_00.txt"), gts["scene0001_00"])

    from_files = evaluate_dirs(pred_dir, gt_dir, preset="all_annotated")
    in_memory = evaluate(preds, gts, preset="all_annotated")
    assert from_files == in_memory
    assert from_files["num_scenes"] == 2 and from_files["num_gt"] == 4


def test_gt_scene_without_prediction_counts_as_empty(root):
    pred_dir, gt_dir = f"{root}/pred", f"{root}/gt"
    gt, pred = _scene(0)
    write_gt(f"{gt_dir}/scene0000_00.txt", gt)
    write_gt(f"{gt_dir}/scene0001_00.txt", gt)
    write_predictions(pred_dir, "scene0000_00", pred)
    r = evaluate_dirs(pred_dir, gt_dir)
    assert r == evaluate({"a": pred}, {"a": gt, "b": gt})
    only_second = evaluate_dirs(pred_dir, gt_dir, scenes=["scene0001_00"])
    assert only_second["num_scenes"] == 1 and only_second["AP"] == 0.0


def test_empty_prediction_listing(root):
    gt, _ = _scene(0)
    write_predictions(f"{root}/pred", "s", Instances.empty(600))
    assert storage.read_text(f"{root}/pred/s.txt") == ""
    assert len(read_predictions(f"{root}/pred", "s", 600)) == 0


def test_local_paths_work(tmp_path):
    gt, pred = _scene(3)
    write_gt(str(tmp_path / "gt" / "a.txt"), gt)
    write_predictions(str(tmp_path / "pred"), "a", pred)
    assert (tmp_path / "pred" / "pred_mask" / "a_0.txt").read_text().splitlines()[:2] == ["1", "1"]
    assert evaluate_dirs(str(tmp_path / "pred"), str(tmp_path / "gt")) == evaluate({"a": pred}, {"a": gt})


def _write_listing(root: str, text: str, masks: dict[str, str] | None = None) -> str:
    pred_dir = f"{root}/pred"
    storage.write_text(f"{pred_dir}/s.txt", text)
    for rel, content in (masks or {}).items():
        storage.write_text(f"{pred_dir}/{rel}", content)
    return pred_dir


GOOD_MASK = "1\n0\n1\n"


@pytest.mark.parametrize(
    ("listing", "masks", "bad_file", "message"),
    [
        ("pred_mask/m.txt 1\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "expected '<relative mask path>"),
        ("pred_mask/m.txt 1 0.5 extra\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "line 1"),
        ("pred_mask/m.txt 1 high\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "must be numbers"),
        ("pred_mask/m.txt one 0.5\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "must be numbers"),
        ("pred_mask/m.txt 1 nan\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "finite"),
        ("../m.txt 1 0.5\n", {}, "s.txt", "outside the prediction folder"),
        ("pred_mask/../../m.txt 1 0.5\n", {}, "s.txt", "outside the prediction folder"),
        ("/tmp/m.txt 1 0.5\n", {}, "s.txt", "absolute"),
        ("s3://bucket/m.txt 1 0.5\n", {}, "s.txt", "absolute"),
        ("pred_mask/missing.txt 1 0.5\n", {}, "pred_mask/missing.txt", "does not exist"),
        ("pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": "1\n0\n"}, "pred_mask/m.txt", "has 2 lines"),
        ("pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": "1\nx\n1\n"}, "pred_mask/m.txt", "line 2"),
        ("pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": "1\n\n1\n"}, "pred_mask/m.txt", "line 2"),
        ("pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": "1 1\n0\n1\n"}, "pred_mask/m.txt", "line 1"),
        ("pred_mask/m.txt 1 0.5\npred_mask/m.txt 1 0.4\n", {"pred_mask/m.txt": GOOD_MASK}, "s.txt", "twice"),
    ],
)
def test_bad_predictions_name_the_file(root, listing, masks, bad_file, message):
    pred_dir = _write_listing(root, listing, masks)
    with pytest.raises(DataError, match=message) as err:
        read_predictions(pred_dir, "s", 3)
    assert err.value.url == f"{pred_dir}/{bad_file}"


def test_good_listing_with_blank_lines_and_float_label(root):
    pred_dir = _write_listing(root, "pred_mask/m.txt 2.0 0.25\n\n", {"pred_mask/m.txt": "5\n0\n-1\n"})
    inst = read_predictions(pred_dir, "s", 3)
    assert inst.masks.tolist() == [[True, False, True]] and inst.labels.tolist() == [2]
    assert inst.scores.tolist() == [0.25]


def test_bad_gt_and_folders(root):
    storage.write_text(f"{root}/gt/a.txt", "1001\nabc\n")
    with pytest.raises(DataError, match="line 2") as err:
        read_gt(f"{root}/gt/a.txt")
    assert err.value.url == f"{root}/gt/a.txt"
    storage.write_text(f"{root}/gt/b.txt", "")
    with pytest.raises(DataError, match="empty"):
        read_gt(f"{root}/gt/b.txt")
    storage.write_text(f"{root}/gt/c.txt", "1001\n-3\n")
    with pytest.raises(DataError, match="negative"):
        read_gt(f"{root}/gt/c.txt")
    with pytest.raises(DataError, match="no GT files"):
        evaluate_dirs(f"{root}/pred", f"{root}/nothing")
    with pytest.raises(DataError, match="not found"):
        evaluate_dirs(f"{root}/pred", f"{root}/gt", scenes=["zzz"])


def test_wrong_vertex_count_between_gt_and_masks(root):
    gt, pred = _scene(0)
    write_gt(f"{root}/gt/a.txt", gt[:-1])  # one vertex short
    write_predictions(f"{root}/pred", "a", pred)
    with pytest.raises(DataError, match="599 vertices") as err:
        evaluate_dirs(f"{root}/pred", f"{root}/gt")
    assert err.value.url == f"{root}/pred/pred_mask/a_0.txt"


def test_format_table():
    nan = math.nan
    table = format_table(
        {
            "ours": {"AP": 0.2024, "AP50": 0.34149, "AP25": 0.5, "num_scenes": 3},
            "a much longer name": {"AP": nan, "AP50": nan, "AP25": nan, "num_scenes": 0},
        }
    )
    lines = table.splitlines()
    assert lines[0].split() == ["method", "AP", "AP50", "AP25", "scenes"]
    assert lines[2].split() == ["ours", "20.2", "34.1", "50.0", "3"]
    assert lines[3].split()[-4:] == ["nan", "nan", "nan", "0"]
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_mask_fast_path_and_general_path_agree(root):
    from tracklift.evaluation.scannet_io import read_mask

    storage.write_text(f"{root}/a.txt", "0\n3\n0\n")  # single digits: byte-level path
    storage.write_text(f"{root}/b.txt", "0\n-12\n0\n")  # general path
    assert read_mask(f"{root}/a.txt", 3).tolist() == [False, True, False]
    assert read_mask(f"{root}/b.txt", 3).tolist() == [False, True, False]
    with pytest.raises(DataError, match="has 3 lines"):
        read_mask(f"{root}/a.txt", 4)


def test_missing_prediction_folder_is_an_error_not_zero(tmp_path):
    from tracklift.errors import DataError
    from tracklift.evaluation import evaluate_dirs, write_gt

    write_gt(str(tmp_path / "gt" / "s.txt"), np.full(200, 3001))
    with pytest.raises(DataError, match="no_such_dir: prediction folder not found"):
        evaluate_dirs(str(tmp_path / "no_such_dir"), str(tmp_path / "gt"))


def _local_prediction(tmp_path, listing: str, masks: dict[str, str] | None = None) -> str:
    pred = tmp_path / "pred"
    (pred / "pred_mask").mkdir(parents=True)
    (pred / "s.txt").write_text(listing)
    for rel, content in (masks or {}).items():
        (pred / rel).write_text(content)
    return str(pred)


SECRET = "root:x:0:0:secret-first-line\n2\n3\n"


def test_symlinks_out_of_the_prediction_folder_are_refused_without_quoting(tmp_path):
    """Defect 10: a mask or the listing linked to a file outside the folder is refused, and nothing of the
    outside file shows up in the error."""
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    pred = _local_prediction(tmp_path, "pred_mask/m.txt 1 0.5\n")
    os.symlink(outside, os.path.join(pred, "pred_mask", "m.txt"))
    with pytest.raises(DataError, match="symbolic link.*outside the prediction folder") as err:
        read_predictions(pred, "s", 3)
    assert err.value.url == os.path.join(pred, "pred_mask", "m.txt")
    assert "secret" not in str(err.value) and "outside.txt" not in str(err.value)

    os.symlink(os.path.join(tmp_path, "gone.txt"), os.path.join(pred, "pred_mask", "dangling.txt"))
    (tmp_path / "pred" / "s.txt").write_text("pred_mask/dangling.txt 1 0.5\n")  # same answer, exists or not
    with pytest.raises(DataError, match="symbolic link"):
        read_predictions(pred, "s", 3)

    linked_dir = _local_prediction(tmp_path / "b", "")
    os.remove(os.path.join(linked_dir, "s.txt"))
    os.symlink(outside, os.path.join(linked_dir, "s.txt"))
    with pytest.raises(DataError, match="symbolic link") as err:
        read_predictions(linked_dir, "s", 3)
    assert "secret" not in str(err.value)

    # a link that stays inside the folder is fine
    inside = _local_prediction(tmp_path / "c", "pred_mask/link.txt 1 0.5\n", {"pred_mask/m.txt": GOOD_MASK})
    os.symlink("m.txt", os.path.join(inside, "pred_mask", "link.txt"))
    assert read_predictions(inside, "s", 3).masks.tolist() == [[True, False, True]]


def test_errors_never_quote_file_content(tmp_path):
    """Defect 10: a listing or mask that is really another file (a hard link, a copy) is not echoed."""
    pred = _local_prediction(tmp_path, "pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": SECRET})
    with pytest.raises(DataError, match="line 1") as err:
        read_predictions(pred, "s", 3)
    assert "secret" not in str(err.value)
    (tmp_path / "pred" / "s.txt").write_text(SECRET)
    with pytest.raises(DataError, match="line 1") as err:
        read_predictions(pred, "s", 3)
    assert "secret" not in str(err.value)


def test_listing_naming_a_folder_is_a_data_error(tmp_path):
    """Defect 16: not an IsADirectoryError traceback, but the listing file and line."""
    pred = _local_prediction(
        tmp_path, "pred_mask/m.txt 1 0.5\npred_mask 1 0.5\n", {"pred_mask/m.txt": GOOD_MASK}
    )
    with pytest.raises(DataError, match="line 2: the mask path names a folder") as err:
        read_predictions(pred, "s", 3)
    assert err.value.url == os.path.join(pred, "s.txt")


def test_an_overflowing_mask_line_is_reported_on_its_own_line(root):
    """Defect 16: a 20-digit value overflows int64 on line 3, and line 3 is what the error says."""
    pred_dir = _write_listing(
        root, "pred_mask/m.txt 1 0.5\n", {"pred_mask/m.txt": "1\n0\n" + "9" * 20 + "\n"}
    )
    with pytest.raises(DataError, match="line 3 ") as err:
        read_predictions(pred_dir, "s", 3)
    assert err.value.url == f"{pred_dir}/pred_mask/m.txt"
