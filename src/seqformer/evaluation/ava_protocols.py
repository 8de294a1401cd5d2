"""The three AVA frame-mAP protocols, and the matching / AP steps they share.

All three score AVA CSVs with the TF object-detection Pascal evaluator (per keyframe and class,
each detection in list order takes its maximum-IoU ground-truth box and is a true positive iff the
IoU is >= 0.5 and the box is still free; VOC all-point AP per class; NaN classes left out of the
mean). They differ in which detections are scored and in what order, which changes the numbers:

* ``activitynet`` -- ActivityNet's ``get_ava_performance.py`` as it is since April 2020, the AVA
  challenge's scorer. Every keyframe that appears in the ground-truth CSV (a row of any class, or a
  2-column ``video_id,second`` row) is *included*; detections on other keyframes are ignored;
  detections on an included keyframe without an evaluated box are false positives. At most 50
  detections per keyframe (min-heap), listed by descending score; boxes with ``x1 >= x2`` or
  ``y1 >= y2`` dropped. Implemented in :mod:`seqformer.evaluation.ava_eval`.
* ``pyslowfast`` -- PySlowFast's ``slowfast/utils/ava_eval_helper.py`` (the numbers of its model
  zoo): the pre-2020 official rule, detections on keyframes without an evaluated box are false
  positives wherever they are; no cap, detections and ground truth listed in file order; invalid
  boxes dropped as above.
* ``mmaction2`` -- MMAction2's ``mmaction/evaluation/functional/ava_utils.py`` with
  ``ignore_empty_frames=True`` (what its AVAMetric passes; the numbers of its model zoo): only
  keyframes with an evaluated ground-truth box are scored, detections elsewhere are ignored; no cap;
  detections listed by descending score (stable), ground truth by descending person id (stable);
  boxes and scores in float32; boxes with ``x1 == x2`` or ``y1 == y2`` are kept (false positives),
  inverted boxes are an error (its box list rejects them); a class without any scored detection
  gets NaN instead of 0; ground-truth boxes of excluded keyframes still count in the recall
  denominator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqformer.errors import SeqFormerError

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Protocol:
    """How one reference evaluator differs from the others (see the module docstring)."""

    name: str
    scored_keyframes: str  # "in_groundtruth_file" | "all" | "with_evaluated_boxes"
    listing: str  # per-keyframe list: "heap" (50-capped min-heap) | "file" | "score" (stable, descending)
    keyframe_order: str  # per-class concatenation order of keyframes: "detections" | "groundtruth"
    float32: bool  # boxes and scores converted to float32 (IoU in mixed precision)
    keep_degenerate_boxes: bool  # x1 == x2 or y1 == y2 scored (as FPs); inverted boxes are errors
    nan_without_detections: bool  # a class with GT but no scored detection is NaN, not 0
    excluded_gt_in_recall: bool  # GT boxes of excluded keyframes still count in the denominator
    reproduces: str


PROTOCOLS = {
    "activitynet": Protocol("activitynet", "in_groundtruth_file", "heap", "detections", False, False, False, False,
                            "ActivityNet get_ava_performance.py (since 2020-04-24): the AVA challenge numbers"),
    "pyslowfast": Protocol("pyslowfast", "all", "file", "detections", False, False, False, False,
                           "PySlowFast slowfast/utils/ava_eval_helper.py: PySlowFast model-zoo numbers"),
    "mmaction2": Protocol("mmaction2", "with_evaluated_boxes", "score", "groundtruth", True, True, True, True,
                          "MMAction2 ava_utils.ava_eval(ignore_empty_frames=True): MMAction2 model-zoo numbers"),
}


class UnknownProtocolError(SeqFormerError, ValueError):
    """A protocol name that is not one of :data:`PROTOCOLS`."""


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UnknownProtocolError(f"--protocol {name!r}: expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def label_in_list_order(det: dict, gt: dict, num_classes: int, protocol: Protocol,
                        image: np.ndarray) -> dict[str, np.ndarray]:
    """TP/FP labels for the uncapped protocols, whose per-keyframe lists are fully determined.

    ``image`` numbers each detection's keyframe in the order the protocol concatenates keyframes.
    PySlowFast lists detections and ground truth in file order; MMAction2 sorts both by descending
    score (person id for the ground truth), stable over file order. No heap, so no replay is needed.
    """
    rows = np.arange(len(image))
    if protocol.listing == "score":
        order = np.lexsort((rows, -det["score"], image))
        gt_score = gt["score"]
    else:
        order = np.lexsort((rows, image))
        gt_score = np.zeros(len(gt["score"]))
    counts = np.bincount(image, minlength=image.max() + 1 if image.size else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    position = np.arange(len(order)) - starts[image[order]]
    box = det["box"][order].astype(np.float32 if protocol.float32 else np.float64)
    if not protocol.keep_degenerate_boxes:  # dropped by the TF per-image evaluator before matching
        valid = (box[:, 0] < box[:, 2]) & (box[:, 1] < box[:, 3])
        order, position, box = order[valid], position[valid], box[valid]
    gt_group, gt_box, _ = sorted_gt_groups(gt, gt_score, num_classes)
    if protocol.float32:
        gt_box = gt_box.astype(np.float32)
    tp, _, _ = greedy_match(det["key"][order] * (num_classes + 1) + det["cls"][order], box, gt_group, gt_box)
    score = det["score"][order]
    return {"image": image[order], "position": position, "cls": det["cls"][order],
            "score": score.astype(np.float32) if protocol.float32 else score, "tp": tp}


def sorted_gt_groups(gt: dict, score: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GT sorted by (keyframe, class, descending score, file order) with their group keys."""
    gt_order = np.lexsort((np.arange(len(gt["key"])), -score, gt["cls"], gt["key"]))
    group = gt["key"][gt_order] * (num_classes + 1) + gt["cls"][gt_order]
    return group, gt["box"][gt_order], gt_order


def greedy_match(det_group: np.ndarray, det_box: np.ndarray, gt_group: np.ndarray,
                 gt_box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of detections listed in evaluation order against GT in list order.

    Returns the TP labels, whether each detection's max-IoU GT box reaches the threshold, and a
    mask of detections whose max IoU (>= threshold) is shared by ground-truth boxes that differ,
    where the pick depends on the GT list order (argmax takes the first).
    """
    first = np.searchsorted(gt_group, det_group, side="left")
    count = np.searchsorted(gt_group, det_group, side="right") - first
    tp = np.zeros(len(det_group), dtype=bool)
    ambiguous = np.zeros(len(det_group), dtype=bool)
    matchable = np.zeros(len(det_group), dtype=bool)
    has_gt = np.flatnonzero(count > 0)
    if has_gt.size == 0:
        return tp, matchable, ambiguous
    seg_len = count[has_gt]
    seg_start = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    pair_det = np.repeat(has_gt, seg_len)
    local = np.arange(seg_len.sum()) - np.repeat(seg_start, seg_len)
    pair_gt = first[pair_det] + local
    iou = pairwise_iou(det_box[pair_det], gt_box[pair_gt])

    has_nan = np.logical_or.reduceat(np.isnan(iou), seg_start)  # argmax would pick the NaN: FP
    best = np.fmax.reduceat(iou, seg_start)
    is_best = iou == np.repeat(best, seg_len)
    best_local = np.minimum.reduceat(np.where(is_best, local, np.iinfo(np.int64).max), seg_start)
    best_gt = first[has_gt] + best_local
    differs = is_best & (gt_box[pair_gt] != gt_box[np.repeat(best_gt, seg_len)]).any(axis=1)
    qualifies = (best >= IOU_THRESHOLD) & ~has_nan
    ambiguous[has_gt] = qualifies & np.logical_or.reduceat(differs, seg_start)
    matchable[has_gt] = qualifies

    candidates = has_gt[qualifies]
    _, first_claim = np.unique(best_gt[qualifies], return_index=True)
    tp[candidates[first_claim]] = True
    return tp, matchable, ambiguous


def pairwise_iou(box1: np.ndarray, box2: np.ndarray) -> np.ndarray:
    """Row-wise IoU of [y1, x1, y2, x2] boxes in the TF np_box_ops operation order.

    For float32 boxes this reproduces that code's mixed precision: coordinate differences and areas
    in float32, intersections (``np.maximum`` against float64 zeros) and the union's subtraction
    and the division in float64. For float64 boxes every step is float64.
    """
    heights = np.maximum(0.0, np.minimum(box1[:, 2], box2[:, 2]) - np.maximum(box1[:, 0], box2[:, 0]))
    widths = np.maximum(0.0, np.minimum(box1[:, 3], box2[:, 3]) - np.maximum(box1[:, 1], box2[:, 1]))
    intersection = heights.astype(np.float64) * widths.astype(np.float64)
    area1 = (box1[:, 2] - box1[:, 0]) * (box1[:, 3] - box1[:, 1])
    area2 = (box2[:, 2] - box2[:, 0]) * (box2[:, 3] - box2[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / ((area1 + area2).astype(np.float64) - intersection)


def average_precisions(labelled: dict, num_gt: np.ndarray, nan_without_detections: bool) -> np.ndarray:
    """Per-class VOC AP (index = class id); NaN where a class has no ground truth and, with
    ``nan_without_detections``, where it has no scored detection (MMAction2 leaves those out)."""
    ap = np.full(len(num_gt), np.nan)
    order = np.lexsort((labelled["position"], labelled["image"], labelled["cls"]))
    cls, score, tp = labelled["cls"][order], labelled["score"][order], labelled["tp"][order]
    bounds = np.searchsorted(cls, np.arange(len(num_gt) + 1))
    for class_id in np.flatnonzero(num_gt > 0):
        segment = slice(bounds[class_id], bounds[class_id + 1])
        if nan_without_detections and segment.start == segment.stop:
            continue
        ap[class_id] = voc_ap(score[segment], tp[segment], int(num_gt[class_id]))
    return ap


def voc_ap(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point AP under the monotone precision envelope, ranked by ``np.argsort(scores)[::-1]``
    as the reference code does (its tie order is part of the result)."""
    if scores.size == 0:
        return 0.0
    hits = tp[np.argsort(scores)[::-1]].astype(int)
    cum_tp = np.cumsum(hits)
    cum_fp = np.cumsum(1 - hits)
    precision = np.concatenate([[0.0], cum_tp.astype(float) / (cum_tp + cum_fp), [0.0]])
    recall = np.concatenate([[0.0], cum_tp.astype(float) / num_gt, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))
