"""Greedy matching, precision/recall accumulation and the 12 summary numbers of ``ytvoseval``.

Vectorised with numpy but decision-for-decision identical to the official loops:

* detections are taken in stable (mergesort) descending-score order, at most 100 per
  (video, category); a match needs IoU >= threshold; among the available ground truths the
  highest IoU wins and, on ties, the *last* one in annotation order (the official loop replaces
  its best match on ``>=``); non-ignored ground truths are preferred over ignored ones; crowd
  ground truths can absorb any number of detections;
* a detection matched to a ground truth whose id is 0 counts as unmatched (the official code
  stores ids and tests them for truthiness);
* unmatched detections whose average area lies outside the area range are ignored;
* precision uses the backward running maximum and ``searchsorted(side='left')`` at the 101
  recall thresholds; settings without non-ignored ground truth stay -1 and are left out of means.
"""
from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0 ** 2, 1e5 ** 2), (0 ** 2, 128 ** 2), (128 ** 2, 256 ** 2), (256 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

_LO = np.array([r[0] for r in AREA_RANGES], dtype=np.float64)
_HI = np.array([r[1] for r in AREA_RANGES], dtype=np.float64)
# Same expression as the official ``min([t, 1 - 1e-10])`` starting value of the match loop.
_MATCH_FLOOR = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)


def outside_area_ranges(avg_area: np.ndarray) -> np.ndarray:
    """[A, N] bool: average area outside each area range (the bounds themselves are inside)."""
    avg = np.asarray(avg_area, dtype=np.float64)[None, :]
    return (avg < _LO[:, None]) | (avg > _HI[:, None])


def match_group(ious: np.ndarray, det_avg_area: np.ndarray, gt_ids: np.ndarray, gt_crowd: np.ndarray,
                gt_avg_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Official ``evaluateVid`` for one (video, category): TP and FP flags [A, T, D].

    ``ious`` [D, G] rows must be in stable descending-score order, cut to 100 detections; the
    ground-truth arrays are in annotation order.
    """
    num_det, num_gt = ious.shape
    num_area, num_thr = len(AREA_RANGES), len(IOU_THRESHOLDS)
    gt_ignore = gt_crowd[None, :] | outside_area_ranges(gt_avg_area)  # [A, G]
    match = np.full((num_area, num_thr, num_det), -1, dtype=np.int64)
    if num_gt == 1:
        _match_single_gt(ious[:, 0], bool(gt_crowd[0]), match)
    elif num_gt > 1:
        _match_general(ious, gt_ignore, gt_crowd, match)
    matched = match >= 0
    safe = np.where(matched, match, 0)
    if num_gt:
        matched_ignored = matched & np.take_along_axis(
            np.broadcast_to(gt_ignore[:, None, :], (num_area, num_thr, num_gt)), safe, axis=2)
        has_id = matched & (gt_ids[safe] != 0)
    else:
        matched_ignored = has_id = np.zeros_like(matched)
    det_ignore = matched_ignored | (~has_id & outside_area_ranges(det_avg_area)[:, None, :])
    return has_id & ~det_ignore, ~has_id & ~det_ignore


def _match_single_gt(iou: np.ndarray, crowd: bool, match: np.ndarray) -> None:
    """One ground truth: the first detection reaching the threshold takes it (all, if crowd)."""
    reaches = iou[None, :] >= _MATCH_FLOOR[:, None]  # [T, D]
    if crowd:
        taken = reaches
    else:
        first = np.argmax(reaches, axis=1)
        taken = np.zeros_like(reaches)
        rows = np.flatnonzero(reaches.any(axis=1))
        taken[rows, first[rows]] = True
    match[:] = np.where(taken, 0, -1)[None]


def _match_general(ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, match: np.ndarray) -> None:
    """Sequential greedy over detections, vectorised over (area range, threshold) settings."""
    num_area, num_thr, _ = match.shape
    num_gt = ious.shape[1]
    taken = np.zeros((num_area, num_thr, num_gt), dtype=bool)
    ignore = np.broadcast_to(gt_ignore[:, None, :], taken.shape)
    floor = _MATCH_FLOOR[None, :, None]
    reversed_index = num_gt - 1
    for d in np.flatnonzero(ious.max(axis=1) >= _MATCH_FLOOR[0]):
        row = ious[d]
        ok = (~taken | gt_crowd) & (row >= floor)  # [A, T, G]
        ok_regular = ok & ~ignore
        pool = np.where(ok_regular.any(axis=2, keepdims=True), ok_regular, ok & ignore)
        vals = np.where(pool, row, -1.0)
        best = vals.max(axis=2, keepdims=True)
        last = reversed_index - np.argmax((vals == best)[:, :, ::-1], axis=2)
        hit = pool.any(axis=2)
        match[:, :, d] = np.where(hit, last, -1)
        a_idx, t_idx = np.nonzero(hit)
        taken[a_idx, t_idx, last[a_idx, t_idx]] = True


def accumulate(category: np.ndarray, video_order: np.ndarray, rank: np.ndarray, scores: np.ndarray,
               true_pos: np.ndarray, false_pos: np.ndarray, num_gt_not_ignored: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Official ``accumulate``: precision [T, R, K, A, M] and recall [T, K, A, M], -1 where undefined.

    One entry per evaluated detection (at most 100 per (video, category)): its category index,
    the position of its video in ascending id order, its rank inside its (video, category) and
    its TP/FP flags [A, T, N]. The official code concatenates groups in video order, ranks within,
    then sorts stably by score; a lexicographic sort on (-score, video, rank) is the same order.
    ``num_gt_not_ignored`` [K, A]; a setting without any stays -1 (no ground truth: left out).
    """
    num_thr, num_rec, num_area, num_max = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    num_cat = num_gt_not_ignored.shape[0]
    precision = -np.ones((num_thr, num_rec, num_cat, num_area, num_max))
    recall = -np.ones((num_thr, num_cat, num_area, num_max))
    order = np.lexsort((rank, video_order, -scores, category))
    for m, max_det in enumerate(MAX_DETS):
        kept = order[rank[order] < max_det]
        bounds = np.searchsorted(category[kept], np.arange(num_cat + 1), side="left")
        for k in range(num_cat):
            sel = kept[bounds[k]:bounds[k + 1]]
            for a in range(num_area):
                npig = int(num_gt_not_ignored[k, a])
                if npig == 0:
                    continue
                tp_sum = np.cumsum(true_pos[a][:, sel], axis=1).astype(dtype=np.float64)
                fp_sum = np.cumsum(false_pos[a][:, sel], axis=1).astype(dtype=np.float64)
                _precision_recall(tp_sum, fp_sum, npig, precision[:, :, k, a, m], recall[:, k, a, m])
    return precision, recall


def _precision_recall(tp_sum: np.ndarray, fp_sum: np.ndarray, npig: int, precision_out: np.ndarray,
                      recall_out: np.ndarray) -> None:
    num_det = tp_sum.shape[1]
    rc = tp_sum / npig
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    recall_out[:] = rc[:, -1] if num_det else 0
    envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    for t in range(tp_sum.shape[0]):
        inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
        valid = inds < num_det
        q = np.zeros(len(RECALL_THRESHOLDS))
        q[valid] = envelope[t, inds[valid]]
        precision_out[t] = q


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The 12 official ``_summarizeDets`` numbers (mean over entries > -1, else -1)."""

    def mean_of(ap: bool, iou_thr: float | None = None, area: str = "all", max_dets: int = 100) -> float:
        a = [i for i, lbl in enumerate(AREA_LABELS) if lbl == area]
        m = [i for i, md in enumerate(MAX_DETS) if md == max_dets]
        s = precision if ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        valid = s[s > -1]
        return -1.0 if len(valid) == 0 else float(np.mean(valid))

    values = [
        mean_of(True), mean_of(True, 0.5), mean_of(True, 0.75),
        mean_of(True, area="small"), mean_of(True, area="medium"), mean_of(True, area="large"),
        mean_of(False, max_dets=1), mean_of(False, max_dets=10), mean_of(False, max_dets=100),
        mean_of(False, area="small"), mean_of(False, area="medium"), mean_of(False, area="large"),
    ]
    return dict(zip(STAT_KEYS, values))
