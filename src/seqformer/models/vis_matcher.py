"""SeqFormer's sequence matcher for video instance segmentation: one query per instance track."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from seqformer.models.hungarian import HungarianMatcher
from seqformer.models.losses import focal_positive_negative_costs
from seqformer.structures import Targets
from seqformer.utils.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

if TYPE_CHECKING:
    from seqformer.config import Config


class HungarianMatcherVIS(HungarianMatcher):
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
