"""The ScanNet200 categories the synthetic rooms use.

Ids are raw ScanNet category ids (``scannetv2-labels.combined.tsv`` column ``id``, the ids listed in
ScanNet's ``scannet200_constants.py``), so synthetic GT reads like real ScanNet200 GT: wall 1, floor 3.
"""

from __future__ import annotations

LABEL_IDS: dict[str, int] = {
    "wall": 1,
    "chair": 2,
    "floor": 3,
    "table": 4,
    "door": 5,
    "couch": 6,
    "cabinet": 7,
    "desk": 9,
    "pillow": 13,
    "picture": 15,
    "bookshelf": 18,
    "monitor": 19,
    "book": 22,
    "coffee table": 24,
    "box": 26,
    "lamp": 28,
    "ceiling": 41,
    "keyboard": 46,
    "trash can": 56,
    "bottle": 65,
    "laptop": 77,
    "cup": 130,
    "doorframe": 161,
    "bowl": 562,
    "potted plant": 1189,
}

#: Stuff rather than things (ScanNet's ``VALID_PANOPTIC_IDS`` plus the ceiling).
STRUCTURE_LABELS = ("wall", "floor", "ceiling")


def label_id(name: str) -> int:
    """ScanNet200 id of a category name used by the generator (KeyError for unknown names)."""
    return LABEL_IDS[name]
