"""Batch collation for every clip dataset: pad frames into a :class:`ClipBatch`, keep targets as a list.

VIS clips arrive as normalised float frames and are padded to a multiple of 32 as the original
``collate_fn`` does; AVA clips arrive as uint8 pixels with a per-clip colour map that the model
applies on its device, and skipped samples (``None``) are dropped here.  In DataLoader workers the
AVA batch is padded straight into shared memory, and glibc is told to keep large blocks in the
heap (both measured in ``benchmarks/bench_ava_loading.py``).
"""
from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch.utils.data import get_worker_info

from seqformer.structures import ClipBatch, pad_clips, pad_clips_shared


def collate_clips(batch: list[tuple[torch.Tensor, dict]], size_divisibility: int = 32) -> tuple[ClipBatch, list[dict]]:
    """``[(frames [T,3,H,W], target), ...]`` -> (``ClipBatch`` padded bottom/right to a multiple of
    ``size_divisibility`` as the original ``collate_fn``, list of targets).  Target masks stay unpadded."""
    clips, targets = zip(*batch)
    return pad_clips(list(clips), size_divisibility=size_divisibility), list(targets)


def collate_ava(batch: list[tuple[torch.Tensor, dict[str, Any]] | None]) -> tuple[ClipBatch | None, list[dict]]:
    """Pad uint8 ``[T,3,H,W]`` clips into a :class:`ClipBatch` carrying the targets' colour maps.

    Skipped samples (``None``) are dropped; a batch whose samples were all skipped comes back as
    ``(None, [])``.  The colour maps move from the targets into the batch (applied by the model).
    """
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return None, []
    clips = [clip for clip, _ in kept]
    targets = [{k: v for k, v in target.items() if k != "colour_map"} for _, target in kept]
    padded = pad_clips(clips) if get_worker_info() is None else pad_clips_shared(clips)
    if all("colour_map" in target for _, target in kept):
        padded.colour_map = torch.stack([target["colour_map"] for _, target in kept])
    return padded, targets


_MALLOC_TUNED = False


def keep_large_allocations_in_worker_heap() -> None:
    """In a DataLoader worker, stop glibc from mmap/munmap-ing every large clip buffer.

    Each fresh mapping page-faults on first touch; keeping big blocks in the heap makes a training
    clip cheaper.  Worker processes only; no-op elsewhere and on other C libraries.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or get_worker_info() is None:
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass
