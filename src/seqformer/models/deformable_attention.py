"""SeqFormer's multi-scale deformable attention module (per-frame sampling, two output projections).

Frames are folded into the batch axis before sampling, so one kernel call covers every frame
(the original loops over frames in Python).  ``output_proj_box`` exists in every instance,
including encoder layers where it is unused, because released checkpoints contain it.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import constant_, xavier_uniform_

from seqformer.models.layers import float32, full_precision
from seqformer.ops import ms_deform_attn


class MSDeformAttn(nn.Module):
    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4, impl: str = "auto"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        head_dim = d_model // n_heads
        if head_dim & (head_dim - 1):
            warnings.warn("a power-of-two head dimension is fastest in CUDA deformable-attention kernels")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.impl = impl
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.output_proj_box = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Deformable-DETR init: zero offset weights, a radial grid of initial offsets per head."""
        constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        constant_(self.attention_weights.weight, 0.0)
        constant_(self.attention_weights.bias, 0.0)
        xavier_uniform_(self.value_proj.weight)
        constant_(self.value_proj.bias, 0.0)
        xavier_uniform_(self.output_proj.weight)
        constant_(self.output_proj.bias, 0.0)

    def sample(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value_input: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Per-frame deformable sampling before the output projection.

        query            [B, Tq, Lq, C] with Tq = T, or Tq = 1 to share offsets/weights across frames
        reference_points [B, T, Lq, L, 2 | 4] (normalised, already scaled by valid ratios)
        value_input      [B, T, S, C];  padding_mask [B, T, S] (True = padding)
        returns          [B, T, Lq, C]
        """
        b, t, s, c = value_input.shape
        lq = query.shape[2]
        m, n_l, n_p = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(value_input)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(b * t, s, m, c // m)
        offsets = self.sampling_offsets(query)
        weights = self.attention_weights(query)
        # Under autocast the projections above run in half precision; locations, softmax weights and
        # the sampling itself stay float32 (``value`` may stay half: every backend accumulates in float32).
        with full_precision(value):
            offsets = float32(offsets).view(b, -1, lq, m, n_l, n_p, 2)
            weights = F.softmax(float32(weights).view(b, -1, lq, m, n_l * n_p), -1).view(b, -1, lq, m, n_l, n_p)
            offsets = offsets.expand(b, t, *offsets.shape[2:]).reshape(b * t, lq, m, n_l, n_p, 2)
            weights = weights.expand(b, t, *weights.shape[2:]).reshape(b * t, lq, m, n_l, n_p)
            ref = float32(reference_points).reshape(b * t, lq, n_l, reference_points.shape[-1])
            if ref.shape[-1] == 2:
                normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets.dtype)
                loc = torch.addcdiv(ref[:, :, None, :, None, :], offsets, normalizer[None, None, None, :, None, :])
            elif ref.shape[-1] == 4:
                loc = ref[:, :, None, :, None, :2] + offsets / n_p * ref[:, :, None, :, None, 2:] * 0.5
            else:
                raise ValueError(f"reference points must end in 2 or 4 coordinates, got {ref.shape[-1]}")
            out = ms_deform_attn(value, spatial_shapes, level_start_index, loc, weights, impl=self.impl)
        return out.view(b, t, lq, c)
