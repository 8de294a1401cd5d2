"""Hungarian matchers: one prediction per ground-truth instance (VIS) or actor box (AVA), per clip.

Both return, for each clip ``b``, a pair ``(query_idx, target_idx)`` of int64 CPU tensors with
``query_idx`` ascending (scipy's order), as the original and DETR do.  Costs are built one clip
at a time, so clips of a batch can never be mixed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from seqformer.models.losses import Indices, focal_positive_negative_costs, sigmoid_focal_loss
from seqformer.utils.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

if TYPE_CHECKING:
    from seqformer.config import Config

Targets = list[dict[str, Any]]


def solve_assignments(costs: list[torch.Tensor]) -> Indices:
    """Minimum-cost bipartite matching of each ``[Q, N_b]`` cost matrix (scipy LSA, float32 like the original)."""
    indices = []
    for b, cost in enumerate(costs):
        if cost.shape[1] == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            indices.append((empty, empty.clone()))
            continue
        cost = cost.detach().float().cpu()
        if not torch.isfinite(cost).all():
            raise ValueError(f"clip {b}: matching cost contains NaN/inf (non-finite predictions or target boxes?)")
        rows, cols = linear_sum_assignment(cost.numpy())
        indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return indices


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


class HungarianMatcherVIS(nn.Module):
    """SeqFormer's sequence matcher: one query per instance track, costs over all frames.

    ``box_cost="l2"`` (original) is the Euclidean distance between the concatenated T×4 box
    vectors; ``"l1"`` is DETR's L1.  ``skip_empty_frames`` leaves frames where the instance is
    absent (``valid == False``) out of the box and GIoU costs; the original keeps them and so
    pulls queries towards the ~0 box it uses for absent instances.
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        box_cost: str = "l2",
        skip_empty_frames: bool = False,
    ) -> None:
        super().__init__()
        if box_cost not in ("l1", "l2"):
            raise ValueError(f"box_cost must be 'l1' or 'l2', got {box_cost!r}")
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.focal_alpha = focal_alpha
        self.box_norm = 2.0 if box_cost == "l2" else 1.0
        self.skip_empty_frames = skip_empty_frames

    @torch.no_grad()
    def cost_matrices(self, outputs: dict[str, Any], targets: Targets) -> list[torch.Tensor]:
        """``[Q, N_b]`` total matching cost of every clip."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if boxes.dim() != 4:
            raise ValueError(f"pred_boxes must be [B,T,Q,4], got {tuple(boxes.shape)}")
        num_frames = boxes.shape[1]
        costs = []
        for b, target in enumerate(targets):
            labels, gt = target["labels"], target["boxes"]
            if gt.dim() != 3 or gt.shape[1] != num_frames or gt.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"clip {b}: target boxes must be [N={labels.shape[0]},T={num_frames},4], got {tuple(gt.shape)}"
                )
            labels, gt = labels.to(logits.device), gt.to(boxes)
            pos, neg = focal_positive_negative_costs(logits[b].sigmoid(), self.focal_alpha)
            cost_class = pos[:, labels] - neg[:, labels]
            pred = boxes[b].transpose(0, 1)  # [Q, T, 4]
            if self.skip_empty_frames:
                cost_bbox, cost_giou = self._valid_frame_costs(pred, gt, target, b)
            else:
                cost_bbox = torch.cdist(pred.flatten(1), gt.flatten(1), p=self.box_norm)
                cost_giou = 0
                for t in range(num_frames):
                    cost_giou += -generalized_box_iou(box_cxcywh_to_xyxy(pred[:, t]), box_cxcywh_to_xyxy(gt[:, t]))
                cost_giou = cost_giou / num_frames
            costs.append(self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou)
        return costs

    def _valid_frame_costs(
        self, pred: torch.Tensor, gt: torch.Tensor, target: dict[str, Any], b: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if "valid" not in target:
            raise KeyError(f"clip {b}: skip_empty_frames needs target['valid'] [N,T]")
        weight = target["valid"].to(pred.dtype).t()[:, None, :]  # [T, 1, N]
        per_frame = torch.stack([torch.cdist(pred[:, t], gt[:, t], p=self.box_norm) for t in range(gt.shape[1])])
        cost_bbox = (per_frame.pow(self.box_norm) * weight).sum(0).pow(1 / self.box_norm)
        giou = torch.stack(
            [generalized_box_iou(box_cxcywh_to_xyxy(pred[:, t]), box_cxcywh_to_xyxy(gt[:, t])) for t in range(gt.shape[1])]
        )
        cost_giou = -(giou * weight).sum(0) / weight.sum(0).clamp(min=1)
        return cost_bbox, cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict[str, Any], targets: Targets) -> Indices:
        return solve_assignments(self.cost_matrices(outputs, targets))


class HungarianMatcherAVA(nn.Module):
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

    @torch.no_grad()
    def forward(self, outputs: dict[str, Any], targets: Targets) -> Indices:
        return solve_assignments(self.cost_matrices(outputs, targets))


def build_vis_matcher(cfg: Config) -> HungarianMatcherVIS:
    """The focal alpha of the matching cost stays 0.25 whatever ``focal_alpha`` says: the original hard-codes it."""
    return HungarianMatcherVIS(
        cost_class=cfg.loss.set_cost_class,
        cost_bbox=cfg.loss.set_cost_bbox,
        cost_giou=cfg.loss.set_cost_giou,
        focal_alpha=0.25,
        box_cost=cfg.loss.box_cost,
        skip_empty_frames=cfg.loss.skip_empty_frames,
    )


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
