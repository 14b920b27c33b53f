import numpy as np
import trimesh

from tracklift.datasets.scene import Mesh
from tracklift.evaluation.pictures import id_colors, render_overview


def test_id_colors_stable_and_distinct():
    c1 = id_colors(np.array([0, 3001, 3002, 3001]))
    assert (c1[1] == c1[3]).all() and not (c1[1] == c1[2]).all()
    assert (c1[0] == 0).all()
    assert (id_colors(np.array([0]), none_color=(9, 9, 9)) == 9).all()
    assert id_colors(np.array([[0, 2001], [2001, 5]])).shape == (2, 2, 3)
    assert len({tuple(c) for c in id_colors(np.arange(1, 200) + 4000)}) == 199
    np.testing.assert_array_equal(id_colors(np.array([3002])), c1[2:3])


def test_render_overview_draws_the_object():
    s = trimesh.creation.icosphere(subdivisions=4)
    mesh = Mesh(s.vertices, None, s.faces)
    colors = np.tile(np.array([[200, 30, 30]], np.uint8), (len(s.vertices), 1))
    img = render_overview(mesh, colors, 200, 150)
    red = (img[..., 0] > 80) & (img[..., 1] < 40)
    assert img.shape == (150, 200, 3)
    assert 0.1 < red.mean() < 0.9  # the sphere fills a good part of the frame, background around it
    hidden = render_overview(mesh, colors, 200, 150, hide=np.ones(len(s.vertices), bool))
    assert (hidden == 255).all()
