"""Hungarian matching of predicted masks to target instances, one scene at a time.

Cost of query q for target t: ``mask_weight * BCE + dice_weight * Dice - objectness_weight * p_obj(q)``,
over the scene's labelled points. Defaults are Mask3D's (JonasSchult/Mask3D
``conf/matcher/hungarian_matcher.yaml``: ``cost_class: 2., cost_mask: 5., cost_dice: 2.``); there the
class cost is ``-softmax prob`` of the target class, here the one class is "object", so ``-sigmoid``.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from tracklift.models.config import LossConfig
from tracklift.models.losses import SceneTargets, pairwise_mask_costs


class HungarianMatcher:
    """Args:
    mask_weight: weight of the mean per-point BCE cost.
    dice_weight: weight of the Dice cost.
    objectness_weight: weight of the objectness cost (−sigmoid(logit)).
    """

    def __init__(self, mask_weight: float = 5.0, dice_weight: float = 2.0, objectness_weight: float = 2.0):
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.objectness_weight = objectness_weight

    @classmethod
    def from_config(cls, cfg: LossConfig) -> HungarianMatcher:
        return cls(cfg.mask_weight, cfg.dice_weight, cfg.objectness_weight)

    @torch.no_grad()
    def cost_matrix(
        self, mask_logits: torch.Tensor, obj_logits: torch.Tensor, targets: SceneTargets
    ) -> torch.Tensor:
        """(Q, T) matching cost.

        Args:
            mask_logits: (Q, U) mask logits at ``targets.voxels``.
            obj_logits: (Q,) objectness logits.
            targets: the scene's targets.
        """
        bce, dice = pairwise_mask_costs(mask_logits.float(), targets)
        cost = (
            self.mask_weight * bce
            + self.dice_weight * dice
            - self.objectness_weight * obj_logits.float().sigmoid()[:, None]
        )
        return cost

    @torch.no_grad()
    def match(
        self, mask_logits: torch.Tensor, obj_logits: torch.Tensor, targets: SceneTargets
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimal one-to-one assignment of queries to targets (``min(Q, T)`` pairs).

        Returns:
            ``(query_idx, target_idx)``: (M,) int64 each, sorted by query index.
        """
        device = mask_logits.device
        if targets.num_targets == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return empty, empty
        cost = self.cost_matrix(mask_logits, obj_logits, targets)
        # Non-finite costs (from overflowing logits) would make the solver fail: treat them as worst.
        cost = torch.nan_to_num(cost, nan=1e6, posinf=1e6, neginf=-1e6).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        return torch.as_tensor(rows, dtype=torch.int64, device=device), torch.as_tensor(
            cols, dtype=torch.int64, device=device
        )
