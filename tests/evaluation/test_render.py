"""``tracklift render``: colouring a scene by its superpoints."""

import numpy as np

from tests.conftest import make_scene_data
from tracklift.datasets.formats import open_scene, write_scene
from tracklift.datasets.ply import read_ply
from tracklift.evaluation.pictures import id_colors
from tracklift.evaluation.render import RenderConfig, per_vertex_ids, render_scene


def test_render_by_superpoints_uses_the_scenes_segments(tmp_path):
    data = make_scene_data(n_frames=1)
    # any partition (not the segmentator's), so that a picture of recomputed superpoints would differ
    data.superpoints = (np.arange(len(data.mesh.vertices)) // 7) % 5
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, "tracklift")
    scene = open_scene(url)
    ids = per_vertex_ids(scene, "superpoints")
    np.testing.assert_array_equal(ids, data.superpoints + 1)  # 1..K: id 0 would be drawn as "none"
    written = render_scene(
        RenderConfig(scene=url, labels="superpoints", out=str(tmp_path / "out"), width=80, height=60)
    )
    assert [w.rsplit("/", 1)[-1] for w in written] == [
        "scene0000_00_superpoints.png",
        "scene0000_00_superpoints.ply",
    ]
    colored = read_ply(written[1])
    np.testing.assert_array_equal(colored.colors, id_colors(data.superpoints + 1))
