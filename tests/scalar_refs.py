"""Scalar re-derivations of the loss and cost formulas, written with ``math`` (independent of the code under test)."""
from __future__ import annotations

import math

import torch


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def focal_ref(x: float, y: float, alpha: float = 0.25, gamma: float = 2.0) -> float:
    p = sig(x)
    if y == 1:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def focal_cost_ref(x: float, alpha: float = 0.25) -> float:
    p = sig(x)
    return alpha * (1 - p) ** 2 * -math.log(p + 1e-8) - (1 - alpha) * p**2 * -math.log(1 - p + 1e-8)


def giou_ref(a: list[float], b: list[float]) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    hull = (max(ax1, bx1) - min(ax0, bx0)) * (max(ay1, by1) - min(ay0, by0))
    return inter / union - (hull - union) / hull


def vis_target(labels: list[int], boxes: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
    n, t = boxes.shape[:2]
    target = {"labels": torch.tensor(labels, dtype=torch.int64), "boxes": boxes.float(), "valid": torch.ones(n, t, dtype=torch.bool)}
    if masks is not None:
        target["masks"] = masks.to(torch.uint8)
    return target
