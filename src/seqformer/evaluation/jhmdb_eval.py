"""JHMDB-21 / UCF101-24 frame-mAP and video-mAP, equal to the ACT-detector evaluation as reused by MOC.

Protocol (Kalogeiton et al. 2017, ``ACT.py``: ``frameAP``, ``videoAP``, ``videoAP_050_095``):

* Only the test videos of the chosen split count, ``test_videos[split - 1]`` of the ground-truth pickle.
  Detections on other videos of the pickle are skipped (and counted); unknown videos are errors.
* frame-mAP@0.5: per label, all detections of the label over the test videos, highest score first; each
  takes the ground-truth box of its frame and label with the largest IoU among those not yet taken
  (first in tube order on ties) and is a true positive iff that IoU >= 0.5 -- no second choice.  Box IoU
  counts pixels inclusively (+1 on widths and heights).
* video-mAP@t: per video and label the tubes first go through tube NMS at 0.3 (see
  :mod:`.jhmdb_tubes`); then the same greedy matching per video with the spatio-temporal tube IoU
  (temporal IoU x mean per-frame IoU over the temporal overlap).  ``0.5:0.95`` is the mean over
  t = 0.5, 0.55, ..., 0.95 (computed as ``0.5 + 0.05 * i`` like the reference).
* AP is the trapezoidal area under the precision/recall points, starting at (recall 0, precision 1) --
  not the VOC interpolated envelope; mAP is the mean over *all* labels, a label without detections
  scoring 0.  A label without ground truth in the split also scores 0 (the reference divides by zero if
  such a label has detections).

Reproducing the reference's numbers to float32 precision needs its dtypes: it stores detections,
scores and tubes as float32 and precision/recall as float32, and computes frame IoUs in float64 from a
float64 ground-truth copy but float32 detection terms, tube IoUs entirely in float32.  We do the same.
Score ties are broken by input order (stable sort): rows in the order (test-video position, frame,
file order) -- the layout of the reference's detection array -- and tubes in (video, NMS pick order).
The reference's default ``np.argsort`` leaves tied orders to the numpy build; every other rule is its.
"""
from __future__ import annotations

import os

import numpy as np

from seqformer.data.jhmdb_format import JhmdbGroundTruth, read_groundtruth_pickle
from seqformer.evaluation.jhmdb_inputs import (
    FrameDetections,
    JhmdbInputError,
    TubeDetections,
    read_frame_detections,
    read_tubes,
)
from seqformer.evaluation.jhmdb_tubes import TubeSet, box_iou_inclusive, tube_iou, tube_nms

FRAME_IOU_THRESHOLD = 0.5
TUBE_NMS_THRESHOLD = 0.3
VIDEO_THRESHOLDS = {"0.2": 0.2, "0.5": 0.5, "0.75": 0.75}
COCO_STYLE_THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]  # the reference's own float expression


def evaluate_jhmdb(groundtruth: str | os.PathLike | JhmdbGroundTruth, split: int = 1,
                   detections: str | os.PathLike | FrameDetections | None = None,
                   tubes: str | os.PathLike | TubeDetections | None = None) -> dict:
    """Frame-mAP@0.5 (from ``detections``) and video-mAP (from ``tubes``); both optional.

    Returns ``{"frame_mAP", "frame_per_class": {name: AP}, "video_mAP": {"0.2", "0.5", "0.75",
    "0.5:0.95"}, "video_per_class": {threshold key: {name: AP}}, "counts": {...}}`` (APs as fractions;
    the frame or video keys only when their input is given).
    """
    gt = groundtruth if isinstance(groundtruth, JhmdbGroundTruth) else read_groundtruth_pickle(groundtruth)
    videos = gt.test_videos_of(split)
    result: dict = {}
    counts: dict = {}
    if detections is not None:
        dets = detections if isinstance(detections, FrameDetections) else read_frame_detections(detections)
        ap, frame_counts = frame_average_precision(gt, videos, dets)
        result["frame_mAP"] = float(np.mean(ap))
        result["frame_per_class"] = dict(zip(gt.labels, map(float, ap)))
        counts.update(frame_counts)
    if tubes is not None:
        tube_dets = tubes if isinstance(tubes, TubeDetections) else read_tubes(tubes)
        aps, tube_counts = video_average_precision(gt, videos, tube_dets)
        result["video_mAP"] = {key: float(np.mean(ap)) for key, ap in aps.items()}
        result["video_per_class"] = {key: dict(zip(gt.labels, map(float, ap))) for key, ap in aps.items()}
        counts.update(tube_counts)
    result["counts"] = counts
    return result


# ------------------------------------------------------------------------------------------- frame-mAP

def frame_average_precision(gt: JhmdbGroundTruth, videos: list[str], dets: FrameDetections,
                            iou_threshold: float = FRAME_IOU_THRESHOLD) -> tuple[np.ndarray, dict]:
    """Per-label frame AP (float64 array, label order of the pickle) and detection counts."""
    position = {v: i for i, v in enumerate(videos)}
    kept, video_pos = _frame_rows_in_split(gt, position, dets)
    num_frames = max([gt.frames(v) for v in videos], default=0) + 1
    # Rows in the reference's layout (test-video position, frame; file order within), then per label
    # by descending float32 score, stably.
    layout = np.lexsort((dets.frames[kept], video_pos))
    rows, video_pos = kept[layout], video_pos[layout]
    labels = dets.labels[rows] - 1
    order = np.lexsort((-dets.scores[rows].astype(np.float32), labels))
    rows, video_pos, labels = rows[order], video_pos[order], labels[order]
    frame_key = (labels * len(videos) + video_pos) * num_frames + dets.frames[rows]

    gt_key, gt_boxes, num_gt = _frame_groundtruth(gt, videos, num_frames)
    candidates, first, count = _candidates(frame_key, gt_key)
    width = int(count.max(initial=0))
    slots = first[:, None] + np.arange(width)
    valid = np.arange(width) < count[:, None]
    slots = np.where(valid, slots, 0)
    det_boxes = dets.boxes[rows[candidates]].astype(np.float32)[:, None, :]
    iou = box_iou_inclusive(gt_boxes[slots] if len(gt_boxes) else np.zeros(slots.shape + (4,)), det_boxes)
    iou = np.where(valid, iou, -np.inf)
    gt_ids = np.where(valid, slots, len(gt_key))

    true_positive = np.zeros(len(rows), dtype=bool)
    true_positive[candidates] = greedy_match(frame_key[candidates], iou, gt_ids, len(gt_key), iou_threshold)
    ap = _per_label_ap(labels, true_positive, num_gt)
    return ap, {"frame_detections": int(len(rows)), "frame_detections_outside_split": int(len(dets) - len(rows))}


def _frame_rows_in_split(gt: JhmdbGroundTruth, position: dict[str, int],
                         dets: FrameDetections) -> tuple[np.ndarray, np.ndarray]:
    """Rows on test videos (checked against the pickle) and their test-video positions."""
    name_pos = np.array([position.get(v, -1) for v in dets.video_names], dtype=np.int64)
    for i, v in enumerate(dets.video_names):
        if v not in gt.nframes:
            row = int(np.flatnonzero(dets.video_index == i)[0])
            raise JhmdbInputError(f"{dets.source}:{dets.line_of(row)}: video {v!r} is not in {gt.source}")
    pos = name_pos[dets.video_index] if len(dets) else np.zeros(0, np.int64)
    kept = np.flatnonzero(pos >= 0)
    limit = np.array([gt.frames(v) for v in dets.video_names], dtype=np.int64)
    beyond = dets.frames > (limit[dets.video_index] if len(dets) else 0)
    if beyond.any():
        row = int(np.flatnonzero(beyond)[0])
        video = dets.video_names[dets.video_index[row]]
        raise JhmdbInputError(f"{dets.source}:{dets.line_of(row)}: frame {dets.frames[row]} beyond the "
                              f"{gt.frames(video)} frames of {video!r}")
    bad_label = dets.labels > gt.num_labels
    if bad_label.any():
        row = int(np.flatnonzero(bad_label)[0])
        raise JhmdbInputError(f"{dets.source}:{dets.line_of(row)}: label {dets.labels[row]} outside "
                              f"1..{gt.num_labels}")
    return kept, pos[kept]


def _frame_groundtruth(gt: JhmdbGroundTruth, videos: list[str], num_frames: int):
    """GT boxes sorted by (label, video position, frame) key, tube order within a key; per-label counts."""
    keys, boxes = [], []
    for iv, video in enumerate(videos):
        for label, tubes in gt.tubes(video).items():
            for tube in tubes:
                keys.append((label * len(videos) + iv) * num_frames + tube[:, 0].astype(np.int64))
                boxes.append(tube[:, 1:5].astype(np.float64))  # the reference's float64 copy (tolist)
    if not keys:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(gt.num_labels, np.int64)
    keys, boxes = np.concatenate(keys), np.concatenate(boxes)
    order = np.argsort(keys, kind="stable")
    keys, boxes = keys[order], boxes[order]
    num_gt = np.bincount(keys // (len(videos) * num_frames), minlength=gt.num_labels)
    return keys, boxes, num_gt


def _candidates(det_key: np.ndarray, sorted_gt_key: np.ndarray):
    """Detections whose key has ground truth, with the first GT index and GT count of that key."""
    first = np.searchsorted(sorted_gt_key, det_key, side="left")
    count = np.searchsorted(sorted_gt_key, det_key, side="right") - first
    candidates = np.flatnonzero(count > 0)
    return candidates, first[candidates], count[candidates]


# ------------------------------------------------------------------------------------------- video-mAP

def video_average_precision(gt: JhmdbGroundTruth, videos: list[str],
                            tubes: TubeDetections) -> tuple[dict[str, np.ndarray], dict]:
    """Per-label video AP for thresholds 0.2, 0.5, 0.75 and the 0.5:0.95 average, and tube counts."""
    position = {v: i for i, v in enumerate(videos)}
    in_split = []
    for i, (video, label, boxes) in enumerate(zip(tubes.videos, tubes.labels, tubes.boxes)):
        where = f"{tubes.source}: entry {i} (video {video!r})"
        if video not in gt.nframes:
            raise JhmdbInputError(f"{where}: video is not in {gt.source}")
        if label > gt.num_labels:
            raise JhmdbInputError(f"{where}: label {label} outside 1..{gt.num_labels}")
        if boxes[-1, 0] > gt.frames(video):
            raise JhmdbInputError(f"{where}: frame {int(boxes[-1, 0])} beyond the {gt.frames(video)} frames")
        if video in position:
            in_split.append(i)
    in_split = np.asarray(in_split, dtype=np.int64)
    det_set = TubeSet.from_arrays([tubes.boxes[i] for i in in_split])
    det_video = np.array([position[tubes.videos[i]] for i in in_split], dtype=np.int64)
    det_label = tubes.labels[in_split] - 1
    scores = tubes.scores[in_split].astype(np.float32)
    group = det_label * len(videos) + det_video
    kept = tube_nms(det_set, group, scores, TUBE_NMS_THRESHOLD)  # by group = (label, video), pick order
    order = np.lexsort((-scores[kept], det_label[kept]))  # per label: descending score, stable
    kept = kept[order]

    gt_arrays, gt_group = [], []
    for iv, video in enumerate(videos):
        for label, label_tubes in gt.tubes(video).items():
            gt_arrays += label_tubes
            gt_group += [label * len(videos) + iv] * len(label_tubes)
    gt_group = np.asarray(gt_group, dtype=np.int64)
    gt_order = np.argsort(gt_group, kind="stable")  # tube order within a (label, video) group
    gt_set = TubeSet.from_arrays([gt_arrays[i] for i in gt_order])
    gt_group = gt_group[gt_order]
    num_gt = np.bincount(gt_group // len(videos), minlength=gt.num_labels) if len(gt_group) else \
        np.zeros(gt.num_labels, np.int64)

    candidates, first, count = _candidates(group[kept], gt_group)
    width = int(count.max(initial=0))
    valid = np.arange(width) < count[:, None]
    slots = np.where(valid, first[:, None] + np.arange(width), 0)
    iou, _ = tube_iou(gt_set, slots[valid], det_set, np.broadcast_to(kept[candidates, None], slots.shape)[valid])
    padded = np.full(slots.shape, -np.inf, dtype=np.float32)
    padded[valid] = iou
    gt_ids = np.where(valid, slots, len(gt_group))

    labels = det_label[kept]
    thresholds = sorted(set(VIDEO_THRESHOLDS.values()) | set(COCO_STYLE_THRESHOLDS))
    ap_at = {}
    for t in thresholds:
        true_positive = np.zeros(len(kept), dtype=bool)
        true_positive[candidates] = greedy_match(group[kept][candidates], padded, gt_ids, len(gt_group),
                                                 np.float32(t))
        ap_at[t] = _per_label_ap(labels, true_positive, num_gt)
    aps = {key: ap_at[t] for key, t in VIDEO_THRESHOLDS.items()}
    aps["0.5:0.95"] = np.mean([ap_at[t] for t in COCO_STYLE_THRESHOLDS], axis=0)
    counts = {"tubes": int(len(in_split)), "tubes_after_nms": int(len(kept)),
              "tubes_outside_split": int(len(tubes) - len(in_split))}
    return aps, counts


# --------------------------------------------------------------------------------------- shared steps

def greedy_match(keys: np.ndarray, iou: np.ndarray, gt_ids: np.ndarray, num_gt: int, threshold) -> np.ndarray:
    """True-positive flags of detections given in processing order.

    ``keys``: the frame or video group of each detection; ``iou[d, s]``: IoU with the s-th ground truth of
    its group (``-inf`` in padding), ``gt_ids[d, s]`` that ground truth's global id (``num_gt`` in
    padding).  Each detection, in order, takes the not-yet-matched ground truth of largest IoU (first on
    ties, NaN counting as largest like ``np.argmax``) and matches iff that IoU >= ``threshold``.  Groups
    are independent, so the k-th detection of every group is decided in one vectorised step.
    """
    n = len(keys)
    true_positive = np.zeros(n, dtype=bool)
    if n == 0:
        return true_positive
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[by_key] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    taken = np.zeros(num_gt + 1, dtype=bool)
    taken[num_gt] = True
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.flatnonzero(np.diff(rank[by_rank])) + 1
    for step in np.split(by_rank, bounds):
        ids = gt_ids[step]
        values = np.where(taken[ids], -np.inf, iou[step]).astype(iou.dtype, copy=False)
        best = np.argmax(values, axis=1)
        hit = values[np.arange(len(step)), best] >= threshold
        taken[ids[hit, best[hit]]] = True
        true_positive[step[hit]] = True
    return true_positive


def _per_label_ap(labels: np.ndarray, true_positive: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """Trapezoidal AP per label from flags in processing order (float32 precision/recall, as the reference)."""
    ap = np.zeros(len(num_gt), dtype=np.float64)
    bounds = np.searchsorted(labels, np.arange(len(num_gt) + 1))
    for label in range(len(num_gt)):
        flags = true_positive[bounds[label]:bounds[label + 1]]
        if flags.size == 0:
            continue
        tp = np.cumsum(flags, dtype=np.int64).astype(np.float64)
        precision = np.r_[1.0, tp / np.arange(1, flags.size + 1)].astype(np.float32)
        recall = np.r_[0.0, tp / num_gt[label] if num_gt[label] else np.zeros_like(tp)].astype(np.float32)
        ap[label] = float(trapezoid_ap(precision, recall))
    return ap


def trapezoid_ap(precision: np.ndarray, recall: np.ndarray) -> np.float32:
    """Area under the precision/recall points by the trapezoid rule (float32 arrays, first point (0, 1))."""
    return np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) * np.float32(0.5))
