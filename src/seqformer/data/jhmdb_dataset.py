"""JHMDB-21 / UCF101-24 tube dataset: ACT ground-truth pickle + one image per frame.

Frames are read in the layouts people already have (ACT, MOC, MMAction2): JHMDB
``Frames/<video>/%05d.png``, UCF101-24 ``rgb-images/<video>/%05d.jpg``, i.e. a ``frame_pattern`` of
``"{video_id}/{frame:05d}.png"`` (1-based ``frame``, ``video_id`` the pickle's ``<class>/<clip>`` name).
Frame counts and sizes come from the pickle (``nframes``, ``resolution``), so nothing is probed.

One training sample per (video of ``train_videos[split-1]``, centre frame), centres every
``centre_stride`` frames: a clip of ``num_frames`` frames ``frame_sample_rate`` apart with the centre at
``num_frames // 2`` and the edge frames repeated at video ends (:mod:`seqformer.data.clip_sampling`,
shared with AVA).  Every tube alive in any frame of the clip becomes one target row with its box in
*every* clip frame and a ``valid`` mask of the frames where it exists, so tubes that start or end
inside the clip are supervised as such (:class:`seqformer.structures.TubeTarget`).

The augmentation is AVA's clip plan (:mod:`seqformer.data.ava_transforms`): one scale jitter, crop,
flip and colour jitter per clip (train) or a short-side resize only (test); boxes follow the pixels
exactly.  A tube frame whose box the crop leaves thinner than ``min_box_size`` pixels becomes invalid;
a tube with no valid frame left is dropped.  Pixels are uint8 with a per-clip colour map.

Missing or corrupt frames behave as in AVA: :class:`FrameReadError` naming the file, or with
``skip_corrupt_frames`` a bad non-centre frame is replaced by the nearest good one and a sample whose
centre frame is bad is skipped (``None``, dropped by the collate); both are counted in
:meth:`JhmdbDataset.skip_counts`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from seqformer.data.ava_transforms import ClipPlan, plan_train, plan_val, transform_boxes, transform_pixels
from seqformer.data.clip_sampling import clip_frame_indices, read_clip_frames
from seqformer.data.collate import keep_large_allocations_in_worker_heap
from seqformer.data.jhmdb_format import JhmdbGroundTruth, read_groundtruth_pickle
from seqformer.data.shared_counter import SharedCounter
from seqformer.data.video_reader import FrameReadError, JpegFrameSource, VideoInfo

logger = logging.getLogger(__name__)


def clip_tubes(gt: JhmdbGroundTruth, video: str, frame_ids: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tubes of ``video`` alive in the 1-based ``frame_ids``.

    Returns labels ``[N]``, xyxy pixel boxes ``[N,T,4]`` (zeros where the tube does not exist) and valid ``[N,T]``.
    """
    labels, boxes, valid = [], [], []
    for label, tubes in sorted(gt.tubes(video).items()):
        for tube in tubes:
            rows = np.searchsorted(tube[:, 0], frame_ids)
            rows = np.minimum(rows, len(tube) - 1)
            present = tube[rows, 0] == frame_ids
            if not present.any():
                continue
            labels.append(label)
            boxes.append(np.where(present[:, None], tube[rows, 1:5], 0.0))
            valid.append(present)
    t = len(frame_ids)
    if not labels:
        return np.zeros(0, np.int64), np.zeros((0, t, 4)), np.zeros((0, t), bool)
    return np.array(labels, np.int64), np.stack(boxes).astype(np.float64), np.stack(valid)


class JhmdbDataset(Dataset):
    def __init__(self, groundtruth: str | Path | JhmdbGroundTruth, frames_root: str | Path, *,
                 frame_pattern: str = "{video_id}/{frame:05d}.png", split: int = 1, subset: str = "train",
                 num_frames: int = 8, frame_sample_rate: int = 1, centre_stride: int = 1,
                 train_short_side: Sequence[int] = (224, 256), crop_size: int = 224, val_short_side: int = 240,
                 flip_prob: float = 0.5, min_box_size: float = 2.0, skip_corrupt_frames: bool = False) -> None:
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
        self.gt = groundtruth if isinstance(groundtruth, JhmdbGroundTruth) else read_groundtruth_pickle(groundtruth)
        self.subset, self.split = subset, split
        self.num_frames, self.frame_sample_rate = num_frames, frame_sample_rate
        self.train_short_side, self.crop_size, self.val_short_side = list(train_short_side), crop_size, val_short_side
        self.flip_prob, self.min_box_size, self.skip_corrupt_frames = flip_prob, min_box_size, skip_corrupt_frames
        self.videos = self.gt.train_videos_of(split) if subset == "train" else self.gt.test_videos_of(split)
        infos = {v: VideoInfo(self.gt.frames(v), *self.gt.resolution[v]) for v in self.videos}
        self.source = JpegFrameSource(frames_root, frame_pattern, first_frame_number=1, videos=infos)
        self.samples = [(v, c) for v in self.videos for c in range(0, self.gt.frames(v), centre_stride)]
        self._skipped_samples, self._replaced_frames = SharedCounter(), SharedCounter()

    @property
    def class_names(self) -> list[str]:
        return list(self.gt.labels)

    def __len__(self) -> int:
        return len(self.samples)

    def skip_counts(self) -> dict[str, int]:
        """Cumulative skips of this dataset in all worker processes (the trainer reports them per epoch)."""
        return {"skipped_samples": self._skipped_samples.value, "replaced_frames": self._replaced_frames.value}

    def frame_indices(self, video: str, centre: int) -> np.ndarray:
        """0-based frame indices of the clip centred on 0-based frame ``centre`` of ``video``."""
        return clip_frame_indices(centre, self.num_frames, self.frame_sample_rate, self.gt.frames(video))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        video, centre = self.samples[i]
        return self.load_clip(video, centre)

    def load_clip(self, video: str, centre: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """The clip centred on 0-based frame ``centre`` and its tube targets (``None``: skipped as unreadable)."""
        keep_large_allocations_in_worker_heap()
        h, w = self.gt.resolution[video]
        plan = self._plan((h, w))
        indices = self.frame_indices(video, centre)

        def replaced(k: int, nearest: int, e: FrameReadError) -> None:
            self._replaced_frames.increment()
            logger.warning("replacing frame %d by %d in the clip of %s at frame %d: %s", k + 1, nearest + 1,
                           video, centre + 1, e)

        try:
            frames = read_clip_frames(self.source, video, indices, centre, plan.resized_hw,
                                      self.skip_corrupt_frames, replaced)
        except FrameReadError as e:
            if not self.skip_corrupt_frames:
                raise
            self._skipped_samples.increment()
            logger.warning("skipping the clip of %s at frame %d: %s", video, centre + 1, e)
            return None
        frame_ids = indices + 1
        labels, boxes, valid = clip_tubes(self.gt, video, frame_ids)
        n, t = valid.shape
        normalised = boxes / np.array([w, h, w, h], np.float64)
        min_size = self.min_box_size if self.subset == "train" else 0.0
        cxcywh, keep = transform_boxes(normalised.reshape(-1, 4), plan, frames.shape[1:3], min_size)
        valid = valid & keep.reshape(n, t)
        cxcywh = np.where(valid[..., None], cxcywh.reshape(n, t, 4), 0.0).astype(np.float32)
        alive = valid.any(1)
        pixels, cmap = transform_pixels(frames, plan)
        target = {
            "labels": torch.from_numpy(labels[alive]),
            "boxes": torch.from_numpy(cxcywh[alive]),
            "valid": torch.from_numpy(valid[alive]),
            "frame_ids": torch.from_numpy(frame_ids.astype(np.int64)),
            "video_id": video,
            "size": torch.tensor(plan.out_hw, dtype=torch.int64),
            "orig_size": torch.tensor((h, w), dtype=torch.int64),
            "colour_map": cmap,
        }
        return pixels, target

    def _plan(self, orig_hw: tuple[int, int]) -> ClipPlan:
        if self.subset == "train":
            return plan_train(orig_hw, self.train_short_side, self.crop_size, flip_prob=self.flip_prob)
        return plan_val(orig_hw, self.val_short_side)


def build_jhmdb_dataset(cfg, subset: str, **overrides: Any) -> JhmdbDataset:
    """:class:`JhmdbDataset` of ``subset`` ('train' or 'test') from a :class:`seqformer.config.Config`."""
    d = cfg.data
    kwargs: dict[str, Any] = dict(
        frame_pattern=d.jhmdb_frame_pattern, split=d.jhmdb_split, subset=subset, num_frames=cfg.model.num_frames,
        frame_sample_rate=d.frame_sample_rate, centre_stride=d.jhmdb_centre_stride,
        train_short_side=d.jhmdb_train_short_side, crop_size=d.jhmdb_crop_size, val_short_side=d.jhmdb_val_short_side,
        flip_prob=d.jhmdb_flip_prob, skip_corrupt_frames=d.skip_corrupt_frames)
    kwargs.update(overrides)
    return JhmdbDataset(d.jhmdb_groundtruth, d.jhmdb_frames, **kwargs)
