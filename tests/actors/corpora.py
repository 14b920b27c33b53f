"""Tiny synthetic corpora for the Ray labeling tests (a few frames of a small room per scene)."""

from __future__ import annotations

from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
from tracklift.datasets.synthetic import SynthConfig


def tiny_corpus(root: str, scenes: int = 3, seed: int = 60, frames: int = 6, width: int = 96) -> list[str]:
    """Write ``scenes`` synthetic scans (``frames`` frames of ``width`` x 3/4 width) to ``root``."""
    small = SynthConfig.classic(width=width, height=width * 3 // 4, n_frames=frames, n_groups=2)
    return synthesize_corpus(
        SynthCommandConfig(out=root, scenes=scenes, seed=seed), log=lambda s: None, synth=small
    )
