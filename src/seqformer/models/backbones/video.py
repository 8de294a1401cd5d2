"""3-D (clip) backbone joined with a per-frame position encoding, in the layout the core expects.

The core flattens every level batch-major to ``[B*T_l, C, h, w]`` -- the same layout 2-D backbones
produce -- so one transformer serves both kinds of backbone.  The transformer needs the same number
of frames at every level; with temporal strides that differ between stages (TubeR's ``[1,2,2,2]``)
the finer levels are average-pooled over time down to the coarsest level's frame count.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seqformer.models.backbones.csn import Backbone3D, build_csn_backbone
from seqformer.models.position_encoding import build_position_encoding


class VideoJoiner(nn.Sequential):
    """``[Backbone3D, position_encoding]`` returning flattened per-level maps, masks and positions."""

    def __init__(self, backbone: Backbone3D, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.strides = list(backbone.strides)
        self.num_channels = list(backbone.num_channels)

    def forward(self, clips: torch.Tensor, mask: torch.Tensor):
        """clips [B,3,T,H,W], mask [B,H,W] -> ([(map [B*T',C,h,w], mask [B*T',h,w])], [pos [B*T',C,h,w]])."""
        levels = self[0](clips, mask)
        t_min = min(feat.shape[1] for feat, _ in levels)
        features, pos = [], []
        for feat, level_mask in levels:
            b, t, c, h, w = feat.shape
            if t != t_min:
                feat = F.adaptive_avg_pool3d(feat.transpose(1, 2), (t_min, h, w)).transpose(1, 2)
                level_mask = level_mask[:, :t_min]
            flat_mask = level_mask.flatten(0, 1)
            features.append((feat.flatten(0, 1), flat_mask))
            pos.append(self[1](flat_mask).to(feat.dtype))
        return features, pos


def build_video_backbone(
    depth: int = 50,
    temporal_strides: list[int] | tuple[int, ...] = (1, 1, 1, 1),
    last_stride: bool = False,
    frozen_stages: int = 2,
    weights_path: str | Path | None = None,
    position_embedding: str = "sine",
    hidden_dim: int = 256,
) -> VideoJoiner:
    backbone = build_csn_backbone(depth, tuple(temporal_strides), last_stride, frozen_stages, weights_path)
    return VideoJoiner(backbone, build_position_encoding(position_embedding, hidden_dim))
