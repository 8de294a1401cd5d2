"""Slow, straightforward AVA frame-mAP evaluator: the oracle for tests and benchmarks.

It re-implements, in plain Python/numpy and in the same structure, what ActivityNet's
``Evaluation/get_ava_performance.py`` does with the TensorFlow object-detection utilities it ships
(``object_detection_evaluation.PascalDetectionEvaluator``, ``per_image_evaluation``, ``metrics``,
``np_box_ops``). That official code is not vendored here (it also no longer runs on numpy >= 1.24,
which removed ``np.bool``/``np.float``); this file was written from a reading of it:

* CSV rows are read with :mod:`csv`; rows whose action id is not in the label map are skipped before
  anything else; each keyframe keeps a min-heap of ``(score, action_id, y1, x1, y2, x2)`` tuples,
  capped at 50 for detections (a row replaces the heap minimum only if its score is strictly
  greater), uncapped for ground truth (whose "score" is the person id, or 1.0 for 7 columns); each
  keyframe's list is then ``sorted`` by descending score (stable over the heap's array order).
* excluded keyframes are skipped in both files.
* per keyframe: detections with ``y1 >= y2`` or ``x1 >= x2`` are removed; per class, each detection
  in list order takes the ground-truth box of maximum IoU (first on ties, no +1 in areas); it is a
  true positive iff that IoU >= 0.5 and that box is not taken yet. Detections on keyframes without
  ground truth are all false positives (the official code gives them an empty ground truth).
* per class: scores of all keyframes concatenated in keyframe order, ``np.argsort`` (default kind)
  reversed, cumulative precision/recall, VOC AP under the right-to-left max precision envelope.
  Classes without ground truth get NaN; mAP is ``np.nanmean`` over classes.
"""
from __future__ import annotations

import csv
import heapq
from collections import defaultdict

import numpy as np


def read_labelmap(path: str) -> list[tuple[int, str]]:
    """Label map parsed the official way: indentation-sensitive ``name:`` / ``id:`` lines."""
    entries, name = [], ""
    with open(path) as f:
        for line in f:
            if line.startswith("  name:"):
                name = line.split('"')[1]
            elif line.startswith("  id:") or line.startswith("  label_id:"):
                entries.append((int(line.strip().split(" ")[-1]), name))
    return entries


def read_exclusions(path: str | None) -> set[tuple[str, int]]:
    if path is None:
        return set()
    with open(path, newline="") as f:
        return {(row[0], int(row[1])) for row in csv.reader(f)}


def read_keyframes(path: str, whitelist: set[int], capacity: int) -> dict:
    """{(video, second): [(score, action_id, y1, x1, y2, x2), ...] sorted by descending score}."""
    heaps: dict = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.reader(f):
            key = (row[0], int(row[1]))
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            action_id = int(row[6])
            if action_id not in whitelist:
                continue
            score = float(row[7]) if len(row) == 8 else 1.0
            entry = (score, action_id, y1, x1, y2, x2)
            heap = heaps[key]
            if capacity < 1 or len(heap) < capacity:
                heapq.heappush(heap, entry)
            elif score > heap[0][0]:
                heapq.heapreplace(heap, entry)
    return {key: sorted(heap, key=lambda e: -e[0]) for key, heap in heaps.items()}


def pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of [y1, x1, y2, x2] boxes, areas without +1: [N,4] x [M,4] -> [N,M]."""
    heights = np.maximum(0.0, np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
                         - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0]))
    widths = np.maximum(0.0, np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
                        - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1]))
    intersection = heights * widths
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def label_true_positives(det_boxes: np.ndarray, gt_boxes: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Greedy matching of one keyframe-class: detections in order, each to its max-IoU GT box."""
    tp = np.zeros(len(det_boxes), dtype=bool)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = pairwise_iou(det_boxes, gt_boxes)
    best = np.argmax(iou, axis=1)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for i, j in enumerate(best):
        if iou[i, j] >= threshold and not taken[j]:
            tp[i] = True
            taken[j] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    order = np.argsort(scores)[::-1]
    tp_sorted = tp[order].astype(int)
    cum_tp = np.cumsum(tp_sorted)
    cum_fp = np.cumsum(1 - tp_sorted)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    if precision.size == 0:
        return 0.0
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def evaluate(labelmap: str, groundtruth: str, detections: str, exclusions: str | None = None) -> dict:
    """``{"mAP": float, "per_class": {name: AP or NaN}}`` exactly as the official protocol."""
    categories = read_labelmap(labelmap)
    whitelist = {class_id for class_id, _ in categories}
    num_classes = max(whitelist)
    excluded = read_exclusions(exclusions)

    gt = {k: v for k, v in read_keyframes(groundtruth, whitelist, 0).items() if k not in excluded}
    num_gt = np.zeros(num_classes + 1, dtype=int)
    for entries in gt.values():
        for entry in entries:
            num_gt[entry[1]] += 1

    scores_per_class: dict[int, list[np.ndarray]] = defaultdict(list)
    tp_per_class: dict[int, list[np.ndarray]] = defaultdict(list)
    for key, entries in read_keyframes(detections, whitelist, 50).items():
        if key in excluded:
            continue
        det = np.array([e[2:] for e in entries], dtype=float)
        det_scores = np.array([e[0] for e in entries], dtype=float)
        det_classes = np.array([e[1] for e in entries], dtype=int)
        valid = (det[:, 0] < det[:, 2]) & (det[:, 1] < det[:, 3])
        det, det_scores, det_classes = det[valid], det_scores[valid], det_classes[valid]
        gt_entries = gt.get(key, [])
        gt_boxes = np.array([e[2:] for e in gt_entries], dtype=float).reshape(-1, 4)
        gt_classes = np.array([e[1] for e in gt_entries], dtype=int)
        for class_id in range(1, num_classes + 1):
            selected = det_classes == class_id
            if not selected.any():
                continue
            tp = label_true_positives(det[selected], gt_boxes[gt_classes == class_id])
            scores_per_class[class_id].append(det_scores[selected])
            tp_per_class[class_id].append(tp)

    ap = np.full(num_classes + 1, np.nan)
    for class_id in range(1, num_classes + 1):
        if num_gt[class_id] == 0:
            continue
        scores = np.concatenate(scores_per_class[class_id]) if scores_per_class[class_id] else np.zeros(0)
        tp = np.concatenate(tp_per_class[class_id]) if tp_per_class[class_id] else np.zeros(0, dtype=bool)
        ap[class_id] = average_precision(scores, tp, int(num_gt[class_id]))
    names = dict(categories)
    per_class = {names[c]: float(ap[c]) for c in sorted(names)}
    mean_ap = float(np.nanmean(ap[1:])) if not np.isnan(ap[1:]).all() else float("nan")
    return {"mAP": mean_ap, "per_class": per_class}
