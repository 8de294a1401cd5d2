"""Build the task-independent core (backbone + deformable transformer + heads) from a config.

The task adapters (:mod:`seqformer.tasks`) wrap this core with their heads; this module does not
know which tasks exist.  ``build_model`` remains for code written against earlier releases and
asks the task registry, which is the one place that picks a model.
"""
from __future__ import annotations

import warnings

from torch import nn

from seqformer.config import Config
from seqformer.models.backbones.image import build_backbone
from seqformer.models.transformer import DeformableTransformer
from seqformer.models.video_detr import VideoDETR

CSN_BACKBONES = {"csn50": 50, "csn152": 152, "ircsn50": 50, "ircsn152": 152}


def build_backbone_from_config(cfg: Config) -> tuple[nn.Module, bool]:
    """The backbone Joiner and whether it is a 3-D (clip) backbone."""
    m = cfg.model
    train_backbone = cfg.optim.lr_backbone > 0
    name = m.backbone.lower().replace("-", "").replace("_", "")
    if name in CSN_BACKBONES:
        from seqformer.models.backbones.video import build_video_backbone

        joiner = build_video_backbone(
            depth=CSN_BACKBONES[name],
            temporal_strides=m.csn_temporal_strides,
            last_stride=m.csn_last_stride,
            frozen_stages=m.csn_frozen_stages if train_backbone else 4,
            weights_path=m.backbone_weights,
            position_embedding=m.position_embedding,
            hidden_dim=m.hidden_dim,
        )
        return joiner, True
    if name == "tiny":
        from seqformer.models.backbones.tiny import build_tiny_backbone

        return build_tiny_backbone(m.position_embedding, m.hidden_dim), False
    joiner = build_backbone(
        m.backbone,
        train_backbone=train_backbone,
        dilation=m.dilation,
        position_embedding=m.position_embedding,
        hidden_dim=m.hidden_dim,
        weights_path=m.backbone_weights,
    )
    return joiner, False


def build_video_detr(cfg: Config) -> VideoDETR:
    """The shared core: the one transformer every task's model wraps (``model.detr``)."""
    m = cfg.model
    backbone, is_3d = build_backbone_from_config(cfg)
    transformer = DeformableTransformer(
        d_model=m.hidden_dim,
        nhead=m.nheads,
        num_encoder_layers=m.enc_layers,
        num_decoder_layers=m.dec_layers,
        dim_feedforward=m.dim_feedforward,
        dropout=m.dropout,
        num_feature_levels=m.num_feature_levels,
        dec_n_points=m.dec_n_points,
        enc_n_points=m.enc_n_points,
        msda_impl=m.msda_impl,
    )
    return VideoDETR(
        backbone,
        transformer,
        num_classes=m.num_classes,
        num_queries=m.num_queries,
        num_feature_levels=m.num_feature_levels,
        aux_loss=m.aux_loss,
        with_box_refine=m.with_box_refine,
        is_3d=is_3d,
    )


def build_model(cfg: Config) -> nn.Module:
    """Deprecated: the task builds its model, ``get_task(cfg.model.task).build_model(cfg)``."""
    from seqformer.engine.task import get_task

    warnings.warn("seqformer.models.build.build_model is deprecated; use "
                  "seqformer.engine.task.get_task(cfg.model.task).build_model(cfg)", DeprecationWarning, stacklevel=2)
    return get_task(cfg.model.task).build_model(cfg)
