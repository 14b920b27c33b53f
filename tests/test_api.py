"""The Python API: ``tracklift.segment`` on arrays, ``tracklift.segment_file`` on files users have, the lazy
re-exports, and superpoints handed to a model that decodes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tracklift
from tracklift.datasets.ply import read_ply
from tracklift.datasets.superpoints import segment_mesh, segment_points
from tracklift.errors import DataError
from tracklift.evaluation.scannet_io import read_predictions
from tracklift.structures import Instances

from .datasets.test_pointclouds import room, write_user_ply

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny randomly initialised segmenter, saved the way ``tracklift train`` saves one."""
    import torch

    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    torch.manual_seed(0)
    url = str(tmp_path_factory.mktemp("api") / "tiny.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), url)
    return url


def cloud(n: int = 3000, seed: int = 0):
    """A 2 m box of points with random colours: the tiny random model finds a few instances in it."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 2.0, (n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_import_tracklift_loads_neither_torch_nor_ray():
    code = (
        "import json, sys, tracklift\n"
        "heavy = sorted({'torch', 'ray', 'scipy', 'numba'} & set(sys.modules))\n"
        "tracklift.read_point_cloud\n"  # a light re-export stays light
        "print(json.dumps([heavy, sorted({'torch', 'ray'} & set(sys.modules)), tracklift.__version__]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": SRC}
    ).stdout
    assert json.loads(out) == [[], [], tracklift.__version__]


def test_reexports_are_the_classes_themselves():
    from tracklift.datasets.scene import Mesh
    from tracklift.models.segmenter import Segmenter
    from tracklift.serving.client import Client

    assert tracklift.Segmenter is Segmenter and tracklift.Instances is Instances
    assert tracklift.Mesh is Mesh and tracklift.Client is Client
    assert set(tracklift.__all__) <= set(dir(tracklift))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tracklift.nope  # noqa: B018


def test_segment_equals_the_models_own_predict(checkpoint):
    pts, rgb = cloud()
    inst = tracklift.segment(pts, rgb, checkpoint=checkpoint)
    direct = tracklift.load_segmenter(checkpoint).predict(pts.astype(np.float32), rgb)
    assert isinstance(inst, Instances) and inst.num_points == len(pts) and len(inst) >= 1
    np.testing.assert_array_equal(inst.masks, direct.masks)
    np.testing.assert_array_equal(inst.scores, direct.scores)
    # colours as floats in [0, 1] are the same colours; a loaded model is reused as it is
    model = tracklift.load_segmenter(checkpoint)
    again = tracklift.segment(pts, rgb / 255.0, checkpoint=model)
    np.testing.assert_array_equal(again.masks, inst.masks)
    grey = tracklift.segment(pts, checkpoint=model)
    assert grey.num_points == len(pts)


@pytest.mark.parametrize(
    "points, colors, problem",
    [
        (np.zeros((5, 2)), None, "points must be an (N, 3) array"),
        (np.zeros((1, 3)), None, "at least 2 points"),
        (np.array([[0, 0, 0], [np.inf, 0, 0]]), None, "NaN or infinite"),
        (np.zeros((4, 3)), np.zeros((3, 3)), "colours must have shape (4, 3)"),
        (np.zeros((4, 3)), np.full((4, 3), 999), "0..255"),
    ],
)
def test_segment_refuses_bad_arrays(checkpoint, points, colors, problem):
    with pytest.raises(DataError) as err:
        tracklift.segment(points, colors, checkpoint=checkpoint)
    assert problem in str(err.value)


def test_segment_file_writes_scannet_files_a_coloured_ply_and_json(checkpoint, tmp_path):
    pts, rgb, faces = room(2000)
    path = tmp_path / "my_room.ply"
    write_user_ply(path, pts * 2.0, rgb, faces)
    out = str(tmp_path / "out")
    summary = tracklift.segment_file(str(path), tracklift.load_segmenter(checkpoint), out)
    assert summary == json.loads((tmp_path / "out" / "my_room.json").read_text())
    assert summary["num_points"] == 2000 and summary["num_faces"] == len(faces)
    inst = read_predictions(out, "my_room", 2000)  # the ScanNet files, as tracklift eval reads them
    assert len(inst) == summary["num_instances"] >= 1
    assert [e["num_points"] for e in summary["instances"]] == inst.sizes.tolist()
    np.testing.assert_allclose([e["score"] for e in summary["instances"]], inst.scores)
    colored = read_ply(summary["outputs"]["ply"])
    np.testing.assert_array_equal(colored.faces, faces)  # the mesh stays a mesh
    ids = inst.to_ids()
    for e in summary["instances"]:
        on = ids == e["id"]
        if on.any():
            assert (colored.colors[on] == e["color"]).all()
    assert summary["num_points_in_no_instance"] == int((ids == 0).sum())


class SuperpointModel:
    """A model whose ``predict`` takes ``superpoints=`` (as one decoding per superpoint does), wrapping the
    real segmenter; records the superpoints it is given."""

    seen: list[np.ndarray] = []

    def __init__(self, inner):
        self.inner = inner

    def predict(self, points, colors, superpoints=None):
        SuperpointModel.seen.append(superpoints)
        return self.inner.predict(points, colors)


def test_superpoints_are_computed_for_a_model_that_takes_them(checkpoint, tmp_path):
    model = SuperpointModel(tracklift.Segmenter.from_checkpoint(checkpoint))
    pts, rgb, faces = room(600)
    write_user_ply(tmp_path / "mesh.ply", pts, rgb, faces)
    np.save(tmp_path / "cloud.npy", pts)
    SuperpointModel.seen.clear()
    mesh_summary = tracklift.segment_file(str(tmp_path / "mesh.ply"), model, str(tmp_path / "out"))
    tracklift.segment_file(str(tmp_path / "cloud.npy"), model, str(tmp_path / "out"))
    on_mesh, on_cloud = SuperpointModel.seen
    # a mesh's superpoints come from its faces, a bare cloud's from its nearest-neighbour graph
    np.testing.assert_array_equal(on_mesh, segment_mesh(pts.astype(np.float32), faces))
    np.testing.assert_array_equal(on_cloud, segment_points(pts.astype(np.float32)))
    assert mesh_summary["num_superpoints"] == on_mesh.max() + 1
    # given superpoints are passed through; a model without superpoint decoding is not given any
    given = np.arange(len(pts)) % 7
    tracklift.segment(pts, rgb, checkpoint=model, superpoints=given)
    np.testing.assert_array_equal(SuperpointModel.seen[-1], given)
    with pytest.raises(DataError, match="superpoints: expected"):
        tracklift.segment(pts, rgb, checkpoint=model, superpoints=given[:-1])
    plain = tracklift.segment_file(
        str(tmp_path / "cloud.npy"), tracklift.load_segmenter(checkpoint), str(tmp_path)
    )
    assert plain["num_superpoints"] is None
