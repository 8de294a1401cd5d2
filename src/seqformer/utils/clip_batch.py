"""Padded batch of video clips shared by data loaders and models.

The original packs frames of all clips into one flat ``[B*T,3,H,W]`` tensor and relies on an
implicit batch-major order; the AVA fork broke that order.  Keeping the clip axis explicit
(``[B,T,3,H,W]``) removes the ambiguity: flattening happens in exactly one place, the model.

Frames travel either normalised (float) or as uint8 pixels with a per-clip colour map that the
model applies on its own device (:meth:`ClipBatch.normalized`): data workers then move a quarter of
the bytes and do no float work (see :mod:`seqformer.utils.colour`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .colour import apply_colour_map


@dataclass
class ClipBatch:
    tensors: torch.Tensor  # [B, T, 3, H_pad, W_pad] normalised float frames, or uint8 pixels
    mask: torch.Tensor  # [B, T, H_pad, W_pad] bool, True = padding
    colour_map: torch.Tensor | None = None  # [B, 3, 3] for uint8 pixels; None = plain normalisation

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ClipBatch":
        cmap = None if self.colour_map is None else self.colour_map.to(device, non_blocking=non_blocking)
        return ClipBatch(self.tensors.to(device, non_blocking=non_blocking),
                         self.mask.to(device, non_blocking=non_blocking), cmap)

    def pin_memory(self) -> "ClipBatch":
        cmap = None if self.colour_map is None else self.colour_map.pin_memory()
        return ClipBatch(self.tensors.pin_memory(), self.mask.pin_memory(), cmap)

    def normalized(self) -> torch.Tensor:
        """Float frames for the model: uint8 pixels get their colour map here, padding stays 0."""
        if self.tensors.is_floating_point():
            return self.tensors
        return apply_colour_map(self.tensors, self.colour_map).masked_fill_(self.mask.unsqueeze(2), 0.0)

    @property
    def shape(self) -> torch.Size:
        return self.tensors.shape


def pad_clips(clips: list[torch.Tensor], size_divisibility: int = 0) -> ClipBatch:
    """Zero-pad ``[T,3,H,W]`` clips bottom/right to a common size (optionally a multiple of ``size_divisibility``)."""
    if not clips:
        raise ValueError("pad_clips needs at least one clip")
    t = clips[0].shape[0]
    if any(c.dim() != 4 or c.shape[0] != t or c.shape[1] != 3 for c in clips):
        raise ValueError(f"clips must all be [T={t},3,H,W]; got {[tuple(c.shape) for c in clips]}")
    h = max(c.shape[2] for c in clips)
    w = max(c.shape[3] for c in clips)
    if size_divisibility > 1:
        h = (h + size_divisibility - 1) // size_divisibility * size_divisibility
        w = (w + size_divisibility - 1) // size_divisibility * size_divisibility
    tensors = clips[0].new_zeros((len(clips), t, 3, h, w))
    mask = torch.ones((len(clips), t, h, w), dtype=torch.bool)
    for i, c in enumerate(clips):
        tensors[i, :, :, : c.shape[2], : c.shape[3]].copy_(c)
        mask[i, :, : c.shape[2], : c.shape[3]] = False
    return ClipBatch(tensors, mask)


def clip_batch_from_tensor(frames: torch.Tensor) -> ClipBatch:
    """Wrap an unpadded ``[B,T,3,H,W]`` (or ``[T,3,H,W]``) tensor, as the original ``inference()`` receives it."""
    if frames.dim() == 4:
        frames = frames[None]
    b, t, _, h, w = frames.shape
    return ClipBatch(frames, torch.zeros((b, t, h, w), dtype=torch.bool, device=frames.device))


def interpolate_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-resize a bool padding mask ``[N,H,W]`` to ``size`` (the original's rule)."""
    return F.interpolate(mask[None].float(), size=size).to(torch.bool)[0]
