"""A small from-scratch CNN backbone for CPU demos, CI and unit tests (name ``tiny``).

The released backbones need ImageNet weights to train well, and nothing may be downloaded here;
this network trains from random initialisation in minutes on synthetic data.  It returns the same
three levels as the ResNets (strides 8, 16, 32) so every other part of the model is unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from seqformer.models.position_encoding import Joiner, build_position_encoding
from seqformer.structures import interpolate_mask


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(8, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(8, c_out),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 96, 128)):
        super().__init__()
        self.body = nn.ModuleDict({
            "stem": _stage(3, widths[0], 2),  # stride 2
            "layer1": _stage(widths[0], widths[1], 2),  # 4
            "layer2": _stage(widths[1], widths[2], 2),  # 8
            "layer3": _stage(widths[2], widths[3], 2),  # 16
            "layer4": _stage(widths[3], widths[4], 2),  # 32
        })
        self.strides = [8, 16, 32]
        self.num_channels = list(widths[2:])

    def forward(self, tensors: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x = tensors
        outs = []
        for name, stage in self.body.items():
            x = stage(x)
            if name in ("layer2", "layer3", "layer4"):
                outs.append((x, interpolate_mask(mask, x.shape[-2:])))
        return outs


def build_tiny_backbone(position_embedding: str = "sine", hidden_dim: int = 256) -> Joiner:
    return Joiner(TinyBackbone(), build_position_encoding(position_embedding, hidden_dim))
