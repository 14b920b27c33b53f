"""Mask3D-style query decoder: learned queries attend to backbone voxels and predict masks.

Q learned queries (a feature and a positional embedding each) pass through ``num_layers`` layers of
(masked) cross-attention to the voxels of one backbone level, self-attention and a feed-forward block.
Before the first layer and after each one, a shared head predicts, per query, an objectness logit and
mask logits over the finest-level voxels: the dot product of a projected query embedding with per-voxel
mask features. The masks predicted before a layer restrict its cross-attention (Mask2Former's masked
attention: a query sees the voxels its current mask covers, pooled to the attended level).

Scenes have different voxel counts, so cross-attention and mask prediction loop over scenes; the
self-attention and feed-forward blocks run on the (B, Q, D) query tensor at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tracklift.models.config import DecoderConfig
from tracklift.models.sparse import SparseTensor, parent_index


@dataclass
class DecoderOutput:
    """Predictions of every decoder stage (index 0 = before the first layer, -1 = final).

    Attributes:
        mask_logits: ``mask_logits[i][b]`` is (Q, U_b): stage i's mask logits of scene b over its mask
            units: finest-level voxels in the order of the finest backbone level (:class:`QueryDecoder`),
            or superpoints in scene-local id order (the superpoint decoder).
        objectness: ``objectness[i]`` is (B, Q) logits.
    """

    mask_logits: list[list[torch.Tensor]]
    objectness: list[torch.Tensor]

    @property
    def num_stages(self) -> int:
        return len(self.objectness)


class FourierPositions(nn.Module):
    """Random Fourier features of positions in [0, 1]^3 (Mask3D's "fourier" encoding, scale 1), then a
    linear map to D. The random matrix is a persistent buffer, so checkpoints reproduce it."""

    def __init__(self, num_freqs: int, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.randn(3, num_freqs) * 2.0 * math.pi)
        self.proj = nn.Linear(2 * num_freqs, dim)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        a = xyz @ self.freqs
        return self.proj(torch.cat([a.sin(), a.cos()], dim=-1))


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention of (Q, D) queries to (M, D) memory with an optional (Q, M) block mask."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt, qpos, mem, mpos, block):
        out = self.attn(
            (tgt + qpos)[None], (mem + mpos)[None], mem[None], attn_mask=block, need_weights=False
        )[0]
        return self.norm(tgt + self.drop(out[0]))


class SelfAttentionLayer(nn.Module):
    """Post-norm self-attention of (B, Q, D) queries (positions added to queries and keys)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt, qpos):
        q = tgt + qpos
        return self.norm(tgt + self.drop(self.attn(q, q, tgt, need_weights=False)[0]))


class FFNLayer(nn.Module):
    """Post-norm feed-forward block."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt):
        return self.norm(tgt + self.drop(self.net(tgt)))


class QueryLayerStack(nn.Module):
    """What both query decoders share: ``num_layers`` rounds of cross-attention, self-attention and a
    feed-forward block, and the prediction head applied before the first round and after each one
    (objectness logit per query; mask logits as the dot product of a projected query with per-unit mask
    features). Subclasses build their inputs, then call :meth:`_build_stack`."""

    def _build_stack(self, d: int, num_heads: int, ffn_dim: int, num_layers: int, dropout: float) -> None:
        # The order of creation fixes the seeded initial weights: keep it.
        self.cross = nn.ModuleList([CrossAttentionLayer(d, num_heads, dropout) for _ in range(num_layers)])
        self.self_attn = nn.ModuleList([SelfAttentionLayer(d, num_heads, dropout) for _ in range(num_layers)])
        self.ffn = nn.ModuleList([FFNLayer(d, ffn_dim, dropout) for _ in range(num_layers)])
        self.out_norm = nn.LayerNorm(d)
        self.objectness_head = nn.Linear(d, 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)
        )

    def _predict(self, queries: torch.Tensor, mask_feats: list[torch.Tensor]):
        """Per scene b, (Q, U_b) mask logits over its units, and (B, Q) objectness logits."""
        q = self.out_norm(queries)
        obj = self.objectness_head(q)[..., 0]
        emb = self.mask_embed(q)
        return [emb[b] @ mask_feats[b].T for b in range(len(mask_feats))], obj


class QueryDecoder(QueryLayerStack):
    """Args:
    level_channels: channels of each backbone level, finest first.
    hidden_dim, num_queries, num_heads, ffn_dim, num_layers, attn_levels, max_attn_voxels,
    masked_attention, pos_freqs, dropout: see :class:`~tracklift.models.config.DecoderConfig`.
    """

    def __init__(
        self,
        level_channels: list[int],
        hidden_dim: int = 128,
        num_queries: int = 100,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        num_layers: int = 6,
        attn_levels: list[int] | None = None,
        max_attn_voxels: int | None = 4096,
        masked_attention: bool = True,
        pos_freqs: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        d = hidden_dim
        self.attn_levels = (
            list(attn_levels) if attn_levels is not None else list(range(len(level_channels)))[::-1]
        )
        self.max_attn_voxels = max_attn_voxels
        self.masked_attention = masked_attention
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, d)
        self.query_pos = nn.Embedding(num_queries, d)
        self.level_proj = nn.ModuleDict(
            {str(lvl): nn.Linear(level_channels[lvl], d) for lvl in sorted(set(self.attn_levels))}
        )
        self.mask_features = nn.Linear(level_channels[0], d)
        self.pos_enc = FourierPositions(pos_freqs or d // 2, d)
        self._build_stack(d, num_heads, ffn_dim, num_layers, dropout)

    @classmethod
    def from_config(cls, cfg: DecoderConfig, level_channels: list[int]) -> QueryDecoder:
        return cls(
            level_channels,
            hidden_dim=cfg.hidden_dim,
            num_queries=cfg.num_queries,
            num_heads=cfg.num_heads,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            attn_levels=cfg.attn_levels,
            max_attn_voxels=cfg.max_attn_voxels,
            masked_attention=cfg.masked_attention,
            pos_freqs=cfg.pos_freqs,
            dropout=cfg.dropout,
        )

    def _subset(self, n: int, device) -> torch.Tensor | None:
        cap = self.max_attn_voxels
        if cap is None or n <= cap:
            return None
        if self.training:
            return torch.randperm(n, device=device)[:cap].sort().values
        # Deterministic at inference: evenly spread voxels.
        return torch.linspace(0, n - 1, cap, device=device).round().long().unique()

    def forward(self, levels: list[SparseTensor], all_stages: bool = True) -> DecoderOutput:
        """Args:
            levels: backbone outputs, finest first (as returned by :class:`SparseUNet`).
            all_stages: keep every stage's predictions (needed for auxiliary losses); False keeps only
                the final one (inference: saves (Q, V) logits per layer).

        Returns:
            the predictions (:class:`DecoderOutput`).
        """
        fine = levels[0]
        bsz = fine.batch_size
        fo = fine.batch_offsets().tolist()
        mfeat = self.mask_features(fine.feats)
        mask_feats = [mfeat[fo[b] : fo[b + 1]] for b in range(bsz)]
        # Per-scene normalisation of positions to [0, 1]^3 by the scene's extent in base voxels.
        bidx = fine.coords[:, 0]
        extent = torch.zeros(bsz, 3, dtype=torch.int64, device=bidx.device)
        extent = extent.scatter_reduce(0, bidx[:, None].expand(-1, 3), fine.coords[:, 1:], reduce="amax") + 1
        per_level = {}
        for lvl in sorted(set(self.attn_levels)):
            x = levels[lvl]
            center = (x.coords[:, 1:].to(mfeat.dtype) + 0.5) * x.stride
            xyz = center / extent[x.coords[:, 0]].to(mfeat.dtype)
            offs = x.batch_offsets().tolist()
            parent = parent_index(fine, x) if lvl > 0 else None
            per_level[lvl] = (self.level_proj[str(lvl)](x.feats), self.pos_enc(xyz), offs, parent)

        queries = self.query_feat.weight[None].expand(bsz, -1, -1)
        qpos = self.query_pos.weight[None].expand(bsz, -1, -1)
        masks, obj = self._predict(queries, mask_feats)
        all_masks, all_obj = [masks], [obj]
        for i, (cross, selfa, ffn) in enumerate(zip(self.cross, self.self_attn, self.ffn)):
            lvl = self.attn_levels[i % len(self.attn_levels)]
            feats, pos, offs, parent = per_level[lvl]
            updated = []
            for b in range(bsz):
                mem, mpos = feats[offs[b] : offs[b + 1]], pos[offs[b] : offs[b + 1]]
                block = None
                if self.masked_attention:
                    block = self._attention_block(masks[b], parent, fo[b], fo[b + 1], offs[b], mem.shape[0])
                sub = self._subset(mem.shape[0], mem.device)
                if sub is not None:
                    mem, mpos = mem[sub], mpos[sub]
                    block = None if block is None else block[:, sub]
                if block is not None:
                    # A query whose mask covers none of the attended voxels attends to all of them.
                    block = block & ~block.all(dim=1, keepdim=True)
                updated.append(cross(queries[b], qpos[b], mem, mpos, block))
            queries = ffn(selfa(torch.stack(updated), qpos))
            masks, obj = self._predict(queries, mask_feats)
            if not all_stages:
                all_masks.clear()
                all_obj.clear()
            all_masks.append(masks)
            all_obj.append(obj)
        return DecoderOutput(all_masks, all_obj)

    @staticmethod
    def _attention_block(logits, parent, f0, f1, l0, n_level):
        """(Q, V_level) bool, True where the query's current mask (mean probability over the level
        voxel's children) is below 0.5: those voxels are hidden from the query."""
        prob = logits.detach().sigmoid()
        if parent is None:
            return prob < 0.5
        idx = parent[f0:f1] - l0
        total = prob.new_zeros(prob.shape[0], n_level).index_add_(1, idx, prob)
        count = torch.bincount(idx, minlength=n_level).clamp(min=1).to(prob.dtype)
        return total / count < 0.5
