"""Format registry: open, list and write scenes in any supported layout.

Formats (see README "Scan formats"):
  ``tracklift``    tracklift's own layout (``scene.json`` + color/depth/... folders)
  ``scannet``      ScanNet v2 after SensReader export (color/depth/pose/intrinsic + ``_vh_clean_2.ply``)
  ``scannet-sens`` ScanNet v2 raw (``<scene>.sens`` + ``_vh_clean_2.ply``)
  ``scannetpp``    ScanNet++ (``scans/`` + ``iphone/``)

Readers are imported lazily so that one format's optional dependency never breaks another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from tracklift import storage
from tracklift.datasets.scene import Scene, SceneData
from tracklift.errors import DataError

# format name -> (module, reader function, writer function, detector function)
_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "tracklift": ("tracklift.datasets.tracklift_format", "read_scene", "write_scene", "looks_like"),
    "scannet": ("tracklift.datasets.scannet", "read_export_scene", "write_export_scene", "looks_like_export"),
    "scannet-sens": ("tracklift.datasets.scannet", "read_sens_scene", "write_sens_scene", "looks_like_sens"),
    "scannetpp": ("tracklift.datasets.scannetpp", "read_scene", "write_scene", "looks_like"),
}
FORMATS = tuple(_FORMATS)


def _fn(fmt: str, which: int) -> Callable:
    if fmt not in _FORMATS:
        raise ValueError(f"unknown scene format {fmt!r}; choose from {', '.join(FORMATS)}")
    module, *names = _FORMATS[fmt]
    return getattr(importlib.import_module(module), names[which])


def detect_format(scene_url: str) -> str:
    """Guess the format of one scene folder from the files in it."""
    names = set(storage.listdir(scene_url))
    if not names:
        raise DataError(scene_url, "scene folder is empty or does not exist")
    for fmt in FORMATS:
        if _fn(fmt, 2)(scene_url, names):
            return fmt
    raise DataError(scene_url, f"cannot tell the scan format from its files ({', '.join(sorted(names)[:8])})")


def open_scene(scene_url: str, format: str = "auto") -> Scene:
    """Open one scene folder as a lazy :class:`Scene`."""
    fmt = detect_format(scene_url) if format == "auto" else format
    return _fn(fmt, 0)(scene_url)


def write_scene(data: SceneData, scene_url: str, format: str = "tracklift") -> None:
    """Write a materialised scene into ``scene_url`` (the scene's own folder) in ``format``."""
    _fn(format, 1)(data, scene_url)


def scene_dir(root_url: str, scene_id: str, format: str) -> str:
    """Where a scene lives inside a corpus root, per format (ScanNet++ keeps scenes under ``data/``)."""
    if format == "scannetpp":
        return storage.join(root_url, "data", scene_id)
    return storage.join(root_url, scene_id)


def list_scenes(root_url: str, format: str = "auto") -> list[str]:
    """URLs of the scene folders of a corpus, sorted by scene id.

    ``root_url`` may also be a single scene folder, or a text file with one scene URL per line.
    """
    if storage.exists(root_url) and not storage.isdir(root_url):
        lines = storage.read_text(root_url).splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    roots = [root_url]
    names = storage.listdir(root_url)
    if "data" in names and storage.isdir(storage.join(root_url, "data")):
        roots.append(storage.join(root_url, "data"))  # ScanNet++ layout
    if "scans" in names and format in ("auto", "scannet", "scannet-sens"):
        roots.append(storage.join(root_url, "scans"))  # ScanNet layout
    out = []
    for root in roots:
        for name in storage.listdir(root):
            url = storage.join(root, name)
            if name in ("gt", "data", "scans") or not storage.isdir(url):
                continue
            try:
                (detect_format(url) if format == "auto" else None)
            except DataError:
                continue
            if format != "auto" and not _fn(format, 2)(url, set(storage.listdir(url))):
                continue
            out.append(url)
    if not out:
        try:
            detect_format(root_url)
            return [root_url]
        except DataError:
            pass
    return sorted(out, key=storage.basename)
