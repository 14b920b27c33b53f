"""The label stage (``tracklift label``): 2D masks → tracked (or independent) id maps → 3D pseudo-labels →
curriculum shards. No Ray here: the Ray runner (:mod:`tracklift.actors`) imports this package, never the
reverse.

Modules, in the order a scene goes through them:

- ``config``: :class:`LabelConfig` (the lifting, sample and tracker configs nested whole) and the 2D models
  it names (:func:`build_generator`, :func:`build_tracker`);
- ``scene``: :func:`label_scene`, the 2D stage and the lifting of one scene, in memory;
- ``outputs``: writing a scene's products, ``status.json`` last, and reading whether a scene is done;
- ``work``: :func:`label_one`, open + label + write one scene URL, never raising for a bad scene (what
  every runner calls per scene);
- ``layout``: :class:`OutputLayout`, the one place that knows the output folder's paths;
- ``manifest``: the run's scene list, progress lines and ``manifest.json``;
- ``local``: :func:`label_corpus`, the one-process runner.

A rerun skips scenes whose ``status.json`` says ``complete`` and redoes the rest. A failing scene is
recorded with its reason and the job goes on. Every file is written whole or not at all
(:mod:`tracklift.storage`: one PUT on object stores, temporary file and rename on file systems); temporaries
left by a killed run are swept at the start and end of a run.
"""

from tracklift.labeling.config import LabelConfig, build_generator, build_tracker
from tracklift.labeling.layout import OutputLayout
from tracklift.labeling.local import label_corpus
from tracklift.labeling.manifest import Progress, corpus_urls, write_manifest
from tracklift.labeling.outputs import scene_is_complete, scene_status, write_pictures, write_scene_outputs
from tracklift.labeling.scene import SceneLabels, label_scene
from tracklift.labeling.work import Retry, label_one

__all__ = [
    "LabelConfig",
    "OutputLayout",
    "Progress",
    "Retry",
    "SceneLabels",
    "build_generator",
    "build_tracker",
    "corpus_urls",
    "label_corpus",
    "label_one",
    "label_scene",
    "scene_is_complete",
    "scene_status",
    "write_manifest",
    "write_pictures",
    "write_scene_outputs",
]
