"""Loss pieces shared by the VIS and AVA criteria and matchers.

Everything here is elementwise or per-row; the criteria decide how to reduce, because the
original SeqFormer normalises each term differently (per element, per instance, per box).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

Indices = list[tuple[torch.Tensor, torch.Tensor]]


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Elementwise sigmoid focal loss (RetinaNet), no reduction; ``alpha < 0`` disables the balance term."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def focal_positive_negative_costs(
    prob: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Focal loss of each probability if its target were 1 and if it were 0 (matcher costs).

    The 1e-8 inside the logs (instead of log-sigmoid) is the original matcher's formula; kept so
    matchings are identical.
    """
    positive = alpha * (1 - prob) ** gamma * (-(prob + eps).log())
    negative = (1 - alpha) * prob**gamma * (-(1 - prob + eps).log())
    return positive, negative


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row soft dice loss ``1 - (2|p·g| + 1) / (|p| + |g| + 1)`` of ``[N, ...]`` logits -> ``[N]``."""
    prob = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (prob * targets).sum(1)
    denominator = prob.sum(1) + targets.sum(1)
    return 1 - (numerator + 1) / (denominator + 1)


def average_num_boxes(count: int, device: torch.device) -> float:
    """Ground-truth count averaged over ranks and clamped to >= 1: the normaliser of every box/mask term.

    All ranks must normalise by the same number or gradients of ranks with few objects dominate.
    """
    total = torch.as_tensor([float(count)], dtype=torch.float, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        total = total / dist.get_world_size()
    return float(total.clamp(min=1).item())


def source_index(indices: Indices, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clip, query)`` index pair of all matched predictions, clips in batch order."""
    clip = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    query = torch.cat([src for src, _ in indices])
    return clip.to(device), query.to(device)
