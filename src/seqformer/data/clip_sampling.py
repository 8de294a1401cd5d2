"""Clip sampling shared by the frame-folder datasets (AVA keyframes, JHMDB/UCF101-24 tubes).

A clip is ``num_frames`` frames ``sample_rate`` apart around a centre frame at position
``num_frames // 2``; at a video boundary the edge frame is repeated so the centre keeps its position.
:func:`read_clip_frames` decodes such a clip from a frame source with the skip rule every dataset
follows: a missing or corrupt frame raises :class:`FrameReadError` naming the file, or, when the
caller allows it, a bad non-centre frame is replaced by the nearest good frame of the clip and
counted.  A bad centre frame always raises (the caller counts the skipped sample).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from seqformer.data.video_reader import FrameReadError, JpegFrameSource

logger = logging.getLogger(__name__)


def clip_frame_indices(key_index: int, num_frames: int, sample_rate: int, video_frames: int) -> np.ndarray:
    """Frame indices of a clip centred on ``key_index`` (at position ``num_frames // 2``), edges repeated."""
    offsets = (np.arange(num_frames) - num_frames // 2) * sample_rate
    return np.clip(key_index + offsets, 0, video_frames - 1)


def read_clip_frames(source: JpegFrameSource, video_id: str, indices: np.ndarray, key: int,
                     want_hw: tuple[int, int] | None, replace_bad: bool,
                     on_replace: Callable[[int, int, FrameReadError], None] | None = None) -> np.ndarray:
    """``uint8 [T,H,W,3]`` frames ``indices`` of ``video_id``; the frame ``key`` is decoded first (its size rules).

    With ``replace_bad`` a bad frame other than ``key`` is replaced by the nearest good one of the clip and
    reported through ``on_replace(bad, nearest, error)``; otherwise every bad frame raises.  Frames whose
    size differs from the key frame's count as bad.
    """
    decoded: dict[int, np.ndarray] = {}
    bad: dict[int, FrameReadError] = {}
    for k in sorted(set(indices.tolist()), key=lambda k: (k != key, k)):
        try:
            frame = source.read_frame(video_id, k, want_hw)
            if decoded and frame.shape != decoded[key].shape:
                raise FrameReadError(f"frame {k} of video {video_id!r} ({source.frame_path(video_id, k)})"
                                     f" is {frame.shape[:2]}, other frames are {decoded[key].shape[:2]}")
            decoded[k] = frame
        except FrameReadError as e:
            if k == key or not replace_bad:
                raise
            bad[k] = e
    for k, e in bad.items():
        nearest = min(decoded, key=lambda good: (abs(good - k), good))
        decoded[k] = decoded[nearest]
        if on_replace is not None:
            on_replace(k, nearest, e)
    return np.stack([decoded[k] for k in indices.tolist()])
