"""Position encodings of the feature maps (DETR's sine and learned forms) and the Joiner that pairs one
with a backbone.

The encodings are computed from each level's padding mask, so a padded frame's encoding covers only
its valid region.  ``Joiner`` is an ``nn.Sequential`` (index 0 the backbone, index 1 the encoding)
because released SeqFormer checkpoints name the backbone weights ``backbone.0.body.*``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine encoding from the padding mask: channels [y sin/cos interleaved ; x sin/cos interleaved].

    With ``normalize`` the cumulative coordinates are mapped to (v - 0.5) / (v_last + 1e-6) * scale, so the
    encoding covers [0, scale) of each frame's valid region regardless of its size.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000, normalize: bool = True,
                 scale: float | None = None):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [N, h, w] bool (True = padding) -> [N, 2 * num_pos_feats, h, w] float32."""
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        x = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
            x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute encoding: 50 column and 50 row embeddings, channels [x ; y] (maps up to 50x50)."""

    max_size = 50

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.row_embed = nn.Embedding(self.max_size, num_pos_feats)
        self.col_embed = nn.Embedding(self.max_size, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [N, h, w] (only its shape is used) -> [N, 2 * num_pos_feats, h, w]."""
        n, h, w = mask.shape
        if h > self.max_size or w > self.max_size:
            raise ValueError(f"learned position embedding supports maps up to {self.max_size}x{self.max_size}, "
                             f"got {h}x{w}")
        x_emb = self.col_embed(torch.arange(w, device=mask.device))  # [w, F]
        y_emb = self.row_embed(torch.arange(h, device=mask.device))  # [h, F]
        pos = torch.cat([x_emb.unsqueeze(0).expand(h, -1, -1), y_emb.unsqueeze(1).expand(-1, w, -1)], dim=-1)
        return pos.permute(2, 0, 1).unsqueeze(0).expand(n, -1, -1, -1)


class Joiner(nn.Sequential):
    """``[backbone, position_encoding]``; returns per-level (map, mask) and matching position maps."""

    def __init__(self, backbone: nn.Module, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.strides = list(backbone.strides)
        self.num_channels = list(backbone.num_channels)

    def forward(self, tensors: torch.Tensor, mask: torch.Tensor
                ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
        features = self[0](tensors, mask)
        pos = [self[1](level_mask).to(x.dtype) for x, level_mask in features]
        return features, pos


def build_position_encoding(kind: str = "sine", hidden_dim: int = 256) -> nn.Module:
    if kind in ("sine", "v2"):
        return PositionEmbeddingSine(hidden_dim // 2, normalize=True)
    if kind in ("learned", "v3"):
        return PositionEmbeddingLearned(hidden_dim // 2)
    raise ValueError(f"unknown position_embedding {kind!r}; choose 'sine' or 'learned'")
