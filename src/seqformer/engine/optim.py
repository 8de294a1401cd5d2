"""Optimiser and learning-rate schedule of the original recipe.

Three parameter groups are chosen by *substring* match on parameter names, exactly like the
original ``main.py``: backbone parameters (``lr_backbone``), the deformable-attention
``sampling_offsets`` / ``reference_points`` projections (``lr * lr_linear_proj_mult``) and the
rest (``lr``).  The groups always exist (possibly empty) and carry a ``name`` so that an optimiser
state from a checkpoint maps onto the same groups.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqformer.config import OptimConfig

GROUP_NAMES = ("default", "backbone", "linear_proj")


def _matches(name: str, patterns: list[str]) -> bool:
    return any(p in name for p in patterns)


def build_param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """``[default, backbone, linear_proj]`` groups of the trainable parameters of ``model``.

    A name matching both lists goes to the backbone group (a parameter must not appear twice).
    """
    groups: dict[str, list[nn.Parameter]] = {g: [] for g in GROUP_NAMES}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if _matches(name, cfg.lr_backbone_names):
            groups["backbone"].append(param)
        elif _matches(name, cfg.lr_linear_proj_names):
            groups["linear_proj"].append(param)
        else:
            groups["default"].append(param)
    lrs = {"default": cfg.lr, "backbone": cfg.lr_backbone, "linear_proj": cfg.lr * cfg.lr_linear_proj_mult}
    return [{"params": groups[g], "lr": lrs[g], "name": g} for g in GROUP_NAMES]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9 when ``cfg.sgd``; weight decay on every group (as the original)."""
    groups = build_param_groups(model, cfg)
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    if cfg.sgd:
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.MultiStepLR:
    """Step drops by ``lr_gamma`` at the epochs in ``lr_drop``; the engine steps it once per epoch."""
    milestones = sorted(int(m) for m in cfg.lr_drop)
    if any(m <= 0 for m in milestones):
        raise ValueError(f"optim.lr_drop must hold positive epoch numbers, got {cfg.lr_drop}")
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.lr_gamma)


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``{group name: lr}`` for logging."""
    return {str(g.get("name", i)): float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}
