"""Batch collation for clip datasets: pad frames into a :class:`ClipBatch`, keep targets as a list."""
from __future__ import annotations

import torch

from seqformer.utils.clip_batch import ClipBatch, pad_clips


def collate_clips(batch: list[tuple[torch.Tensor, dict]], size_divisibility: int = 32) -> tuple[ClipBatch, list[dict]]:
    """``[(frames [T,3,H,W], target), ...]`` -> (``ClipBatch`` padded bottom/right to a multiple of
    ``size_divisibility`` as the original ``collate_fn``, list of targets).  Target masks stay unpadded."""
    clips, targets = zip(*batch)
    return pad_clips(list(clips), size_divisibility=size_divisibility), list(targets)
