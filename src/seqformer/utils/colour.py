"""Per-clip colour maps: colour jitter and ImageNet normalisation as one affine map on uint8 pixels.

Data workers hand over uint8 clips plus a ``[3,3]`` colour map, and the map is applied on the
training device (:meth:`seqformer.structures.ClipBatch.normalized`).  A float clip is four
times larger than its pixels, so converting in the workers made the float conversion and the
worker-to-trainer copy dominate AVA loading (docs/benchmarks.md).

A colour map's rows are ``scale``, ``shift`` and ``grey_weight`` per RGB channel; pixel values ``p``
in 0..255 map to ``scale * p + shift + grey_weight * grey(p)`` with ``grey`` the ITU-R 601 luma.
"""
from __future__ import annotations

import math

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def colour_map(pixels: torch.Tensor, jitter: tuple[float, float, float] | None) -> torch.Tensor:
    """``[3,3]`` map for brightness/contrast/saturation factors ``jitter`` (or none) + normalisation.

    With p = x/255: brightness b gives b*p; contrast c around the clip's mean grey m gives
    c*b*p + (1-c)*m; saturation s mixes with the grey, which is c*b*grey(p) + (1-c)*m because the
    grey weights sum to 1.  So channel k is s*c*b*p_k + (1-s)*c*b*grey(p) + (1-c)*m, then
    ``(. - mean_k) / std_k``.  ``pixels`` (uint8 ``[T,3,H,W]``) is only read for m, on a 1/8 grid.
    No clipping to [0,1] between the steps.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    if jitter is None:
        return torch.stack([1 / (255 * std), -mean / std, torch.zeros(3, dtype=torch.float64)]).float()
    b, c, s = jitter
    sample = pixels[:, :, ::8, ::8]
    m = b * float(sum(sample[:, k].float().mean() * g for k, g in enumerate(GREY_WEIGHTS))) / 255
    scale = s * c * b / (255 * std)
    shift = ((1 - c) * m - mean) / std
    grey_weight = torch.zeros(3, dtype=torch.float64) if math.isclose(s, 1.0) else (1 - s) * c * b / (255 * std)
    return torch.stack([scale, shift, grey_weight]).float()


def apply_colour_map(pixels: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
    """uint8 ``[..., T, 3, H, W]`` -> float32 with the map ``[..., 3, 3]`` (``None``: normalisation only)."""
    if cmap is None:
        cmap = colour_map(pixels, None)
    cmap = cmap.to(device=pixels.device, dtype=torch.float32)
    lead = pixels.dim() - 4  # batch dimensions before [T,3,H,W]
    view = cmap.reshape(*cmap.shape[:-2], *([1] * (lead - (cmap.dim() - 2))), 1, 3, 3, 1, 1)
    scale, shift, grey_weight = view[..., 0, :, :, :], view[..., 1, :, :, :], view[..., 2, :, :, :]
    out = pixels.to(torch.float32)
    grey = None
    if bool((grey_weight != 0).any()):
        w = GREY_WEIGHTS
        grey = out[..., 0:1, :, :] * w[0]
        grey.add_(out[..., 1:2, :, :], alpha=w[1]).add_(out[..., 2:3, :, :], alpha=w[2])
    out.mul_(scale).add_(shift)
    if grey is not None:
        out.addcmul_(grey, grey_weight)
    return out
