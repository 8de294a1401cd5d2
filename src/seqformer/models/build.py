"""Build task models from a :class:`seqformer.config.Config`."""
from __future__ import annotations

from torch import nn

from ..config import Config, ConfigError
from .action import ActionSeqFormer
from .backbone import build_backbone
from .detr import VideoDETR
from .seqformer import SeqFormer
from .transformer import DeformableTransformer

CSN_BACKBONES = {"csn50": 50, "csn152": 152, "ircsn50": 50, "ircsn152": 152}


def build_model_backbone(cfg: Config) -> tuple[nn.Module, bool]:
    """The backbone Joiner and whether it is a 3-D (clip) backbone."""
    m = cfg.model
    train_backbone = cfg.optim.lr_backbone > 0
    name = m.backbone.lower().replace("-", "").replace("_", "")
    if name in CSN_BACKBONES:
        from .video_backbone import build_video_backbone

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
        from .tiny_backbone import build_tiny_backbone

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


def build_detr(cfg: Config) -> VideoDETR:
    m = cfg.model
    backbone, is_3d = build_model_backbone(cfg)
    if m.num_feature_levels < len(backbone.strides) and m.masks and m.task == "vis":
        raise ConfigError("model.masks needs num_feature_levels >= 3 (the mask head fuses strides 8/16/32)")
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
    """``SeqFormer`` (task ``vis``) or ``ActionSeqFormer`` (task ``ava``); matchers are attached by the task."""
    detr = build_detr(cfg)
    if cfg.model.task == "vis":
        return SeqFormer(detr, rel_coord=cfg.model.rel_coord, mask_out_stride=cfg.model.mask_out_stride,
                         masks=cfg.model.masks, mask_channels=cfg.model.mask_channels)
    return ActionSeqFormer(detr, actor_score=cfg.model.actor_score, tube_features=cfg.model.tube_features,
                           num_frames=cfg.model.num_frames)
