"""Entry point for the training losses: picks the VIS or AVA criterion from ``cfg.model.task``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from seqformer.models.criterion_ava import SetCriterionAVA, build_ava_criterion
from seqformer.models.criterion_vis import SetCriterionVIS, build_vis_criterion
from seqformer.models.losses import weighted_total

if TYPE_CHECKING:
    from seqformer.config import Config

__all__ = ["SetCriterionAVA", "SetCriterionVIS", "build_ava_criterion", "build_criterion", "build_vis_criterion", "weighted_total"]


def build_criterion(cfg: Config) -> SetCriterionVIS | SetCriterionAVA:
    if cfg.model.task == "vis":
        return build_vis_criterion(cfg)
    if cfg.model.task == "ava":
        return build_ava_criterion(cfg)
    raise ValueError(f"model.task must be 'vis' or 'ava', got {cfg.model.task!r}")
