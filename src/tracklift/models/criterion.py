"""Set criterion: match every decoder stage's predictions to the targets, then weigh the losses."""

from __future__ import annotations

import torch

from tracklift.models.config import LossConfig
from tracklift.models.decoder import DecoderOutput
from tracklift.models.losses import SceneTargets, matched_mask_losses, objectness_loss
from tracklift.models.matcher import HungarianMatcher


class InstanceCriterion:
    """Args:
    matcher: the Hungarian matcher (its weights are also the loss weights, as in Mask3D).
    no_object_weight: weight of unmatched queries in the objectness loss.
    aux_loss: also compute the losses of the intermediate stages (keys ``loss_*_<stage>``).
    """

    def __init__(self, matcher: HungarianMatcher, no_object_weight: float = 0.1, aux_loss: bool = True):
        self.matcher = matcher
        self.no_object_weight = no_object_weight
        self.aux_loss = aux_loss

    @classmethod
    def from_config(cls, cfg: LossConfig) -> InstanceCriterion:
        return cls(HungarianMatcher.from_config(cfg), cfg.no_object_weight, cfg.aux_loss)

    def stage_losses(
        self, mask_logits: list[torch.Tensor], obj_logits: torch.Tensor, targets: list[SceneTargets]
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``mask`` (BCE), ``dice`` and ``objectness`` losses of one stage.

        Args:
            mask_logits: per scene (Q, V0_b).
            obj_logits: (B, Q).
            targets: per scene.
        """
        matched = torch.zeros_like(obj_logits, dtype=torch.bool)
        bces, dices = [], []
        for b, (logits, t) in enumerate(zip(mask_logits, targets)):
            at = logits[:, t.voxels]
            qi, ti = self.matcher.match(at, obj_logits[b], t)
            if qi.numel() == 0:
                continue
            matched[b, qi] = True
            bce, dice = matched_mask_losses(at[qi], t.counts[ti], t.totals)
            bces.append(bce)
            dices.append(dice)
        if bces:
            bce, dice = torch.cat(bces).mean(), torch.cat(dices).mean()
        else:
            # No target anywhere: zero, but still connected to the graph so backward() works.
            bce = dice = sum(m.sum() for m in mask_logits) * 0.0
        return {
            "mask": bce,
            "dice": dice,
            "objectness": objectness_loss(obj_logits, matched, self.no_object_weight),
        }

    def __call__(self, out: DecoderOutput, targets: list[SceneTargets]) -> dict[str, torch.Tensor]:
        """Weighted losses: ``loss_mask``, ``loss_dice``, ``loss_objectness`` for the final stage and, with
        ``aux_loss``, ``loss_<name>_<i>`` for stage i < last. The training loss is the sum of all values."""
        weights = {
            "mask": self.matcher.mask_weight,
            "dice": self.matcher.dice_weight,
            "objectness": self.matcher.objectness_weight,
        }
        last = out.num_stages - 1
        stages = range(out.num_stages) if self.aux_loss else [last]
        losses = {}
        for i in stages:
            suffix = "" if i == last else f"_{i}"
            for name, value in self.stage_losses(out.mask_logits[i], out.objectness[i], targets).items():
                losses[f"loss_{name}{suffix}"] = weights[name] * value
        return losses
