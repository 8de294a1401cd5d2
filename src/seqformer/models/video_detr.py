"""The task-independent SeqFormer core: backbone -> input projections -> deformable transformer -> heads.

State-dict names follow the released checkpoints (``detr.`` prefix once wrapped by a task model):
``transformer``, ``class_embed``, ``bbox_embed``, ``query_embed``, ``input_proj``, ``backbone``.
Both task models (instance segmentation and action detection) wrap this one module, so a VIS
checkpoint initialises an action model with the same keys.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from seqformer.models.layers import MLP, float32, full_precision, inverse_sigmoid
from seqformer.models.transformer import DeformableTransformer, TransformerOutput
from seqformer.structures import ClipBatch, interpolate_mask


@dataclass
class HeadOutputs:
    logits: list[torch.Tensor]  # per decoder layer [B, Q, K]
    boxes: list[torch.Tensor]  # per decoder layer [B, T, Q, 4] sigmoid cxcywh
    references: list[torch.Tensor]  # per decoder layer, the layer's *input* reference (inverse-sigmoid), [B, T, Q, 2|4]
    transformer: TransformerOutput


def _prior_bias(prob: float = 0.01) -> float:
    return -math.log((1 - prob) / prob)


class VideoDETR(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        transformer: DeformableTransformer,
        num_classes: int,
        num_queries: int,
        num_feature_levels: int,
        aux_loss: bool = True,
        with_box_refine: bool = True,
        is_3d: bool = False,
    ):
        super().__init__()
        hidden_dim = transformer.d_model
        self.num_queries, self.num_classes = num_queries, num_classes
        self.num_feature_levels = num_feature_levels
        self.aux_loss, self.with_box_refine, self.is_3d = aux_loss, with_box_refine, is_3d
        self.transformer = transformer
        class_embed = nn.Linear(hidden_dim, num_classes)
        bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        class_embed.bias.data.fill_(_prior_bias())
        nn.init.constant_(bbox_embed.layers[-1].weight, 0)
        nn.init.constant_(bbox_embed.layers[-1].bias, 0)
        num_pred = len(transformer.decoder.layers)
        if with_box_refine:
            self.class_embed = nn.ModuleList(copy.deepcopy(class_embed) for _ in range(num_pred))
            self.bbox_embed = nn.ModuleList(copy.deepcopy(bbox_embed) for _ in range(num_pred))
            nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
            transformer.decoder.bbox_embed = self.bbox_embed  # shared modules (aliased in the state dict)
        else:
            nn.init.constant_(bbox_embed.layers[-1].bias[2:], -2.0)
            self.class_embed = nn.ModuleList([class_embed] * num_pred)
            self.bbox_embed = nn.ModuleList([bbox_embed] * num_pred)
            transformer.decoder.bbox_embed = None
        self.query_embed = nn.Embedding(num_queries, hidden_dim * 2)
        n_backbone = len(backbone.strides)
        projs = []
        for ch in backbone.num_channels:
            projs.append(nn.Sequential(nn.Conv2d(ch, hidden_dim, kernel_size=1), nn.GroupNorm(32, hidden_dim)))
        in_ch = backbone.num_channels[-1]
        for _ in range(num_feature_levels - n_backbone):
            projs.append(nn.Sequential(nn.Conv2d(in_ch, hidden_dim, 3, stride=2, padding=1), nn.GroupNorm(32, hidden_dim)))
            in_ch = hidden_dim
        self.input_proj = nn.ModuleList(projs[:num_feature_levels])
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        self.backbone = backbone

    def _backbone_features(self, samples: ClipBatch):
        """Backbone maps flattened batch-major to [B*T_l, C, h, w], with masks, pos and T_l."""
        b, t = samples.tensors.shape[:2]
        frames = samples.normalized()
        if self.is_3d:
            feats, pos = self.backbone(frames.transpose(1, 2), samples.mask[:, 0])
            t_out = feats[-1][0].shape[0] // b
            base_mask = samples.mask[:, :: max(t // t_out, 1)][:, :t_out].flatten(0, 1)
            return feats, pos, t_out, base_mask
        flat_mask = samples.mask.flatten(0, 1)
        feats, pos = self.backbone(frames.flatten(0, 1), flat_mask)
        return feats, pos, t, flat_mask

    def forward_transformer(self, samples: ClipBatch) -> TransformerOutput:
        b = samples.tensors.shape[0]
        feats, pos, t, base_mask = self._backbone_features(samples)
        srcs, masks, poses = [], [], []

        def add_level(src: torch.Tensor, mask: torch.Tensor, p: torch.Tensor) -> None:
            srcs.append(src.view(b, t, *src.shape[1:]))
            masks.append(mask.view(b, t, *mask.shape[1:]))
            poses.append(p.view(b, t, *p.shape[1:]))

        for lvl, ((feat, mask), p) in enumerate(zip(feats, pos)):
            if lvl >= self.num_feature_levels:
                break
            add_level(self.input_proj[lvl](feat), mask, p)
        prev = feats[-1][0]
        for lvl in range(len(feats), self.num_feature_levels):
            src = self.input_proj[lvl](prev)
            mask = interpolate_mask(base_mask, src.shape[-2:])
            add_level(src, mask, self.backbone[1](mask).to(src.dtype))
            prev = src
        return self.transformer(srcs, masks, poses, self.query_embed.weight)

    def forward_heads(self, samples: ClipBatch) -> HeadOutputs:
        """Class logits, boxes and references of every decoder layer; the heads run in float32 (under autocast too)."""
        out = self.forward_transformer(samples)
        logits, boxes, refs = [], [], []
        with full_precision(out.hs):
            for lvl in range(out.hs.shape[0]):
                ref = out.init_reference if lvl == 0 else out.inter_references[lvl - 1]
                ref = inverse_sigmoid(float32(ref))
                tmp = self.bbox_embed[lvl](float32(out.hs_box[lvl]))
                if ref.shape[-1] == 4:
                    tmp = tmp + ref
                else:
                    tmp = torch.cat([tmp[..., :2] + ref, tmp[..., 2:]], -1)
                logits.append(self.class_embed[lvl](float32(out.hs[lvl])))
                boxes.append(tmp.sigmoid())
                refs.append(ref)
        return HeadOutputs(logits, boxes, refs, out)


def unpadded_sizes(samples: ClipBatch) -> torch.Tensor:
    """(h, w) of each clip's image region, read off its padding mask (frame 0): [B, 2]."""
    mask = samples.mask[:, 0]
    h = (~mask[:, :, 0]).sum(1)
    w = (~mask[:, 0, :]).sum(1)
    return torch.stack([h, w], 1)


def level_maps(memory: torch.Tensor, spatial_shapes: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Split flattened encoder memory [B,T,S,C] into the first ``num_levels`` maps [B*T, C, h, w]."""
    b, t, _, c = memory.shape
    maps, start = [], 0
    for h, w in spatial_shapes.tolist()[:num_levels]:
        m = memory[:, :, start : start + h * w].reshape(b * t, h, w, c).permute(0, 3, 1, 2)
        maps.append(m)
        start += h * w
    return maps


__all__ = ["VideoDETR", "HeadOutputs", "unpadded_sizes", "level_maps"]
