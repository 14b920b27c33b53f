import numpy as np
import trimesh

from tracklift.datasets.scene import Mesh
from tracklift.evaluation.baselines import mesh_connected_components


def test_connected_components_one_instance_per_piece():
    a = trimesh.creation.icosphere(subdivisions=3)  # 642 vertices
    b = trimesh.creation.icosphere(subdivisions=3)
    b.apply_translation([5, 0, 0])
    small = trimesh.creation.box()  # 8 vertices: below the minimum
    small.apply_translation([0, 5, 0])
    m = trimesh.util.concatenate([a, b, small])
    ids, scores = mesh_connected_components(Mesh(m.vertices, None, m.faces), min_vertices=100)
    assert set(np.unique(ids)) == {0, 1, 2}
    assert (ids[: len(a.vertices)] == ids[0]).all() and (ids[len(a.vertices) : -8] != ids[0]).all()
    assert (ids[-8:] == 0).all()
    assert len(scores) == 2 and np.isclose(scores.max(), 1.0)
