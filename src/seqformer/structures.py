"""The data structures between data loading and the model: padded clip batches and target dicts.

``ClipBatch`` is the model's input; the target dicts (:class:`VISTarget`, :class:`AVATarget`,
:class:`TubeTarget`) are
what datasets produce and what matchers and criteria read.  Their keys are written down here once.

The original packs frames of all clips into one flat ``[B*T,3,H,W]`` tensor and relies on an
implicit batch-major order; the AVA fork broke that order.  Keeping the clip axis explicit
(``[B,T,3,H,W]``) removes the ambiguity: flattening happens in exactly one place, the model.

Frames travel either normalised (float) or as uint8 pixels with a per-clip colour map that the
model applies on its own device (:meth:`ClipBatch.normalized`): data workers then move a quarter of
the bytes and do no float work (see :mod:`seqformer.utils.colour`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import torch
import torch.nn.functional as F

from seqformer.utils.colour import apply_colour_map


class VISTarget(TypedDict, total=False):
    """One clip's instances (YouTube-VIS, COCO pseudo-videos); ``N`` instances, ``T`` frames."""

    labels: torch.Tensor  # [N] int64 category ids (the model's class indices)
    boxes: torch.Tensor  # [N, T, 4] normalised cxcywh after the transforms (xyxy pixels before)
    masks: torch.Tensor  # [N, T, H, W] bool, unpadded
    valid: torch.Tensor  # [N, T] bool: the instance is visible in frame t
    size: torch.Tensor  # [2] (h, w) after the transforms
    orig_size: torch.Tensor  # [2] (h, w) of the source frames
    video_id: int
    frame_ids: torch.Tensor  # [T] int64 frame indices in the video


class AVATarget(TypedDict, total=False):
    """One keyframe clip's actors (AVA-format datasets); ``N`` actors, ``K`` label-map classes."""

    boxes: torch.Tensor  # [N, 4] normalised cxcywh at the keyframe
    labels: torch.Tensor  # [N, K] float multi-hot over the label map in file order
    key_frame: torch.Tensor  # [] int64 position of the keyframe in the clip
    video_id: str
    second: int
    size: torch.Tensor  # [2] (h, w) after the transforms
    orig_size: torch.Tensor  # [2] (h, w) of the source frames
    colour_map: torch.Tensor  # [3, 3] per-clip colour map; moved into ClipBatch by the collate


class TubeTarget(TypedDict, total=False):
    """One clip's actor tubes (JHMDB-21 / UCF101-24, ACT format); ``N`` tubes alive in the clip, ``T`` frames.

    A tube may start or end inside the clip: ``valid`` says in which frames it exists, and ``boxes`` of
    the other frames are zeros that no loss or cost reads.
    """

    labels: torch.Tensor  # [N] int64 0-based class (the pickle's label index)
    boxes: torch.Tensor  # [N, T, 4] normalised cxcywh after the transforms
    valid: torch.Tensor  # [N, T] bool: the tube exists (and is visible after the crop) in frame t
    frame_ids: torch.Tensor  # [T] int64 1-based frame numbers of the clip (edges repeated at video ends)
    video_id: str  # the video's name in the pickle
    size: torch.Tensor  # [2] (h, w) after the transforms
    orig_size: torch.Tensor  # [2] (h, w) of the source frames
    colour_map: torch.Tensor  # [3, 3] per-clip colour map; moved into ClipBatch by the collate


Targets = list[dict[str, Any]]  # a batch of VISTarget, AVATarget or TubeTarget dicts


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


def pad_clips_shared(clips: list[torch.Tensor]) -> ClipBatch:
    """:func:`pad_clips` writing straight into shared memory, as ``default_collate`` does in workers.

    A clip batch is large (~11 MB of uint8 pixels per AVA clip); padding into private memory and
    then having the worker queue copy it into shared memory would move it twice.  Same layout as
    :func:`pad_clips` without size divisibility (tested).
    """
    t = clips[0].shape[0]
    if any(c.dim() != 4 or c.shape[0] != t or c.shape[1] != 3 for c in clips):
        raise ValueError(f"clips must all be [T={t},3,H,W]; got {[tuple(x.shape) for x in clips]}")
    h = max(c.shape[2] for c in clips)
    w = max(c.shape[3] for c in clips)
    shape = (len(clips), t, 3, h, w)
    storage = clips[0]._typed_storage()._new_shared(len(clips) * t * 3 * h * w, device=clips[0].device)
    tensors = clips[0].new(storage).view(shape)
    mask = torch.ones((len(clips), t, h, w), dtype=torch.bool)
    for i, c in enumerate(clips):
        tensors[i, :, :, : c.shape[2], : c.shape[3]].copy_(c)
        tensors[i, :, :, c.shape[2]:].zero_()
        tensors[i, :, :, : c.shape[2], c.shape[3]:].zero_()
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
