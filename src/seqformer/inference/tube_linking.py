"""Linking clip tubelets into video tubes, and video tubes into per-frame detections (JHMDB-21, UCF101-24).

A model sees one clip at a time; prediction slides overlapping clips over a video and every query of
every clip proposes a *tubelet*: a label, a class score, and per clip frame a box and a presence
probability.  This module turns them into what the ACT/MOC evaluation scores (docs/jhmdb_ucf.md):

**Tubelet** (:func:`make_tubelet`): frames the clip sampled more than once (edge repeats at the video's
ends) are averaged; with a frame stride > 1 the frames between two sampled frames get linearly
interpolated boxes and presence, so a tubelet covers every frame from its first to its last.

**Linking** (:func:`link_tubelets`), per label, clips in temporal order, with the greedy rule of
MOC-Detector's ``BuildTubes``: the *active* tubes (those extended by the previous clip), highest mean score
first, each take the highest-scoring still free tubelet of their label whose overlap with the tube reaches
``link_iou`` (MOC: 0.5); the tubelets left start new tubes and a tube not extended ends.  The overlap is the
mean box IoU over the frames the tubelet shares with the tube (MOC: with the tube's last tubelet).  A
tube's box and presence at a frame are the means over the tubelets covering it, its score the mean of its
tubelets' class scores.  Clips must overlap in time for tubes to continue across them.

**Extent**: a tube is trimmed to the frames between the first and the last whose presence reaches
``presence_threshold``; a tube with no such frame is dropped.  Inside that extent it stays consecutive
(the format needs consecutive frames).

**Frame detections** (:func:`frame_detections`): each frame of a tube gives one detection of the tube's
label with score ``tube score x presence``; then per frame and label a greedy NMS at ``frame_nms``
(MOC applies a per-frame, per-label NMS at 0.6 before its frame-mAP; 1 disables it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import batched_nms


@dataclass
class Tubelet:
    label: int  # 0-based
    score: float  # class score of the query
    frames: np.ndarray  # [n] int64 consecutive 1-based frames
    boxes: np.ndarray  # [n, 4] float64 xyxy pixels
    presence: np.ndarray  # [n] float64 presence probability


@dataclass
class Tube:
    label: int
    score: float
    frames: np.ndarray  # [n] consecutive 1-based frames
    boxes: np.ndarray  # [n, 4]
    presence: np.ndarray  # [n]


def make_tubelet(label: int, score: float, frame_ids: np.ndarray, boxes: np.ndarray, presence: np.ndarray) -> Tubelet:
    """A tubelet from a clip's per-position ``frame_ids [T]``, ``boxes [T,4]`` and ``presence [T]``.

    Repeated frame ids are averaged; frames between sampled ones are linearly interpolated.
    """
    frame_ids = np.asarray(frame_ids, np.int64)
    unique, inverse = np.unique(frame_ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    sums = np.zeros((len(unique), 5))
    np.add.at(sums, inverse, np.concatenate([np.asarray(boxes, np.float64).reshape(-1, 4),
                                             np.asarray(presence, np.float64).reshape(-1, 1)], 1))
    mean = sums / counts[:, None]
    frames = np.arange(unique[0], unique[-1] + 1)
    values = np.stack([np.interp(frames, unique, mean[:, c]) for c in range(5)], 1)
    return Tubelet(int(label), float(score), frames, values[:, :4], values[:, 4])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row IoU of two ``[n,4]`` xyxy arrays (0 for empty unions)."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class _Growing:
    """A tube under construction: per-frame sums of the boxes/presence of the tubelets covering the frame."""

    label: int
    last_clip: int
    scores: list[float] = field(default_factory=list)
    sums: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> [x1, y1, x2, y2, presence]
    counts: dict[int, int] = field(default_factory=dict)

    def add(self, t: Tubelet, clip: int) -> None:
        self.last_clip = clip
        self.scores.append(t.score)
        for f, box, p in zip(t.frames.tolist(), t.boxes, t.presence):
            row = np.append(box, p)
            self.sums[f] = self.sums[f] + row if f in self.sums else row
            self.counts[f] = self.counts.get(f, 0) + 1

    def overlap(self, t: Tubelet) -> float:
        shared = [i for i, f in enumerate(t.frames.tolist()) if f in self.sums]
        if not shared:
            return -1.0
        mine = np.stack([self.sums[f][:4] / self.counts[f] for f in t.frames[shared].tolist()])
        return float(box_iou(mine, t.boxes[shared]).mean())

    def finish(self, presence_threshold: float) -> Tube | None:
        frames = np.array(sorted(self.sums), np.int64)
        values = np.stack([self.sums[f] / self.counts[f] for f in frames.tolist()])
        full = np.arange(frames[0], frames[-1] + 1)  # a gap cannot occur with overlapping clips; fill it anyway
        values = np.stack([np.interp(full, frames, values[:, c]) for c in range(5)], 1)
        alive = np.flatnonzero(values[:, 4] >= presence_threshold)
        if len(alive) == 0:
            return None
        keep = slice(alive[0], alive[-1] + 1)
        return Tube(self.label, float(np.mean(self.scores)), full[keep], values[keep, :4], values[keep, 4])


def link_tubelets(clips: list[list[Tubelet]], link_iou: float = 0.5, presence_threshold: float = 0.5) -> list[Tube]:
    """Video tubes from the tubelets of each clip (``clips`` in temporal order); see the module docstring."""
    growing: list[_Growing] = []
    for c, tubelets in enumerate(clips):
        pool = sorted(tubelets, key=lambda t: -t.score)  # stable: equal scores keep the query order
        taken = [False] * len(pool)
        active = [tube for tube in growing if tube.last_clip == c - 1]
        for tube in sorted(active, key=lambda tube: -float(np.mean(tube.scores))):
            for i, t in enumerate(pool):  # the best-scoring free tubelet of the label that overlaps enough
                if not taken[i] and t.label == tube.label and tube.overlap(t) >= link_iou:
                    tube.add(t, c)
                    taken[i] = True
                    break
        for t, was_taken in zip(pool, taken):
            if not was_taken:
                growing.append(_Growing(t.label, c))
                growing[-1].add(t, c)
    tubes = [tube.finish(presence_threshold) for tube in growing]
    return [t for t in tubes if t is not None]


def frame_detections(tubes: list[Tube], frame_nms: float = 0.6
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame detections of one video's tubes: ``(frames [n], boxes [n,4], labels [n] 0-based, scores [n])``.

    Score = tube score x presence at the frame; then NMS per (frame, label) at ``frame_nms`` (>= 1: none).
    Rows come out by frame, then by descending score.
    """
    if not tubes:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0)
    frames = np.concatenate([t.frames for t in tubes])
    boxes = np.concatenate([t.boxes for t in tubes])
    labels = np.concatenate([np.full(len(t.frames), t.label, np.int64) for t in tubes])
    scores = np.concatenate([t.score * t.presence for t in tubes])
    if frame_nms < 1:
        groups = torch.as_tensor(frames * (labels.max() + 1) + labels)
        keep = batched_nms(torch.as_tensor(boxes), torch.as_tensor(scores), groups, frame_nms).numpy()
    else:
        keep = np.arange(len(frames))
    order = keep[np.lexsort((-scores[keep], frames[keep]))]
    return frames[order], boxes[order], labels[order], scores[order]
