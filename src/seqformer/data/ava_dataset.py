"""AVA-format spatio-temporal action detection dataset (official CSV/pbtxt files, JPEG frames or videos).

One sample per annotated keyframe ``(video_id, second)``, in sorted order.  A sample is a clip of
``num_frames`` frames, ``frame_sample_rate`` apart, with the keyframe at position
``num_frames // 2``; at a video boundary the edge frame is repeated so the keyframe keeps its
position (the fork instead shifted the window, moving the keyframe).  Clips come out as uint8
``[T,3,H,W]`` pixels with ``target["colour_map"]`` (colour jitter + normalisation, applied by the
model on its device: :meth:`seqformer.structures.ClipBatch.normalized`).  Keyframe second
``S`` is frame index ``(S - start_second) * fps`` (AVA: ``(S - 900) * 30``) of a timeline whose
frame ``k`` is stored at ``frame_pattern.format(video_id=..., frame=k + first_frame_number)``.

Targets: one row per unique (box, person_id) of the keyframe (per identical box when the CSV has no
person ids), with a multi-hot over the label map *in file order* (column j = j-th pbtxt entry, so
any ids, any number of classes).  Rows whose action id is not in the label map are ignored; boxes
left without any action are dropped and counted in :attr:`AVADataset.stats`.

Custom datasets need no code, only files in the AVA formats and these settings:

- ``fps`` / ``start_second``: frame rate of the extracted timeline and the second of its first
  frame (e.g. 25 fps from second 0).  A ``frames_index.json`` in the frames root (written by
  ``seqformer prepare ava`` / ``synth ava``) must agree with them, and gives frame counts and sizes;
  without it they are probed from the files;
- ``frame_pattern`` (+ ``first_frame_number``, default 1): e.g. ``"{video_id}/img_{frame:05d}.jpg"``;
- ``video_dir`` instead of frames: decode clips from ``<video_dir>/<video_id>.<ext>`` with PyAV;
- label map: any ids/names; videos may have any length; keyframes any seconds;
- ``keyframe_list``: a ``video_id,second`` CSV of extra keyframes to include with zero boxes
  (e.g. unannotated seconds as negatives).

Bad data: a malformed CSV raises naming file and line (``seqformer.data.ava_format``).  A missing or
corrupt frame raises :class:`FrameReadError` naming the file.  With ``skip_corrupt_frames`` a bad
non-key frame is replaced by the nearest good frame of the clip and a sample whose keyframe (or
video) is unreadable is skipped: ``__getitem__`` returns ``None``, :func:`seqformer.data.collate.collate_ava` drops it, and
both are counted in :meth:`AVADataset.skip_counts` (shared across DataLoader workers).  A sample is
never silently swapped for another one.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from seqformer.config import ConfigError
from seqformer.data.ava_format import read_ava_csv, read_exclusions, read_labelmap
from seqformer.data.ava_transforms import ClipPlan, plan_train, plan_val, transform_boxes, transform_pixels
from seqformer.data.clip_sampling import clip_frame_indices, read_clip_frames
from seqformer.data.collate import keep_large_allocations_in_worker_heap
from seqformer.data.shared_counter import SharedCounter
from seqformer.data.video_reader import FrameReadError, JpegFrameSource, VideoFileSource, read_frames_index
from seqformer.errors import warn

logger = logging.getLogger(__name__)
_BOX_KEYS = ["video_id", "second", "x1", "y1", "x2", "y2", "person_id"]


class AVADataset(Dataset):
    def __init__(self, csv_path: str | Path, labelmap: str | Path, *, split: str = "train",
                 frames_root: str | Path | None = None,
                 frame_pattern: str = "{video_id}/{video_id}_{frame:06d}.jpg", first_frame_number: int = 1,
                 video_dir: str | Path | None = None, num_frames: int = 32, frame_sample_rate: int = 2,
                 fps: float = 30, start_second: float = 900, train_short_side: Sequence[int] = (256, 320),
                 crop_size: int = 256, val_short_side: int = 256, exclusions: str | Path | None = None,
                 keyframe_list: str | Path | None = None, skip_corrupt_frames: bool = False,
                 min_box_size: float = 2.0, flip_prob: float = 0.5,
                 flip_pairs: Sequence[Sequence[int]] = ()) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if frames_root is None and video_dir is None:
            raise ValueError("AVADataset needs frames_root (extracted frames) or video_dir (video files)")
        self.split, self.num_frames, self.frame_sample_rate = split, num_frames, frame_sample_rate
        self.fps, self.start_second = fps, start_second
        self.train_short_side, self.crop_size, self.val_short_side = list(train_short_side), crop_size, val_short_side
        self.skip_corrupt_frames, self.min_box_size = skip_corrupt_frames, min_box_size
        self.labelmap = read_labelmap(labelmap)
        self.class_ids = [class_id for class_id, _ in self.labelmap]
        self.class_names = [name for _, name in self.labelmap]
        # A horizontal flip turns e.g. "walk left" into "walk right": swap such label-map columns.
        self.flip_prob = flip_prob
        self.flip_permutation = np.arange(len(self.class_ids))
        column = {class_id: j for j, class_id in enumerate(self.class_ids)}
        for pair in flip_pairs:
            if len(pair) != 2 or any(c not in column for c in pair):
                raise ConfigError(f"data.ava_flip_pairs: flip pair {list(pair)} must name two class ids of {labelmap}")
            a, b = column[pair[0]], column[pair[1]]
            self.flip_permutation[a], self.flip_permutation[b] = b, a
        if video_dir is not None:
            self.source: JpegFrameSource | VideoFileSource = VideoFileSource(video_dir, fps, start_second)
        else:
            self.source = self._jpeg_source(Path(frames_root), frame_pattern, first_frame_number)
        excluded = read_exclusions(exclusions) if exclusions else set()
        extra = read_exclusions(keyframe_list) if keyframe_list else set()
        self.stats: dict[str, int] = {}
        self._build_index(read_ava_csv(csv_path, "gt"), excluded, extra)
        self._skipped_samples, self._replaced_frames = SharedCounter(), SharedCounter()
        if self.stats["rows_outside_labelmap"]:
            warn(f"{csv_path}: {self.stats['rows_outside_labelmap']} of {self.stats['rows']} rows have an action id "
                 f"outside {labelmap} and are ignored ({self.stats['boxes_without_labels']} boxes left without "
                 f"any action are dropped)")
        self._check_keyframes_in_range(csv_path)

    def _check_keyframes_in_range(self, csv_path) -> None:
        """Every keyframe must map onto an extracted frame: checked once, all reported at once.

        A wrong ``start_second``/``fps`` otherwise surfaces one keyframe at a time inside the first
        epoch.  Videos without frames are left to the reader, whose error names the missing file.  With ``skip_corrupt_frames`` the keyframes stay in the index (their samples are
        skipped and counted when read) and a warning gives the count.
        """
        problems: list[str] = []
        for video_index, video_id in enumerate(self.video_ids):
            seconds = self._key_second[self._key_video == video_index]
            try:
                num_frames = self.source.info(video_id).num_frames
            except FrameReadError:  # a missing video is reported, naming its files, when it is read
                continue
            frames = np.rint((seconds - self.start_second) * self.fps).astype(np.int64)
            problems += [f"{video_id},{int(s)} -> frame {int(k)} of {num_frames}"
                         for s, k in zip(seconds, frames) if not 0 <= k < num_frames]
        if not problems:
            return
        message = (f"{csv_path}: {len(problems)} of {len(self)} keyframes fall outside the extracted frames "
                   f"(frame = (second - data.ava_start_second={self.start_second:g}) * data.ava_fps={self.fps:g}); "
                   f"first: {'; '.join(problems[:3])}")
        if self.skip_corrupt_frames:
            warn(message + "; data.skip_corrupt_frames=true: these samples will be skipped and counted")
            return
        raise ConfigError(message + "; fix data.ava_start_second / data.ava_fps (see frames_index.json) or set "
                                    "data.skip_corrupt_frames=true to skip them")

    def _jpeg_source(self, root: Path, pattern: str, first_frame_number: int) -> JpegFrameSource:
        index = read_frames_index(root)
        if index is None:
            return JpegFrameSource(root, pattern, first_frame_number)
        if abs(index.fps - self.fps) > 1e-6 or abs(index.start_second - self.start_second) > 1e-6:
            raise ConfigError(
                f"{root}/frames_index.json says the frames are at {index.fps:g} fps from second "
                f"{index.start_second:g}, but the dataset was given fps={self.fps:g}, start_second="
                f"{self.start_second:g}; set data.ava_fps={index.fps:g} data.ava_start_second={index.start_second:g}")
        return JpegFrameSource(root, pattern, first_frame_number, index.videos)

    def _build_index(self, table, excluded: set[tuple[str, int]], extra: set[tuple[str, int]]) -> None:
        column_of = {class_id: j for j, class_id in enumerate(self.class_ids)}
        rows = pd.DataFrame({"video_id": table.video_ids.astype(str), "second": table.seconds,
                             "x1": table.boxes[:, 0], "y1": table.boxes[:, 1], "x2": table.boxes[:, 2],
                             "y2": table.boxes[:, 3], "person_id": table.person_ids,
                             "column": pd.Series(table.action_ids).map(column_of).fillna(-1).astype(np.int64)})
        is_excluded = pd.MultiIndex.from_arrays([rows.video_id, rows.second]).isin(list(excluded)) \
            if excluded else np.zeros(len(rows), bool)
        all_keys = rows[["video_id", "second"]].drop_duplicates()
        self.stats.update(rows=len(rows), rows_excluded=int(is_excluded.sum()),
                          keyframes_excluded=int(pd.MultiIndex.from_frame(all_keys).isin(list(excluded)).sum())
                          if excluded else 0)
        rows = rows[~is_excluded]
        labelled = rows[rows.column >= 0]
        groups = labelled.groupby(_BOX_KEYS, sort=True)
        box_table = groups.size().reset_index()[_BOX_KEYS]
        labels = np.zeros((len(box_table), len(self.class_ids)), np.float32)
        labels[groups.ngroup().to_numpy(), labelled.column.to_numpy()] = 1.0
        n_boxes_any = len(rows.drop_duplicates(_BOX_KEYS))
        key_labels = set(zip(box_table.video_id, box_table.second.tolist()))
        key_rows = set(zip(rows.video_id, rows.second.tolist()))
        self.stats.update(rows_outside_labelmap=int((rows.column < 0).sum()), boxes=len(box_table),
                          boxes_without_labels=n_boxes_any - len(box_table),
                          keyframes_without_labels=len(key_rows - key_labels - extra))
        # Boxes are sorted by (video, second, ...): each keyframe is one contiguous range.
        box_vid, box_sec = box_table.video_id.to_numpy(), box_table.second.to_numpy()
        change = np.flatnonzero((box_vid[1:] != box_vid[:-1]) | (box_sec[1:] != box_sec[:-1])) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        ranges = {(box_vid[s], int(box_sec[s])): (int(s), int(e))
                  for s, e in zip(starts, np.append(starts[1:], len(box_table)))} if len(box_table) else {}
        keys = sorted(set(ranges) | (extra - excluded))
        self.stats.update(keyframes=len(keys), empty_keyframes=len(keys) - len(ranges))
        self.video_ids = sorted({v for v, _ in keys})
        video_index = {v: i for i, v in enumerate(self.video_ids)}
        self._key_video = np.array([video_index[v] for v, _ in keys], np.int64)
        self._key_second = np.array([s for _, s in keys], np.int64)
        self._key_boxes = np.array([ranges.get(k, (0, 0)) for k in keys], np.int64).reshape(-1, 2)
        self._boxes = box_table[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        self._labels = labels

    def __len__(self) -> int:
        return len(self._key_second)

    def key(self, i: int) -> tuple[str, int]:
        return self.video_ids[self._key_video[i]], int(self._key_second[i])

    def annotations(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe ``i``'s boxes (normalised xyxy of the full frame) and multi-hot labels, untransformed."""
        start, end = self._key_boxes[i]
        return self._boxes[start:end], self._labels[start:end]

    def skip_counts(self) -> dict[str, int]:
        """Cumulative skips of this dataset in all worker processes (report them at the end of an epoch)."""
        return {"skipped_samples": self._skipped_samples.value, "replaced_frames": self._replaced_frames.value}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        keep_large_allocations_in_worker_heap()
        video_id, second = self.key(i)
        try:
            info = self.source.info(video_id)
            plan = self._plan((info.height, info.width))
            frames = self._read_clip(video_id, second, info.num_frames, plan.resized_hw)
        except FrameReadError as e:
            if not self.skip_corrupt_frames:
                raise
            self._skipped_samples.increment()
            logger.warning("skipping keyframe %s,%d: %s", video_id, second, e)
            return None
        boxes, labels = self.annotations(i)
        cxcywh, keep = transform_boxes(boxes, plan, frames.shape[1:3],
                                       self.min_box_size if self.split == "train" else 0.0)
        if plan.flip:
            labels = labels[:, self.flip_permutation]
        pixels, cmap = transform_pixels(frames, plan)
        target = {
            "boxes": torch.from_numpy(cxcywh[keep]),
            "labels": torch.from_numpy(labels[keep]),
            "key_frame": torch.tensor(self.num_frames // 2, dtype=torch.int64),
            "video_id": video_id,
            "second": second,
            "size": torch.tensor(plan.out_hw, dtype=torch.int64),
            "orig_size": torch.tensor((info.height, info.width), dtype=torch.int64),
            "colour_map": cmap,
        }
        return pixels, target

    def _plan(self, orig_hw: tuple[int, int]) -> ClipPlan:
        if self.split == "train":
            return plan_train(orig_hw, self.train_short_side, self.crop_size, flip_prob=self.flip_prob)
        return plan_val(orig_hw, self.val_short_side)

    def _read_clip(self, video_id: str, second: int, video_frames: int, want_hw: tuple[int, int]) -> np.ndarray:
        key = int(round((second - self.start_second) * self.fps))
        if not 0 <= key < video_frames:
            raise FrameReadError(
                f"keyframe {video_id},{second} is frame {key} ((second - {self.start_second:g}) * {self.fps:g}) "
                f"but the video has {video_frames} frames")
        indices = clip_frame_indices(key, self.num_frames, self.frame_sample_rate, video_frames)
        if isinstance(self.source, VideoFileSource):
            return self.source.read_clip(video_id, indices.tolist())

        def replaced(k: int, nearest: int, e: FrameReadError) -> None:
            self._replaced_frames.increment()
            logger.warning("replacing frame %d by %d in keyframe %s,%d: %s", k, nearest, video_id, second, e)

        return read_clip_frames(self.source, video_id, indices, key, want_hw, self.skip_corrupt_frames, replaced)


def build_ava_dataset(cfg, split: str, **overrides: Any) -> AVADataset:
    """``AVADataset`` for ``split`` ('train' or 'val') from a :class:`seqformer.config.Config`."""
    d = cfg.data
    kwargs: dict[str, Any] = dict(
        split=split, frames_root=d.ava_frames, frame_pattern=d.ava_frame_pattern, video_dir=d.ava_video_dir,
        num_frames=cfg.model.num_frames, frame_sample_rate=d.frame_sample_rate, fps=d.ava_fps,
        start_second=d.ava_start_second, train_short_side=d.ava_train_short_side, crop_size=d.ava_crop_size,
        val_short_side=d.ava_val_short_side, exclusions=d.ava_exclusions, skip_corrupt_frames=d.skip_corrupt_frames,
        flip_prob=d.ava_flip_prob, flip_pairs=d.ava_flip_pairs)
    kwargs.update(overrides)
    csv_path = d.ava_train_csv if split == "train" else d.ava_val_csv
    return AVADataset(csv_path, d.ava_labelmap, **kwargs)
