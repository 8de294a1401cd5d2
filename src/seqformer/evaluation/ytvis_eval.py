"""YouTube-VIS / OVIS video mask AP with the exact semantics of the official ``ytvoseval``.

The evaluation servers are closed, so this is the number users report. It reproduces the
youtubevos cocoapi fork (``YTVOS.loadRes`` + ``YTVOSeval``) decision for decision:

* video IoU = sum over frames of intersections / sum over frames of unions (integers);
* ground-truth area = mean of the non-zero entries of the annotation's ``areas`` field (computed
  from the masks when the field is absent); detection area = mean of its non-zero per-frame mask
  areas, as ``loadRes`` computes it; area ranges 0-128², 128²-256², >256²;
* ``ignore`` = ``iscrowd`` (a missing ``iscrowd`` counts as 0); result ids are 1-based positions
  in the results list; results of categories absent from the ground-truth ``categories`` are not
  evaluated (counted and logged);
* matching, accumulation and summary as documented in :mod:`.ytvis_matching`.

Where the official code would crash or silently mis-evaluate malformed input (unknown video,
wrong number of frames, mask size different from the video, broken RLE/polygon, duplicate ids)
this module raises :class:`YTVISEvalError` naming the file, video and annotation.

Speed: JSON is parsed with the garbage collector paused (it otherwise re-scans the millions of
freshly created objects), every detection frame is decoded once for its area, and intersections
are computed per (video, category, frame) with one batched pycocotools call.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from seqformer.evaluation.rle_ops import RLEFormatError, frame_areas_and_intersections, rle_areas
from seqformer.evaluation.ytvis_inputs import Detections, GroundTruth, YTVISEvalError, gc_paused, load_json
from seqformer.evaluation.ytvis_matching import (
    IOU_THRESHOLDS, MAX_DETS, STAT_KEYS, accumulate, match_group, outside_area_ranges, summarize)

__all__ = ["YTVISEvalError", "evaluate_ytvis", "format_ytvis_table"]
logger = logging.getLogger(__name__)


def evaluate_ytvis(groundtruth: str | Path | dict, results: str | Path | list) -> dict[str, float]:
    """The 12 official summary numbers (AP, AP50, ..., ARl) of ``results`` against ``groundtruth``.

    Both may be paths to JSON files or already-loaded objects (which are not modified).
    """
    with gc_paused():
        gt_data, gt_name = load_json(groundtruth, "groundtruth")
        gt = GroundTruth(gt_data, gt_name)
        res_data, res_name = load_json(results, "results")
        dets = Detections(res_data, res_name, gt)
        if dets.skipped_unknown_category:
            logger.warning("%d result(s) in %s have a category_id absent from the groundtruth categories "
                           "and are not evaluated (as in the official evaluator)",
                           dets.skipped_unknown_category, res_name)
        precision, recall = _evaluate(gt, dets)
    return summarize(precision, recall)


def _evaluate(gt: GroundTruth, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
    cat_index = {c: k for k, c in enumerate(gt.category_ids)}
    video_index = {v: i for i, v in enumerate(gt.video_ids)}
    det_video = np.array([video_index[v] for v in dets.video], dtype=np.int64)
    det_cat = np.array([cat_index[c] for c in dets.category], dtype=np.int64)
    gt_video = np.array([video_index[v] for v in gt.ann_video], dtype=np.int64)
    gt_cat = np.array([cat_index[c] for c in gt.ann_category], dtype=np.int64)
    gt_keys = gt_video * len(cat_index) + gt_cat
    det_keys = det_video * len(cat_index) + det_cat

    frame_area = np.full(len(dets.frames), -1, dtype=np.int64)
    intersections = _intersections(gt, dets, det_keys, gt_keys, frame_area)
    rest = np.flatnonzero(frame_area < 0)
    frame_area[rest] = rle_areas([dets.frames[j] for j in rest])
    owner = np.repeat(np.arange(len(dets.ids)), np.diff(dets.frame_start))
    det_area_sum = np.bincount(owner, weights=frame_area, minlength=len(dets.ids))
    nonzero = np.bincount(owner, weights=frame_area > 0, minlength=len(dets.ids))
    with np.errstate(invalid="ignore", divide="ignore"):
        det_avg = np.where(nonzero > 0, det_area_sum / nonzero, 0.0)

    # Rank of each detection inside its (video, category): stable descending score.
    order = np.lexsort((np.arange(len(det_keys)), -dets.scores, det_keys))
    starts = np.flatnonzero(np.r_[True, det_keys[order][1:] != det_keys[order][:-1]]) if len(order) else order
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    evaluated = np.flatnonzero(rank < MAX_DETS[-1])

    outside = outside_area_ranges(det_avg)  # unmatched detections outside the range are ignored
    true_pos = np.zeros((outside.shape[0], len(IOU_THRESHOLDS), len(dets.ids)), dtype=bool)
    false_pos = np.broadcast_to(~outside[:, None, :], true_pos.shape).copy()
    gt_avg = np.asarray(gt.ann_avg_area, dtype=np.float64)
    gt_crowd = np.asarray(gt.ann_crowd, dtype=bool)
    gt_ids = np.asarray(gt.ann_ids)
    for gt_rows, det_rows, inter in intersections:
        union = det_area_sum[det_rows][:, None] + gt.ann_area_sum[gt_rows][None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            ious = np.where(union > 0, inter / union, 0.0)
        rows = np.argsort(rank[det_rows], kind="stable")
        rows = rows[rank[det_rows[rows]] < MAX_DETS[-1]]
        d = det_rows[rows]
        true_pos[:, :, d], false_pos[:, :, d] = match_group(
            ious[rows], det_avg[d], gt_ids[gt_rows], gt_crowd[gt_rows], gt_avg[gt_rows])

    gt_ignore = gt_crowd[None, :] | outside_area_ranges(gt_avg)
    num_gt_not_ignored = np.stack(
        [np.bincount(gt_cat, weights=~ignored, minlength=len(cat_index)) for ignored in gt_ignore], axis=1)
    return accumulate(det_cat[evaluated], det_video[evaluated], rank[evaluated], dets.scores[evaluated],
                      true_pos[:, :, evaluated], false_pos[:, :, evaluated], num_gt_not_ignored)


def _intersections(gt: GroundTruth, dets: Detections, det_keys: np.ndarray, gt_keys: np.ndarray,
                   frame_area: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per (video, category) with ground truth and detections: (GT rows, det rows, intersections).

    Detection frames that coincide with a present ground truth of their group are decoded once by a
    batched ``iou`` call, which also yields their areas (written into ``frame_area``); all other
    frames keep -1 for a later area-only pass.
    """
    out = []
    gts_by_key: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(gt_keys.tolist()):
        gts_by_key[key].append(i)
    dets_by_key: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(det_keys.tolist()):
        if key in gts_by_key:
            dets_by_key[key].append(i)
    for key, det_rows in dets_by_key.items():
        gt_rows = np.array(gts_by_key[key], dtype=np.int64)
        det_rows = np.array(det_rows, dtype=np.int64)
        vid = gt.ann_video[gt_rows[0]]
        height, width = gt.video_size[vid]
        starts, stops = dets.frame_start[det_rows], dets.frame_start[det_rows + 1]
        lengths = stops - starts
        frame_idx = np.repeat(stops - np.cumsum(lengths), lengths) + np.arange(lengths.sum())
        local = np.repeat(np.arange(len(det_rows)), lengths)
        times = dets.frame_t_array[frame_idx]
        order = np.argsort(times, kind="stable")
        frame_idx, local, times = frame_idx[order], local[order], times[order]
        inter = np.zeros((len(det_rows), len(gt_rows)), dtype=np.int64)
        gt_rles = [gt.ann_rles[g] for g in gt_rows]
        bounds = np.flatnonzero(np.diff(times)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(times)]) if len(times) else ():
            t = int(times[lo])
            present = [j for j, rles in enumerate(gt_rles) if rles[t] is not None]
            if not present:
                continue
            rows = frame_idx[lo:hi]
            try:
                areas, counts = frame_areas_and_intersections(
                    [dets.frames[i] for i in rows], [gt_rles[j][t] for j in present], height, width)
            except RLEFormatError as err:
                raise YTVISEvalError(f"video {vid!r} frame {t}: {err}") from err
            frame_area[rows] = areas
            if len(present) == len(gt_rows):
                inter[local[lo:hi]] += counts
            else:
                inter[np.ix_(local[lo:hi], present)] += counts
        out.append((gt_rows, det_rows, inter))
    return out


def format_ytvis_table(stats: dict[str, float]) -> str:
    """The official 12-line summary, e.g. `` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | ...``."""
    rows = [
        (True, "0.50:0.95", "all", 100), (True, "0.50", "all", 100), (True, "0.75", "all", 100),
        (True, "0.50:0.95", "small", 100), (True, "0.50:0.95", "medium", 100), (True, "0.50:0.95", "large", 100),
        (False, "0.50:0.95", "all", 1), (False, "0.50:0.95", "all", 10), (False, "0.50:0.95", "all", 100),
        (False, "0.50:0.95", "small", 100), (False, "0.50:0.95", "medium", 100), (False, "0.50:0.95", "large", 100),
    ]
    lines = []
    for key, (ap, iou, area, max_dets) in zip(STAT_KEYS, rows):
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] "
                     f"= {stats[key]:0.3f}")
    return "\n".join(lines)
