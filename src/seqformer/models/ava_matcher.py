"""Actor matcher for keyframe action detection: one query per actor box, with its own action labels."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from seqformer.models.hungarian import HungarianMatcher
from seqformer.models.losses import focal_positive_negative_costs, sigmoid_focal_loss
from seqformer.structures import Targets
from seqformer.utils.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

if TYPE_CHECKING:
    from seqformer.config import Config


def keyframe_boxes(pred_boxes: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Each clip's boxes at its own keyframe: ``[B,T,Q,4] -> [B,Q,4]`` (``[B,Q,4]`` passes through)."""
    if pred_boxes.dim() == 3:
        return pred_boxes
    if pred_boxes.dim() != 4 or len(targets) != pred_boxes.shape[0]:
        raise ValueError(f"pred_boxes must be [B,T,Q,4] with B = {len(targets)} targets, got {tuple(pred_boxes.shape)}")
    num_frames = pred_boxes.shape[1]
    keys = [int(t["key_frame"]) for t in targets]
    for b, key in enumerate(keys):
        if not 0 <= key < num_frames:
            raise ValueError(f"clip {b}: key_frame {key} outside the {num_frames} predicted frames")
    clips = torch.arange(len(keys), device=pred_boxes.device)
    return pred_boxes[clips, torch.as_tensor(keys, device=pred_boxes.device)]


class HungarianMatcherAVA(HungarianMatcher):
    """Actor-box matcher for action detection on the keyframe.

    Unlike the fork (whose class cost was one label-independent number per query), the action
    cost compares each query's 80 sigmoid scores with that actor's own multi-hot labels:
    ``action_cost="bce"`` is the mean binary cross-entropy over classes, ``"focal"`` the mean
    focal loss.  Use the one the criterion trains with, so matching prefers the query the loss
    already considers closest.  The mean (not sum) over classes keeps the cost O(1) like the
    other terms.  The actor cost is the VIS focal class cost at the single actor class.
    """

    def __init__(
        self,
        cost_actor: float = 2.0,
        cost_action: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        action_cost: str = "bce",
    ) -> None:
        super().__init__()
        if action_cost not in ("bce", "focal"):
            raise ValueError(f"action_cost must be 'bce' or 'focal', got {action_cost!r}")
        self.cost_actor = cost_actor
        self.cost_action = cost_action
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.focal_alpha = focal_alpha
        self.action_cost = action_cost

    def _action_cost(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over classes of the per-class loss; linear in the 0/1 labels, hence two matmuls."""
        if self.action_cost == "bce":
            if_positive, if_negative = -F.logsigmoid(logits), -F.logsigmoid(-logits)
        else:
            if_positive = sigmoid_focal_loss(logits, torch.ones_like(logits), self.focal_alpha)
            if_negative = sigmoid_focal_loss(logits, torch.zeros_like(logits), self.focal_alpha)
        labels = labels.to(logits.dtype)
        return (if_positive @ labels.t() + if_negative @ (1 - labels).t()) / logits.shape[-1]

    @torch.no_grad()
    def cost_matrices(self, outputs: dict[str, Any], targets: Targets) -> list[torch.Tensor]:
        logits = outputs["pred_logits"]
        boxes = keyframe_boxes(outputs["pred_boxes"], targets)
        actor = outputs.get("pred_actor")
        costs = []
        for b, target in enumerate(targets):
            gt, labels = target["boxes"], target["labels"]
            if gt.dim() != 2 or labels.dim() != 2 or gt.shape[0] != labels.shape[0] or labels.shape[1] != logits.shape[-1]:
                raise ValueError(
                    f"clip {b}: targets need boxes [N,4] and labels [N,{logits.shape[-1]}], "
                    f"got {tuple(gt.shape)} and {tuple(labels.shape)}"
                )
            gt, labels = gt.to(boxes), labels.to(logits)
            cost = self.cost_bbox * torch.cdist(boxes[b], gt, p=1)
            cost = cost - self.cost_giou * generalized_box_iou(box_cxcywh_to_xyxy(boxes[b]), box_cxcywh_to_xyxy(gt))
            cost = cost + self.cost_action * self._action_cost(logits[b], labels)
            if actor is not None and self.cost_actor != 0:
                pos, neg = focal_positive_negative_costs(actor[b, :, 0].sigmoid(), self.focal_alpha)
                cost = cost + self.cost_actor * (pos - neg)[:, None]
            costs.append(cost)
        return costs


def build_ava_matcher(cfg: Config) -> HungarianMatcherAVA:
    """``set_cost_class`` weighs both the actor and the action cost (no separate config field yet)."""
    return HungarianMatcherAVA(
        cost_actor=cfg.loss.set_cost_class if cfg.model.actor_score else 0.0,
        cost_action=cfg.loss.set_cost_class,
        cost_bbox=cfg.loss.set_cost_bbox,
        cost_giou=cfg.loss.set_cost_giou,
        focal_alpha=cfg.loss.focal_alpha,
        action_cost=cfg.loss.action_loss,
    )
