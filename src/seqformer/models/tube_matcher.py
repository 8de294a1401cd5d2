"""Tube matcher (JHMDB-21, UCF101-24): one query per ground-truth actor tube, costs over the frames it exists.

It is SeqFormer's VIS sequence matcher with ``skip_empty_frames`` on (a tube's box and GIoU costs only
count the frames where the ground-truth tube exists, ``valid``), L1 box costs averaged over those frames
(so a tube alive in 2 frames of the clip costs as much per frame as one alive in all), and one more term:
the per-frame presence cost, the mean binary cross-entropy between a query's presence logits and the
tube's ``valid`` mask over the clip, which prefers the query whose extent already fits the tube's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from seqformer.models.vis_matcher import HungarianMatcherVIS
from seqformer.structures import Targets

if TYPE_CHECKING:
    from seqformer.config import Config


def presence_cost(presence_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[T,Q]`` logits x ``[N,T]`` masks -> ``[Q,N]`` mean BCE over frames (linear in the mask: two matmuls)."""
    if_present, if_absent = -F.logsigmoid(presence_logits), -F.logsigmoid(-presence_logits)  # [T, Q]
    v = valid.to(presence_logits.dtype)  # [N, T]
    return (if_present.t() @ v.t() + if_absent.t() @ (1 - v).t()) / max(valid.shape[1], 1)


class HungarianMatcherTube(HungarianMatcherVIS):
    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 cost_presence: float = 1.0, focal_alpha: float = 0.25) -> None:
        super().__init__(cost_class, cost_bbox, cost_giou, focal_alpha, box_cost="l1", skip_empty_frames=True)
        self.cost_presence = cost_presence

    @torch.no_grad()
    def cost_matrices(self, outputs: dict[str, Any], targets: Targets) -> list[torch.Tensor]:
        costs = super().cost_matrices(outputs, targets)
        presence = outputs.get("pred_presence")
        if presence is None or self.cost_presence == 0:
            return costs
        return [cost + self.cost_presence * presence_cost(presence[b], t["valid"].to(presence.device))
                for b, (cost, t) in enumerate(zip(costs, targets))]

    def _valid_frame_costs(self, pred: torch.Tensor, gt: torch.Tensor, target: dict[str, Any], b: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        cost_bbox, cost_giou = super()._valid_frame_costs(pred, gt, target, b)
        frames = target["valid"].to(pred.dtype).sum(1).clamp(min=1)  # [N]
        return cost_bbox / frames, cost_giou


def build_tube_matcher(cfg: Config) -> HungarianMatcherTube:
    return HungarianMatcherTube(
        cost_class=cfg.loss.set_cost_class,
        cost_bbox=cfg.loss.set_cost_bbox,
        cost_giou=cfg.loss.set_cost_giou,
        cost_presence=cfg.loss.set_cost_presence if cfg.model.presence_score else 0.0,
        focal_alpha=cfg.loss.focal_alpha,
    )
