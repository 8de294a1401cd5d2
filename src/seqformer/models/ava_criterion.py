"""Set criterion for keyframe action detection (AVA-style): actor-ness, multi-label actions, boxes.

Design (replaces the fork's; see docs/ava.md for what was broken there):

* Queries are matched to actors with costs that use each actor's own labels and keyframe box
  (``HungarianMatcherAVA``).
* ``loss_actor``: sigmoid focal loss on the actor logit of every query (matched = 1), summed and
  divided by ``num_boxes`` like DETR's class loss.  It is what teaches unmatched queries to be
  "nobody".
* ``loss_action``: per-class BCE (or focal) of the matched queries against their multi-hot labels,
  summed over classes and boxes and divided by ``num_boxes``: each actor weighs the same whatever the
  batch holds.  Unmatched queries are left out, because action scores of "nobody" are meaningless
  once the actor head rejects them.  Without an actor head (``pred_actor`` absent) all queries enter
  this loss and unmatched ones are all-negative, so something still suppresses them.
  ``positive_weight`` multiplies the terms of positive labels (``y = 1``): AVA actors carry 1-3 of
  80 labels, so positives are rare.
* Boxes: the prediction at each clip's own ``key_frame``; L1 and 1 − GIoU, / ``num_boxes``.
* ``num_boxes`` is averaged over ranks and clamped to >= 1, so a batch with no actor gives finite
  losses (all queries pushed towards "nobody").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from seqformer.models.ava_matcher import HungarianMatcherAVA, keyframe_boxes
from seqformer.models.losses import Indices, sigmoid_focal_loss, source_index
from seqformer.models.set_criterion import SetCriterion, with_aux_weights
from seqformer.structures import Targets
from seqformer.utils.box_ops import box_cxcywh_to_xyxy, elementwise_generalized_box_iou

if TYPE_CHECKING:
    from seqformer.config import Config


class SetCriterionAVA(SetCriterion):
    """Action-detection losses: actor-ness, multi-label actions, keyframe box L1 + GIoU."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcherAVA,
        weight_dict: dict[str, float],
        action_loss: str = "bce",
        positive_weight: float = 1.0,
        focal_alpha: float = 0.25,
    ) -> None:
        super().__init__(num_classes, matcher, weight_dict)
        if action_loss not in ("bce", "focal"):
            raise ValueError(f"action_loss must be 'bce' or 'focal', got {action_loss!r}")
        self.action_loss = action_loss
        self.positive_weight = positive_weight
        self.focal_alpha = focal_alpha

    def num_targets(self, targets: Targets) -> int:
        return sum(len(t["boxes"]) for t in targets)

    def layer_losses(self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float,
                     log: bool, batch_outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses = self.loss_action(outputs, targets, indices, num_boxes, log)
        if outputs.get("pred_actor") is not None:
            losses.update(self.loss_actor(outputs, indices, num_boxes))
        losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        return losses

    def loss_actor(self, outputs: dict[str, Any], indices: Indices, num_boxes: float) -> dict[str, torch.Tensor]:
        actor = outputs["pred_actor"]
        clip, query = source_index(indices, actor.device)
        target = torch.zeros_like(actor)
        target[clip, query] = 1
        return {"loss_actor": sigmoid_focal_loss(actor, target, self.focal_alpha).sum() / num_boxes}

    def loss_action(
        self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float, log: bool = True
    ) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]
        clip, query = source_index(indices, logits.device)
        labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits)
        matched_logits = logits[clip, query]
        if outputs.get("pred_actor") is not None:
            scored, target = matched_logits, labels
        else:
            scored, target = logits, torch.zeros_like(logits)
            target[clip, query] = labels
        if self.action_loss == "bce":
            per_class = F.binary_cross_entropy_with_logits(scored, target, reduction="none")
        else:
            per_class = sigmoid_focal_loss(scored, target, self.focal_alpha)
        weight = 1 + (self.positive_weight - 1) * target
        losses = {"loss_action": (per_class * weight).sum() / num_boxes}
        if log:
            losses["action_error"] = self._action_error(matched_logits, labels)
        return losses

    @staticmethod
    @torch.no_grad()
    def _action_error(matched_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logging only: % of matched actors whose top-k classes (k = #labels) are not exactly their labels.

        Top-k equals the label set iff every positive outscores every negative.  0 when nothing is matched.
        """
        if labels.shape[0] == 0:
            return matched_logits.new_tensor(0.0)
        positive = labels > 0.5
        lowest_positive = matched_logits.masked_fill(~positive, float("inf")).min(1).values
        highest_negative = matched_logits.masked_fill(positive, float("-inf")).max(1).values
        return 100 - (lowest_positive > highest_negative).float().mean() * 100

    def loss_boxes(
        self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float
    ) -> dict[str, torch.Tensor]:
        boxes = keyframe_boxes(outputs["pred_boxes"], targets)
        clip, query = source_index(indices, boxes.device)
        src = boxes[clip, query]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        giou = elementwise_generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))
        return {
            "loss_bbox": F.l1_loss(src, tgt, reduction="none").sum() / num_boxes,
            "loss_giou": (1 - giou).sum() / num_boxes,
        }


def ava_weight_dict(cfg: Config) -> dict[str, float]:
    """``cls_loss_coef`` weighs the action loss; ``actor_loss_coef`` the actor loss (with ``actor_score``)."""
    weights = {"loss_action": cfg.loss.cls_loss_coef, "loss_bbox": cfg.loss.bbox_loss_coef, "loss_giou": cfg.loss.giou_loss_coef}
    if cfg.model.actor_score:
        weights["loss_actor"] = cfg.loss.actor_loss_coef
    return with_aux_weights(weights, cfg.model.aux_loss, cfg.model.dec_layers)


def build_ava_criterion(cfg: Config, matcher: HungarianMatcherAVA) -> SetCriterionAVA:
    return SetCriterionAVA(
        num_classes=cfg.model.num_classes,
        matcher=matcher,
        weight_dict=ava_weight_dict(cfg),
        action_loss=cfg.loss.action_loss,
        positive_weight=cfg.loss.positive_weight,
        focal_alpha=cfg.loss.focal_alpha,
    )
