"""Clip-level transforms for AVA-format action detection, planned before decoding.

A :class:`ClipPlan` fixes every random choice of a clip once (scale, crop window, flip, colour
jitter), so all frames of a clip get the same augmentation and the JPEG decoder can be told how
small it may decode (PIL ``draft``).  Geometry is stored as fractions of the frame, which makes
the plan independent of the resolution frames were stored or decoded at.

- train: short side drawn uniformly from ``[min, max]`` of ``train_short_side``, then a random
  window whose short side is ``crop_size`` and whose aspect ratio is the frame's (the fork's
  ``RandomSizeCrop_Custom``, without its clamping bug), horizontal flip with p=0.5,
  brightness/contrast/saturation jitter drawn once per clip;
- val/test: the short side is resized to ``val_short_side``; **no crop**, so every ground-truth box
  stays whole (the fork's val centre crop and its dropping of small boxes altered the evaluation GT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from seqformer.utils.colour import colour_map


@dataclass(frozen=True)
class ClipPlan:
    region: tuple[float, float, float, float]  # top, left, height, width as fractions of the frame
    out_hw: tuple[int, int]  # size of the transformed clip
    resized_hw: tuple[int, int]  # size the whole frame would have at this scale (decode at least this big)
    flip: bool = False
    jitter: tuple[float, float, float] | None = None  # brightness, contrast, saturation factors


def short_side_resize(hw: tuple[int, int], short_side: int) -> tuple[int, int]:
    scale = short_side / min(hw)
    return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))


def plan_val(orig_hw: tuple[int, int], short_side: int) -> ClipPlan:
    out = short_side_resize(orig_hw, short_side)
    return ClipPlan((0.0, 0.0, 1.0, 1.0), out, out)


def plan_train(orig_hw: tuple[int, int], short_side_range: tuple[int, int] | list[int], crop_size: int,
               flip_prob: float = 0.5, jitter_strength: float = 0.2,
               generator: torch.Generator | None = None) -> ClipPlan:
    lo, hi = min(short_side_range), max(short_side_range)
    short = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    rh, rw = short_side_resize(orig_hw, short)
    ch, cw = short_side_resize(orig_hw, crop_size)
    ch, cw = min(ch, rh), min(cw, rw)
    top = int(torch.randint(0, rh - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, rw - cw + 1, (1,), generator=generator))
    flip = bool(torch.rand((), generator=generator) < flip_prob)
    jitter = None
    if jitter_strength > 0:
        f = 1 + (torch.rand(3, generator=generator) * 2 - 1) * jitter_strength
        jitter = (float(f[0]), float(f[1]), float(f[2]))
    return ClipPlan((top / rh, left / rw, ch / rh, cw / rw), (ch, cw), (rh, rw), flip, jitter)


def _region_pixels(plan: ClipPlan, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    top, left, h, w = plan.region
    t, l = round(top * hw[0]), round(left * hw[1])
    return t, l, max(1, min(hw[0] - t, round(h * hw[0]))), max(1, min(hw[1] - l, round(w * hw[1])))


def transform_boxes(boxes_xyxy: np.ndarray, plan: ClipPlan, decoded_hw: tuple[int, int],
                    min_size: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised xyxy boxes of the full frame -> (cxcywh normalised by ``out_hw``, kept mask).

    Uses the same integer source region as :func:`transform_pixels`, so boxes follow the pixels
    exactly.  Boxes whose visible part is thinner than ``min_size`` output pixels are dropped.
    """
    t, l, h, w = _region_pixels(plan, decoded_hw)
    oh, ow = plan.out_hw
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    x = (b[:, [0, 2]] * decoded_hw[1] - l) * (ow / w)
    y = (b[:, [1, 3]] * decoded_hw[0] - t) * (oh / h)
    x, y = np.clip(x, 0, ow), np.clip(y, 0, oh)
    keep = ((x[:, 1] - x[:, 0]) >= min_size) & ((y[:, 1] - y[:, 0]) >= min_size)
    if plan.flip:
        x = ow - x[:, ::-1]
    cxcywh = np.stack([(x[:, 0] + x[:, 1]) / 2 / ow, (y[:, 0] + y[:, 1]) / 2 / oh,
                       (x[:, 1] - x[:, 0]) / ow, (y[:, 1] - y[:, 0]) / oh], axis=1)
    return cxcywh.astype(np.float32), keep


def transform_pixels(frames: np.ndarray | torch.Tensor, plan: ClipPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """``uint8 [T,H,W,3]`` frames (any size) -> ``uint8 [T,3,oh,ow]`` pixels and their ``[3,3]`` colour map.

    Crop, one antialiased resize of the whole stack (uint8 fast path) and flip; the colour jitter
    and the normalisation stay a per-clip affine map (:mod:`seqformer.utils.colour`) that the
    training device applies, so workers never touch float clips.
    """
    x = torch.as_tensor(frames).permute(0, 3, 1, 2)  # channels-last strides: the fast uint8 resize path
    t, l, h, w = _region_pixels(plan, (x.shape[2], x.shape[3]))
    x = x[:, :, t:t + h, l:l + w]
    if (h, w) != plan.out_hw:
        x = TF.resize(x, list(plan.out_hw), antialias=True)
    if plan.flip:
        x = x.flip(-1)
    x = x.contiguous()
    return x, colour_map(x, plan.jitter)
