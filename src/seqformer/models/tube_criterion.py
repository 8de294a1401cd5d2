"""Set criterion for action tubes (JHMDB-21, UCF101-24): class, per-frame presence, boxes over valid frames.

It is SeqFormer's VIS criterion without masks and with ``skip_empty_frames`` on (the loss terms of
:class:`seqformer.models.vis_criterion.SetCriterionVIS`):

* ``loss_ce``: sigmoid focal loss of every query against the one-hot label of its tube (unmatched
  queries: all zeros), / ``num_boxes``;
* ``loss_bbox`` / ``loss_giou``: per matched tube, L1 and 1 - GIoU averaged over the frames where the
  ground-truth tube exists (``valid``), summed over tubes, / ``num_boxes``: frames before a tube starts or
  after it ends are not regressed to anything;

plus the tube's own term:

* ``loss_presence``: per matched query, the binary cross-entropy of its per-frame presence logits
  against the tube's ``valid`` mask, averaged over the clip's frames, summed, / ``num_boxes``.  It is
  what lets a tube start or end inside a clip.  Unmatched queries are left out: their presence is
  meaningless once their class scores say "nobody" (scores multiply, :func:`seqformer.models.tube_model.tube_scores`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from seqformer.models.losses import Indices, source_index
from seqformer.models.set_criterion import with_aux_weights
from seqformer.models.tube_matcher import HungarianMatcherTube
from seqformer.models.vis_criterion import SetCriterionVIS
from seqformer.structures import Targets

if TYPE_CHECKING:
    from seqformer.config import Config


class SetCriterionTube(SetCriterionVIS):
    def __init__(self, num_classes: int, matcher: HungarianMatcherTube, weight_dict: dict[str, float],
                 focal_alpha: float = 0.25) -> None:
        super().__init__(num_classes, matcher, weight_dict, losses=("labels", "boxes"), focal_alpha=focal_alpha,
                         skip_empty_frames=True)

    def layer_losses(self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float,
                     log: bool, batch_outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        for b, t in enumerate(targets):
            if t["valid"].shape != t["boxes"].shape[:2] or t["boxes"].shape[1] != outputs["pred_boxes"].shape[1]:
                raise ValueError(f"clip {b}: target valid {tuple(t['valid'].shape)} / boxes {tuple(t['boxes'].shape)} "
                                 f"do not fit {outputs['pred_boxes'].shape[1]} predicted frames")
        losses = super().layer_losses(outputs, targets, indices, num_boxes, log, batch_outputs)
        if outputs.get("pred_presence") is not None:
            losses.update(self.loss_presence(outputs, targets, indices, num_boxes))
        return losses

    def loss_presence(self, outputs: dict[str, Any], targets: Targets, indices: Indices,
                      num_boxes: float) -> dict[str, torch.Tensor]:
        presence = outputs["pred_presence"]  # [B, T, Q]
        clip, query = source_index(indices, presence.device)
        logits = presence.permute(0, 2, 1)[clip, query]  # [n, T]
        valid = torch.cat([t["valid"][j] for t, (_, j) in zip(targets, indices)]).to(logits)
        bce = F.binary_cross_entropy_with_logits(logits, valid, reduction="none").mean(1)
        return {"loss_presence": bce.sum() / num_boxes}


def tube_weight_dict(cfg: Config) -> dict[str, float]:
    loss = cfg.loss
    weights = {"loss_ce": loss.cls_loss_coef, "loss_bbox": loss.bbox_loss_coef, "loss_giou": loss.giou_loss_coef}
    if cfg.model.presence_score:
        weights["loss_presence"] = loss.presence_loss_coef
    return with_aux_weights(weights, cfg.model.aux_loss, cfg.model.dec_layers)


def build_tube_criterion(cfg: Config, matcher: HungarianMatcherTube) -> SetCriterionTube:
    return SetCriterionTube(cfg.model.num_classes, matcher, tube_weight_dict(cfg), focal_alpha=cfg.loss.focal_alpha)
