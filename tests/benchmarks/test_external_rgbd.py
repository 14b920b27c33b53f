"""benchmarks/external_rgbd.py: reading a sequence in Open3D's reconstruction-system layout."""

import numpy as np
import pytest

from tracklift.datasets.images import encode_jpeg, encode_png
from tracklift.datasets.synthetic import SynthConfig, generate_scene
from tracklift.errors import DataError

from . import load_benchmark

ext = load_benchmark("external_rgbd")


def _write_log(path, poses):
    lines = []
    for i, p in enumerate(poses):
        lines.append(f"{i} {i} {i + 1}")
        lines += [" ".join(f"{v:.8f}" for v in row) for row in p]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A synthetic scan written the way Open3D's tools lay out a sequence (JPEG colour, depth PNG in mm)."""
    data = generate_scene(3, SynthConfig.classic(width=64, height=48, n_frames=4))
    root = tmp_path_factory.mktemp("o3d")
    (root / "image").mkdir()
    (root / "depth").mkdir()
    for f in data.frames:
        (root / "image" / f"{f.index:05d}.jpg").write_bytes(encode_jpeg(f.color))
        (root / "depth" / f"{f.index:05d}.png").write_bytes(
            encode_png(np.round(f.depth * 1000).astype(np.uint16))
        )
    _write_log(root / "trajectory.log", [f.pose for f in data.frames])
    return root, data


def test_a_sequence_reads_back_at_the_labeling_width(folder):
    root, data = folder
    intr = data.intrinsics
    frames, out = ext.read_sequence(root, root / "trajectory.log", intr, 1000.0, 32, 1)
    assert (out.width, out.height) == (32, 24) and out.fx == pytest.approx(intr.fx / 2)
    assert [f.index for f in frames] == [f.index for f in data.frames]
    for got, want in zip(frames, data.frames):
        assert got.color.shape == (24, 32, 3) and got.depth.dtype == np.float32
        np.testing.assert_allclose(got.pose, want.pose, atol=1e-7)
        np.testing.assert_allclose(got.depth, want.depth[::2, ::2], atol=6e-4)  # every 2nd pixel, mm steps


def test_a_broken_trajectory_names_the_file_and_the_block(folder, tmp_path):
    root, data = folder
    bad = tmp_path / "bad.log"
    _write_log(bad, [f.pose for f in data.frames])
    text = bad.read_text().replace("1.00000000", "nan", 1)
    bad.write_text(text)
    with pytest.raises(DataError, match=r"bad\.log.*pose block 0"):
        ext.read_trajectory(bad)
    short = tmp_path / "short.log"
    short.write_text("\n".join(bad.read_text().splitlines()[:7]))
    with pytest.raises(DataError, match="blocks of 5"):
        ext.read_trajectory(short)


def test_a_frame_count_mismatch_is_refused(folder, tmp_path):
    root, data = folder
    log = tmp_path / "three.log"
    _write_log(log, [f.pose for f in data.frames][:3])
    with pytest.raises(DataError, match="4 colour images, 4 depth images, 3 poses"):
        ext.read_sequence(root, log, data.intrinsics, 1000.0, 32, 1)
    with pytest.raises(DataError, match="must divide"):
        ext.read_sequence(root, root / "trajectory.log", data.intrinsics, 1000.0, 30, 1)
