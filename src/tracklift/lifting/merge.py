"""Greedy cross-frame merging of per-frame 3D segments (the independent-masks baseline, Segment3D-style).

When a frame's ids mean nothing outside that frame, each frame is lifted on its own: the vertices it sees
with local id ``l`` form a 3D segment. Frames are taken in order and each segment is matched to the
scene-level instances built so far:

  - an instance's *members* are the vertices whose votes for it are at least ``member_ratio`` times the
    vertex's largest vote count (so a vertex voted 5× for A and once for B belongs to A only);
  - the overlap of segment ``S`` (frame f) with instance ``I`` is the IoU of ``S'`` with ``I_f``, where
    ``S'`` is the part of ``S`` that earlier frames have seen and ``I_f`` the members of ``I`` visible in
    frame f. Comparing only what both sides could have observed keeps a partial view of a large object
    (or a view that sweeps onto new floor) from looking like a poor match to the union of earlier views;
    the shared part must hold at least ``min_overlap_vertices`` vertices, so a few border vertices never
    decide a merge;
  - pairs are taken greedily by decreasing IoU, one-to-one within a frame (a frame's segments are
    disjoint, so two of them are two objects as far as that frame knows), when ``IoU >= merge_iou``;
  - unmatched segments with at least ``min_segment_vertices`` vertices start new instances; smaller ones
    are dropped (their vertices count as seen without a vote).

Each frame's votes are then added under the instance ids, and vertex conflicts are settled by the same
vote resolution as tracked lifting (:class:`~tracklift.lifting.vote.VoteAccumulator`).
"""

from __future__ import annotations

import numpy as np

from tracklift.lifting.vote import VoteAccumulator, group_winners


class SegmentMerger:
    """Streams frames of independent ids into scene-level instance votes.

    Args:
        n_vertices: number of mesh vertices N.
        merge_iou: minimum IoU (see the module docstring) to merge a segment into an instance.
        min_segment_vertices: smaller per-frame segments neither match nor start instances.
        member_ratio: vote share (relative to the vertex's top id) that makes a vertex an instance member.
        min_overlap_vertices: smallest intersection that can merge a segment into an instance.
    """

    def __init__(
        self,
        n_vertices: int,
        merge_iou: float = 0.5,
        min_segment_vertices: int = 20,
        member_ratio: float = 0.5,
        min_overlap_vertices: int = 10,
    ):
        self.votes = VoteAccumulator(n_vertices)
        self.merge_iou = float(merge_iou)
        self.min_segment_vertices = int(min_segment_vertices)
        self.member_ratio = float(member_ratio)
        self.min_overlap_vertices = int(min_overlap_vertices)
        self.num_instances = 0

    def add_frame(self, vertex_idx: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Merge one frame's segments and add its votes.

        Args:
            vertex_idx: (V,) int64 vertices visible in the frame (each once).
            ids: (V,) int64 the frame's local id at each (0 = no object).

        Returns:
            (V,) int64 the scene-level instance id each entry voted for (0 = none).
        """
        vertex_idx = np.asarray(vertex_idx, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        local, inv = np.unique(ids, return_inverse=True)
        seg_size = np.bincount(inv, minlength=len(local))
        valid = (local != 0) & (seg_size >= self.min_segment_vertices)
        mapping = np.zeros(len(local), np.int64)

        if valid.any() and self.num_instances:
            seg, inst, iou = self._overlaps(vertex_idx, inv, valid)
            taken_seg = np.zeros(len(local), bool)
            taken_inst: set[int] = set()
            for j in np.argsort(-iou, kind="stable"):
                if iou[j] < self.merge_iou:
                    break
                s, i = int(seg[j]), int(inst[j])
                if taken_seg[s] or i in taken_inst:
                    continue
                taken_seg[s] = True
                taken_inst.add(i)
                mapping[s] = i
        fresh = np.flatnonzero(valid & (mapping == 0))
        mapping[fresh] = self.num_instances + 1 + np.arange(len(fresh))
        self.num_instances += len(fresh)

        out = mapping[inv]
        self.votes.add(vertex_idx, out)
        # the next frame's overlaps read the store: fold this frame in now
        self.votes.compact()
        return out

    def _overlaps(self, vertex_idx, inv, valid):
        """(seg, inst, iou) for every segment/instance pair sharing enough visible vertices."""
        # |S'|: the part of each segment that earlier frames saw
        seen_size = np.bincount(inv[self.votes.seen[vertex_idx] > 0], minlength=len(valid))
        row, inst, cnt = self.votes.rows(vertex_idx)
        if len(row) == 0:
            e = np.zeros(0, np.int64)
            return e, e.copy(), np.zeros(0)
        # membership: votes at least member_ratio × the vertex's top count
        rows_with_votes, _, top = group_winners(row, inst, cnt)
        top_of = np.zeros(len(vertex_idx), np.int64)
        top_of[rows_with_votes] = top
        member = cnt >= self.member_ratio * top_of[row]
        row, inst = row[member], inst[member]
        vis_size = np.bincount(inst, minlength=self.num_instances + 1)  # |I ∩ visible|
        seg_of = inv[row]
        keep = valid[seg_of]
        pair, inter = np.unique(seg_of[keep] * (self.num_instances + 1) + inst[keep], return_counts=True)
        seg, ins = pair // (self.num_instances + 1), pair % (self.num_instances + 1)
        iou = inter / (seen_size[seg] + vis_size[ins] - inter)
        ok = inter >= self.min_overlap_vertices
        return seg[ok], ins[ok], iou[ok]
