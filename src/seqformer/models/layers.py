"""Small building blocks shared by the SeqFormer heads, and the float32 islands used under autocast."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (parameter names ``layers.{i}``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        dims = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + dims, dims + [output_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """log(x / (1 - x)) with the original's clamping (x first clamped to [0, 1], then both terms to >= eps)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def tube_descriptor(boxes: torch.Tensor) -> torch.Tensor:
    """[B,T,Q,4] cxcywh tubes -> [B,Q,4T]: per-frame centre offsets and log size ratios to the mean box.

    What a query's motion looks like (the action and tube heads add it to the instance query, which is a
    weighted sum over frames and so cannot tell "moves left" from "moves right" by itself).
    """
    mean = boxes.mean(1, keepdim=True)
    wh = boxes[..., 2:].clamp(min=1e-4)
    rel = torch.cat([(boxes[..., :2] - mean[..., :2]) / mean[..., 2:].clamp(min=1e-4),
                     torch.log(wh / mean[..., 2:].clamp(min=1e-4))], -1)
    return rel.permute(0, 2, 1, 3).flatten(2)


def float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is half/bfloat16 (float64 stays float64, for gradient checks)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def full_precision(x: torch.Tensor) -> torch.autocast:
    """Autocast switched off on ``x``'s device: ops inside run in their inputs' dtype (cast them with :func:`float32`).

    Used under ``train.amp`` / ``eval.amp`` where half precision loses what matters
    (docs/benchmarks.md, "Mixed precision"): deformable sampling locations and softmax weights
    (a bfloat16 location in [0, 1] is off by up to 2**-9, a sixth of a pixel at 80 columns), the
    class / box heads (score ties would reorder the top-k; boxes drive the matcher and the next
    layer's reference points), the dynamic mask head (its convolution weights are predicted) and
    the matcher and losses.  Everything else (backbone, projections, feed-forward layers, the
    mask FPN) runs in the autocast dtype.
    """
    return torch.autocast(x.device.type, enabled=False)
