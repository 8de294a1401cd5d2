"""Tube overlap and tube NMS of the ACT/MOC video-mAP, vectorised, in the reference's float32 arithmetic.

Spatio-temporal tube IoU (``iou3dt`` of ACT-detector): over the temporal overlap ``[tmin, tmax]`` of two
tubes (0 when they do not overlap), the mean of the per-frame box IoUs -- pixels counted inclusively,
``(x2 - x1 + 1) * (y2 - y1 + 1)`` -- times ``(tmax - tmin + 1) / (temporal union)``.

The reference holds tubes as float32 arrays, so every step runs in float32 (under numpy >= 2 even the
scalar steps stay float32).  A threshold decision can flip on the last bit, so we reproduce the
arithmetic: the same element-wise operations in the same order, and the per-pair mean as a row mean of a
contiguous ``[pairs, L]`` block (numpy reduces each row with the same pairwise summation as a 1-D mean;
pairs are grouped by overlap length ``L`` for that).

Tube NMS (``nms3dt``): highest score first, drop the remaining tubes whose IoU with it exceeds the
threshold.  Equal scores are ordered stably (later input tube first, as a stable ascending sort taken
from the end); the reference's default ``np.argsort`` leaves that order to the numpy build.  The
reference compares its IoU list with 0.3 in float64 when that list contains a non-overlapping pair (a
Python ``0.0`` promotes it) and in float32 otherwise; the two differ only for an IoU of exactly
``float32(0.3)``, and we follow it there too.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_MAX_BLOCK = 1 << 21  # boxes gathered per vectorised step (bounds the temporaries)
ONE = np.float32(1)
ZERO = np.float32(0)


@dataclass
class TubeSet:
    """Tubes of consecutive frames, rows concatenated: tube ``t`` is ``boxes[offset[t]:offset[t] + length[t]]``."""

    boxes: np.ndarray  # float32 [R, 4]
    start: np.ndarray  # int64 [T], first frame
    length: np.ndarray  # int64 [T]
    offset: np.ndarray  # int64 [T]

    @classmethod
    def from_arrays(cls, tubes: list[np.ndarray]) -> TubeSet:
        """From ``(n, 5)`` arrays ``[frame, x1, y1, x2, y2]`` with consecutive frames (as float32)."""
        length = np.array([len(t) for t in tubes], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64) if len(tubes) else length
        rows = np.concatenate(tubes).astype(np.float32) if tubes else np.zeros((0, 5), np.float32)
        start = rows[offset, 0].astype(np.int64) if len(tubes) else length
        return cls(np.ascontiguousarray(rows[:, 1:5]), start, length, offset)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def end(self) -> np.ndarray:
        return self.start + self.length - 1


def box_iou_inclusive(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Per-element IoU of ``[..., 4]`` boxes with +1 pixel extents, in the operands' dtype.

    The operation order is the reference's ``overlap2d / (area2d(b1) + area2d(b2) - overlap)``.
    """
    xmin = np.maximum(b1[..., 0], b2[..., 0])
    ymin = np.maximum(b1[..., 1], b2[..., 1])
    xmax = np.minimum(b1[..., 2] + ONE, b2[..., 2] + ONE)
    ymax = np.minimum(b1[..., 3] + ONE, b2[..., 3] + ONE)
    overlap = np.maximum(ZERO, xmax - xmin) * np.maximum(ZERO, ymax - ymin)
    area1 = (b1[..., 2] - b1[..., 0] + ONE) * (b1[..., 3] - b1[..., 1] + ONE)
    area2 = (b2[..., 2] - b2[..., 0] + ONE) * (b2[..., 3] - b2[..., 1] + ONE)
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate GT boxes: as numpy, nan/inf
        return overlap / (area1 + area2 - overlap)


def tube_iou(first: TubeSet, a: np.ndarray, second: TubeSet, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``iou3dt(first[a[k]], second[b[k]])`` for every pair ``k``: (float32 IoU, temporal-overlap flag).

    Non-overlapping pairs get IoU 0 and flag False (the reference returns a Python ``0.0`` for them).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    sa, ea, sb, eb = first.start[a], first.end[a], second.start[b], second.end[b]
    tmin, tmax = np.maximum(sa, sb), np.minimum(ea, eb)
    overlaps = tmax >= tmin
    iou = np.zeros(len(a), dtype=np.float32)
    pairs = np.flatnonzero(overlaps)
    if pairs.size == 0:
        return iou, overlaps
    inter = tmax[pairs] - tmin[pairs] + 1
    union = np.maximum(ea[pairs], eb[pairs]) - np.minimum(sa[pairs], sb[pairs]) + 1
    temporal = inter.astype(np.float32) / union.astype(np.float32)
    # Row k of the overlap: first-tube row offset[a] + (tmin - start[a]) + k, likewise for the second.
    row_a = first.offset[a[pairs]] + (tmin[pairs] - sa[pairs])
    row_b = second.offset[b[pairs]] + (tmin[pairs] - sb[pairs])
    order = np.argsort(inter, kind="stable")
    bounds = np.flatnonzero(np.diff(inter[order])) + 1
    for chunk in np.split(order, bounds):
        length = int(inter[chunk[0]])
        step = max(1, _MAX_BLOCK // length)
        for lo in range(0, len(chunk), step):
            sel = chunk[lo:lo + step]
            ks = np.arange(length, dtype=np.int64)
            per_frame = box_iou_inclusive(first.boxes[row_a[sel, None] + ks], second.boxes[row_b[sel, None] + ks])
            iou[pairs[sel]] = np.ascontiguousarray(per_frame).mean(axis=1) * temporal[sel]
    return iou, overlaps


def tube_nms(tubes: TubeSet, groups: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Greedy tube NMS within each group; returns kept tube indices, by group id then pick order.

    ``groups`` (int, one per tube) separates videos x labels; within a group the input order of the
    tubes is their list order for tie-breaking.  ``scores`` are float32 (the reference's dtype).
    """
    groups = np.asarray(groups, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    by_group = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[by_group])) + 1
    members = np.split(by_group, bounds) if len(groups) else []
    # All within-group pairs (i < j) at once, then a small greedy loop per group on its IoU matrix.
    pair_a, pair_b, pair_group = [], [], []
    for g, m in enumerate(members):
        if len(m) > 1:
            i, j = _pairs(len(m))
            pair_a.append(m[i])
            pair_b.append(m[j])
            pair_group.append(np.full(len(i), g))
    if pair_a:
        pa, pb = np.concatenate(pair_a), np.concatenate(pair_b)
        iou, overlaps = tube_iou(tubes, pa, tubes, pb)
        pair_start = np.concatenate([[0], np.cumsum([len(x) for x in pair_a])])
    kept: list[np.ndarray] = []
    f32_threshold = np.float32(threshold)
    n_pair_groups = 0
    for m in members:
        n = len(m)
        if n == 1:
            kept.append(m)
            continue
        lo, hi = pair_start[n_pair_groups], pair_start[n_pair_groups + 1]
        n_pair_groups += 1
        i, j = _pairs(n)
        matrix = np.zeros((n, n), dtype=np.float32)
        overlap = np.zeros((n, n), dtype=bool)
        matrix[i, j] = matrix[j, i] = iou[lo:hi]
        overlap[i, j] = overlap[j, i] = overlaps[lo:hi]
        remaining = np.argsort(scores[m], kind="stable")
        picks = []
        while remaining.size:
            best, rest = remaining[-1], remaining[:-1]
            picks.append(best)
            values = matrix[rest, best]
            if overlap[rest, best].all():
                keep = values <= f32_threshold
            else:  # the reference's list held a Python 0.0: float64 comparison
                keep = values.astype(np.float64) <= threshold
            remaining = rest[keep]
        kept.append(m[np.asarray(picks, dtype=np.int64)])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


@lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of ``n`` tubes (cached: groups of the same size recur)."""
    return np.triu_indices(n, k=1)
