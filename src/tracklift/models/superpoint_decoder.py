"""Superpoint query decoder (SPFormer / OneFormer3D style): queries attend to superpoint features.

Backbone point features are pooled per superpoint (mean and max, :func:`~tracklift.models.superpoints.
pool_superpoints`) and projected to D. Q queries are initialised from Q sampled superpoints: their projected
features plus a learned per-slot embedding (which tells apart the copies when a scene has fewer than Q
superpoints), their centroids' positional encoding as the query position. Each of ``num_layers`` layers is
(masked) cross-attention to the scene's superpoints, self-attention and a feed-forward block; before the
first layer and after each one a shared head predicts an objectness logit per query and mask logits per
superpoint (the dot product of a projected query with per-superpoint mask features). Masks therefore cost
Q × S per scene (a few hundred superpoints) instead of Q × V over tens of thousands of voxels.

Sampling: random superpoints in training (a different draw every step, like Mask3D's random query
positions); farthest-point sampling of the centroids at inference (deterministic, spread over the room).
"""

from __future__ import annotations

import torch
from torch import nn

from tracklift.models.config import DecoderConfig
from tracklift.models.decoder import DecoderOutput, FourierPositions, QueryLayerStack
from tracklift.models.superpoints import BatchSuperpoints


def farthest_point_order(xyz: torch.Tensor, k: int) -> torch.Tensor:
    """(min(k, M),) int64 indices of ``k`` farthest-point samples of (M, 3) positions, starting at index 0."""
    m = xyz.shape[0]
    k = min(k, m)
    picked = torch.zeros(k, dtype=torch.int64, device=xyz.device)
    dist = torch.full((m,), float("inf"), dtype=xyz.dtype, device=xyz.device)
    last = 0
    for i in range(1, k):
        dist = torch.minimum(dist, ((xyz - xyz[last]) ** 2).sum(1))
        last = int(torch.argmax(dist))
        picked[i] = last
    return picked


class SuperpointDecoder(QueryLayerStack):
    """Args:
    in_channels: channels of the finest backbone level (pooled to ``2 * in_channels``: mean and max).
    extra_channels: channels appended to the pooled features (superpoint input statistics), 0 for none.
    hidden_dim, num_queries, num_heads, ffn_dim, num_layers, masked_attention, pos_freqs, dropout: see
        :class:`~tracklift.models.config.DecoderConfig` (``attn_levels`` and ``max_attn_voxels`` do not
        apply: every superpoint of a scene takes part).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_dim: int = 128,
        num_queries: int = 100,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        num_layers: int = 6,
        masked_attention: bool = True,
        pos_freqs: int = 0,
        dropout: float = 0.0,
        extra_channels: int = 0,
    ):
        super().__init__()
        d = hidden_dim
        self.num_queries = num_queries
        self.masked_attention = masked_attention
        self.input_proj = nn.Sequential(
            nn.Linear(2 * in_channels + extra_channels, d), nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, d)
        )
        self.mask_features = nn.Linear(d, d)
        self.query_init = nn.Linear(d, d)
        self.query_feat = nn.Embedding(num_queries, d)
        self.pos_enc = FourierPositions(pos_freqs or d // 2, d)
        self._build_stack(d, num_heads, ffn_dim, num_layers, dropout)

    @classmethod
    def from_config(cls, cfg: DecoderConfig, in_channels: int, extra_channels: int = 0) -> SuperpointDecoder:
        return cls(
            in_channels,
            extra_channels=extra_channels,
            hidden_dim=cfg.hidden_dim,
            num_queries=cfg.num_queries,
            num_heads=cfg.num_heads,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.num_layers,
            masked_attention=cfg.masked_attention,
            pos_freqs=cfg.pos_freqs,
            dropout=cfg.dropout,
        )

    def sample_queries(self, positions: torch.Tensor) -> torch.Tensor:
        """(Q,) int64 superpoints of one scene that seed the queries (cycled when the scene has fewer).

        Args:
            positions: (S, 3) the scene's normalised superpoint centroids, S >= 1.
        """
        s, q = positions.shape[0], self.num_queries
        if self.training:
            order = torch.randperm(s, device=positions.device)[:q]
        else:
            order = farthest_point_order(positions, q)
        if order.numel() < q:
            order = order[torch.arange(q, device=order.device) % order.numel()]
        return order

    def forward(self, pooled: torch.Tensor, sp: BatchSuperpoints, all_stages: bool = True) -> DecoderOutput:
        """Args:
            pooled: (S, 2 * in_channels + extra_channels) pooled features of the batch's superpoints.
            sp: the batch's superpoints (scene offsets, normalised centroids).
            all_stages: keep every stage's predictions (auxiliary losses); False keeps only the final one.

        Returns:
            :class:`~tracklift.models.decoder.DecoderOutput` whose ``mask_logits[i][b]`` is (Q, S_b) over
            scene b's superpoints.
        """
        offs = sp.offsets.tolist()
        bsz = len(offs) - 1
        mem_all = self.input_proj(pooled)
        pos_all = self.pos_enc(sp.positions.to(mem_all.dtype))
        mfeat = self.mask_features(mem_all)
        mems = [mem_all[offs[b] : offs[b + 1]] for b in range(bsz)]
        poss = [pos_all[offs[b] : offs[b + 1]] for b in range(bsz)]
        mask_feats = [mfeat[offs[b] : offs[b + 1]] for b in range(bsz)]
        seeds = [self.sample_queries(sp.positions[offs[b] : offs[b + 1]]) for b in range(bsz)]
        queries = (
            torch.stack([self.query_init(mems[b][seeds[b]]) for b in range(bsz)]) + self.query_feat.weight
        )
        qpos = torch.stack([poss[b][seeds[b]] for b in range(bsz)])

        masks, obj = self._predict(queries, mask_feats)
        all_masks, all_obj = [masks], [obj]
        for cross, selfa, ffn in zip(self.cross, self.self_attn, self.ffn):
            updated = []
            for b in range(bsz):
                block = None
                if self.masked_attention:
                    block = masks[b].detach().sigmoid() < 0.5
                    # A query whose mask covers no superpoint attends to all of them.
                    block = block & ~block.all(dim=1, keepdim=True)
                updated.append(cross(queries[b], qpos[b], mems[b], poss[b], block))
            queries = ffn(selfa(torch.stack(updated), qpos))
            masks, obj = self._predict(queries, mask_feats)
            if not all_stages:
                all_masks.clear()
                all_obj.clear()
            all_masks.append(masks)
            all_obj.append(obj)
        return DecoderOutput(all_masks, all_obj)
