"""AVA frame-mAP@0.5, vectorised, equal per class to the reference evaluators.

``protocol`` selects whose numbers to reproduce (see :mod:`seqformer.evaluation.ava_protocols`):
``activitynet`` (default) is ActivityNet's ``get_ava_performance.py`` as it is since 2020-04-24,
the AVA challenge scorer: every keyframe in the ground-truth CSV (a row of any class, or a 2-column
``video_id,second`` row) is included; detections on other keyframes are ignored; detections on an
included keyframe without an evaluated box are false positives. Label-map classes are the
whitelist; each keyframe keeps at most 50 detections through a min-heap of
``(score, action, y1, x1, y2, x2)`` (a row enters a full heap only with a score strictly above the
heap minimum, evicting the lexicographically smallest tuple), listed by descending score, stable
over the heap's array layout; boxes with ``y1 >= y2`` or ``x1 >= x2`` are dropped; per keyframe and
class each detection, in list order, takes its maximum-IoU ground-truth box (first on ties, areas
without +1) and is a true positive iff IoU >= 0.5 and that box is still free. Per class, scores are
concatenated in keyframe order (first appearance in the detection file), ordered with
``np.argsort(...)[::-1]`` and turned into VOC all-point AP under the monotone precision envelope.
Classes without ground truth get NaN and are left out of the mean. ``pyslowfast`` and
``mmaction2`` reproduce those toolkits' evaluators. ``exclusions`` (the pre-2020 excluded-timestamps
CSV) removes those keyframes' rows from both files first; the official script today has no such
option (empty keyframes are 2-column rows instead), PySlowFast and MMAction2 have it.

Score ties make the result depend on list order, so this module reproduces the order exactly:
per-class arrays are built in the reference keyframe and list order and sorted with the same
``np.argsort``; the heap's kept set is computed in closed form, also for ties at the cap
(:func:`_apply_heap_cap`); keyframes where the order among equal-score detections of one class
(fixed only by the heap's array layout) could change a label, or where a detection's max IoU is
shared by different ground-truth boxes (the pick then follows the GT list order), are replayed with
the official heap logic in Python (:func:`_evaluate_keyframe_exactly`); these are rare. The
uncapped protocols list every keyframe in a fully determined order and need no replay.
"""
from __future__ import annotations

import heapq
import os
import warnings

import numpy as np
import pandas as pd

from seqformer.data.ava_format import AvaFormatError, key_only_rows, read_ava_frame, read_exclusions, read_labelmap
from seqformer.evaluation.ava_notes import ava_input_notes
from seqformer.evaluation.ava_protocols import (
    IOU_THRESHOLD,
    average_precisions,
    get_protocol,
    greedy_match,
    label_in_list_order,
    pairwise_iou,
    sorted_gt_groups,
)

MAX_DETECTIONS_PER_KEYFRAME = 50


def evaluate_ava(labelmap: str | os.PathLike, groundtruth: str | os.PathLike,
                 detections: str | os.PathLike, exclusions: str | os.PathLike | None = None,
                 protocol: str = "activitynet") -> dict:
    """Return ``{"mAP", "per_class": {class name: AP}, "protocol", "detections": counts}``.

    ``notes``: one line each, with counts, for inputs the rules scored silently
    (:mod:`seqformer.evaluation.ava_notes`); the numbers stay the reference's.

    ``per_class`` lists every label-map class in id order, NaN for classes the protocol leaves
    out of the mean (no ground truth; for ``mmaction2`` also no scored detection). ``detections``
    counts the detection rows by fate: ``scored``, and not scored because ``not_in_labelmap``,
    ``excluded``, ``keyframe_not_scored`` (by the protocol's keyframe rule), ``over_cap`` (beyond
    50 per keyframe) or ``invalid_box`` (``x1 >= x2`` or ``y1 >= y2``, dropped by the TF evaluator).
    """
    spec = get_protocol(protocol)
    categories = read_labelmap(labelmap)
    class_ids = np.array([class_id for class_id, _ in categories], dtype=np.int64)
    if class_ids.min() < 1:
        raise AvaFormatError(f"{labelmap}: class ids must be >= 1 (official evaluator requirement)")
    num_classes = int(class_ids.max())
    whitelist = np.zeros(num_classes + 1, dtype=bool)
    whitelist[class_ids] = True

    gt_frame = read_ava_frame(groundtruth, "gt")
    det_frame = read_ava_frame(detections, "det")
    notes = ava_input_notes(groundtruth, detections, labelmap, gt_frame, det_frame, whitelist)
    keys = _KeyframeIndex(gt_frame, det_frame)
    excluded = keys.encode_pairs(read_exclusions(exclusions)) if exclusions else np.zeros(0, np.int64)
    included = np.unique(keys.gt_keys[~np.isin(keys.gt_keys, excluded)])  # any GT row, any class
    gt, _ = _rows(gt_frame, keys.gt_keys, whitelist, excluded)
    counted = _rows(gt_frame, keys.gt_keys, whitelist, np.zeros(0, np.int64))[0] if spec.excluded_gt_in_recall else gt
    num_gt = np.bincount(counted["cls"], minlength=num_classes + 1)
    det, n_excluded = _rows(det_frame, keys.det_keys, whitelist, excluded)
    boxed_det_rows = int((~key_only_rows(det_frame)).sum())
    del gt_frame, det_frame
    _reject_inverted_boxes(gt, groundtruth)
    counts = {"not_in_labelmap": boxed_det_rows - len(det["key"]) - n_excluded, "excluded": n_excluded}

    if spec.scored_keyframes == "in_groundtruth_file":
        scored = np.isin(det["key"], included)
    elif spec.scored_keyframes == "with_evaluated_boxes":
        scored = np.isin(det["key"], gt["key"])
    else:
        scored = np.ones(len(det["key"]), dtype=bool)
    counts["keyframe_not_scored"] = int((~scored).sum())
    det = {name: values[scored] for name, values in det.items()}
    # per-class arrays concatenate keyframes in order of first appearance in one of the files
    _, key_order = pd.factorize(gt["key"] if spec.keyframe_order == "groundtruth" else det["key"], sort=False)
    image = pd.Index(key_order).get_indexer(det["key"]).astype(np.int64)
    if spec.listing == "heap":
        labelled, counts["over_cap"], counts["invalid_box"] = _label_detections(det, gt, num_classes, image)
    else:
        if spec.keep_degenerate_boxes:
            _reject_inverted_boxes(det, detections, "MMAction2's box list rejects it")
        labelled = label_in_list_order(det, gt, num_classes, spec, image)
        counts["over_cap"], counts["invalid_box"] = 0, len(det["key"]) - len(labelled["tp"])
    counts["scored"] = len(labelled["tp"])

    ap = average_precisions(labelled, num_gt, spec.nan_without_detections)
    names = dict(categories)  # later duplicates of an id win, as in the official category index
    per_class = {names[c]: float(ap[c]) for c in sorted(names)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no class is scored
        mean_ap = float(np.nanmean(ap[1:]))
    return {"mAP": mean_ap, "per_class": per_class, "protocol": spec.name, "detections": counts, "notes": notes}


class _KeyframeIndex:
    """Integer keys for (video_id, second) shared by the ground truth, detections and exclusions."""

    def __init__(self, gt_frame: pd.DataFrame, det_frame: pd.DataFrame):
        self.videos = pd.Index(gt_frame[0].cat.categories).union(pd.Index(det_frame[0].cat.categories))
        seconds = [f[1].to_numpy(np.int64) for f in (gt_frame, det_frame)]
        nonempty = [s for s in seconds if s.size]
        self.first_second = min((int(s.min()) for s in nonempty), default=0)
        last = max((int(s.max()) for s in nonempty), default=0)
        self.span = last - self.first_second + 1
        if self.span * max(len(self.videos), 1) >= 2**53:
            raise ValueError("keyframe seconds span too large to index")
        self.gt_keys = self._encode(gt_frame[0], seconds[0])
        self.det_keys = self._encode(det_frame[0], seconds[1])

    def _encode(self, videos: pd.Series, seconds: np.ndarray) -> np.ndarray:
        to_union = self.videos.get_indexer(videos.cat.categories).astype(np.int64)
        video = to_union[videos.cat.codes.to_numpy()]
        return video * self.span + (seconds - self.first_second)

    def encode_pairs(self, pairs: set[tuple[str, int]]) -> np.ndarray:
        """Keys of the pairs whose video and second fall inside the index (others match nothing)."""
        if not pairs:
            return np.zeros(0, np.int64)
        video_ids, seconds = zip(*pairs)
        video = self.videos.get_indexer(list(video_ids)).astype(np.int64)
        offset = np.asarray(seconds, dtype=np.int64) - self.first_second
        inside = (video >= 0) & (offset >= 0) & (offset < self.span)
        return video[inside] * self.span + offset[inside]


def _rows(frame: pd.DataFrame, keys: np.ndarray, whitelist: np.ndarray,
          excluded: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Whitelisted, non-excluded box rows in file order; boxes as official [y1, x1, y2, x2].

    Column 7 (person id for GT, whose official reader sorts by it; score for detections) becomes
    ``score``, 1.0 where absent; ``line`` is the 1-based file line. Also returns the number of box
    rows of excluded keyframes.
    """
    cls = frame[6].to_numpy(np.int64)
    boxed = ~key_only_rows(frame)
    keep = boxed & (cls >= 0) & (cls < len(whitelist))
    keep[keep] = whitelist[cls[keep]]
    n_excluded = 0
    if excluded.size:
        dropped = boxed & np.isin(keys, excluded)
        n_excluded = int(dropped.sum())
        keep &= ~dropped
    last = frame[7].to_numpy(np.float64)[keep]
    return {
        "key": keys[keep],
        "cls": cls[keep],
        "score": np.where(np.isnan(last), 1.0, last),
        "box": np.stack([frame[c].to_numpy(np.float64)[keep] for c in (3, 2, 5, 4)], axis=1),
        "line": np.flatnonzero(keep) + 1,
    }, n_excluded


def _reject_inverted_boxes(rows: dict, path, why: str = "a box must have x1 <= x2 and y1 <= y2") -> None:
    """Raise for the first box with x1 > x2 or y1 > y2 (the TF box list raises on those)."""
    box = rows["box"]
    inverted = np.flatnonzero((box[:, 0] > box[:, 2]) | (box[:, 1] > box[:, 3]))
    if inverted.size:
        line = int(rows["line"][inverted.min()])
        raise AvaFormatError(f"{path}:{line}: box with x1 > x2 or y1 > y2 ({why})")


def _label_detections(det: dict, gt: dict, num_classes: int,
                      image: np.ndarray) -> tuple[dict[str, np.ndarray], int, int]:
    """ActivityNet listing (capped heap) and labels of every evaluated detection, with its sort
    keys; also the numbers of rows dropped by the cap and for invalid boxes."""
    cap = MAX_DETECTIONS_PER_KEYFRAME
    image = image.astype(np.int64)
    order = np.argsort(-det["score"], kind="stable")
    order = order[np.argsort(image[order], kind="stable")]
    image_s, score_s = image[order], det["score"][order]
    counts = np.bincount(image_s, minlength=image.max() + 1 if image.size else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank = np.arange(len(order)) - starts[image_s]

    keep = rank < cap
    over = np.flatnonzero(counts > cap)
    boundary_tie = over[score_s[starts[over] + cap - 1] == score_s[starts[over] + cap]]
    if boundary_tie.size:
        _apply_heap_cap(keep, order, image_s, score_s, starts, boundary_tie, det)
    kept = order[keep]
    box = det["box"][kept]
    valid = (box[:, 0] < box[:, 2]) & (box[:, 1] < box[:, 3])
    kept = kept[valid]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = rank
    fast = {"image": image[kept], "position": position[kept], "cls": det["cls"][kept],
            "score": det["score"][kept]}

    gt_group, gt_box, gt_order = sorted_gt_groups(gt, gt["score"], num_classes)
    fast["tp"], qualifies, ambiguous = greedy_match(det["key"][kept] * (num_classes + 1) + fast["cls"],
                                                    det["box"][kept], gt_group, gt_box)
    # Keyframes whose result depends on the heap's array layout or the GT list order: replay them.
    replay = np.zeros(len(counts), dtype=bool)
    replay[fast["image"][ambiguous]] = True
    replay[_images_with_relevant_class_ties(fast, qualifies)] = True
    fast = {name: values[~replay[fast["image"]]] for name, values in fast.items()}

    exact = [_evaluate_keyframe_exactly(
                image_id,
                np.sort(order[starts[image_id]:starts[image_id] + counts[image_id]]),
                det, gt, gt_order, gt_group, num_classes)
             for image_id in np.flatnonzero(replay)]
    labelled = {name: np.concatenate([fast[name]] + [e[name] for e in exact]) for name in fast}
    return labelled, int((~keep).sum()), int((~valid).sum())


def _apply_heap_cap(keep: np.ndarray, order: np.ndarray, image_s: np.ndarray, score_s: np.ndarray,
                    starts: np.ndarray, tie_images: np.ndarray, det: dict) -> None:
    """Exact kept set of the official capped heap for keyframes with a score tie at the cap.

    With S the cap-th highest score, A the rows scoring above S and B those scoring exactly S:
    until the heap holds `cap` rows of A u B (at file row t) every A u B row enters and only
    lower rows are evicted; afterwards B rows cannot enter (not strictly above the minimum S) and
    each later A row evicts the smallest B tuple (action, y1, x1, y2, x2). So the kept set is A
    plus the B rows up to t minus the k smallest of them, k = number of A rows after t.
    """
    cap = MAX_DETECTIONS_PER_KEYFRAME
    in_tie_image = np.zeros(len(starts), dtype=bool)
    in_tie_image[tie_images] = True
    sel = np.flatnonzero(in_tie_image[image_s])
    img = image_s[sel]
    threshold = score_s[starts[img] + cap - 1]
    above, equal = score_s[sel] > threshold, score_s[sel] == threshold
    contenders = sel[above | equal]
    img_c, row_c = image_s[contenders], order[contenders]
    by_file = np.lexsort((row_c, img_c))
    group_start = np.searchsorted(img_c[by_file], img_c[by_file], side="left")
    cap_row = np.zeros(len(starts), dtype=np.int64)
    reaches_cap = by_file[np.arange(len(by_file)) - group_start == cap - 1]
    cap_row[img_c[reaches_cap]] = row_c[reaches_cap]

    late_above = above & (order[sel] > cap_row[img])
    evictions = np.bincount(img[late_above], minlength=len(starts))
    early_equal = sel[equal & (order[sel] <= cap_row[img])]
    rows = order[early_equal]
    box, cls, eq_img = det["box"][rows], det["cls"][rows], image_s[early_equal]
    by_tuple = np.lexsort((box[:, 3], box[:, 2], box[:, 1], box[:, 0], cls, eq_img))
    tuple_rank = np.arange(len(by_tuple)) - np.searchsorted(eq_img[by_tuple], eq_img[by_tuple], side="left")
    evicted = np.zeros(len(early_equal), dtype=bool)
    evicted[by_tuple] = tuple_rank < evictions[eq_img[by_tuple]]

    keep[sel] = above
    keep[early_equal[~evicted]] = True


def _images_with_relevant_class_ties(fast: dict, qualifies: np.ndarray) -> np.ndarray:
    """Keyframes where equal-score detections of one class include one that can match a GT box.

    Their relative order comes from the heap's array layout; it is irrelevant only when all of
    them are false positives whatever the order (no GT box reaches the IoU threshold).
    """
    image, score = fast["image"], fast["score"]
    same_as_prev = (image[1:] == image[:-1]) & (score[1:] == score[:-1])  # rows are in (image, -score)
    in_run = np.zeros(len(image), dtype=bool)
    in_run[1:] |= same_as_prev
    in_run[:-1] |= same_as_prev
    tied = np.flatnonzero(in_run)
    tied = tied[np.lexsort((fast["cls"][tied], score[tied], image[tied]))]
    new_group = np.ones(len(tied), dtype=bool)
    new_group[1:] = ((image[tied][1:] != image[tied][:-1]) | (score[tied][1:] != score[tied][:-1])
                     | (fast["cls"][tied][1:] != fast["cls"][tied][:-1]))
    group = np.cumsum(new_group) - 1
    size = np.bincount(group)
    matchable = np.bincount(group, weights=qualifies[tied]) > 0
    return image[tied][((size > 1) & matchable)[group]]


def _heap_listing(entries: list[tuple], capacity: int) -> list[tuple]:
    """Official per-keyframe reader: capped min-heap, then a stable sort by descending score."""
    heap: list[tuple] = []
    for entry in entries:
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return sorted(heap, key=lambda e: -e[0])


def _evaluate_keyframe_exactly(image_id: int, det_rows: np.ndarray, det: dict, gt: dict,
                               gt_order: np.ndarray, gt_group: np.ndarray, num_classes: int) -> dict:
    """Replay the official reader and matcher on one keyframe (rows given in file order)."""
    def entries(rows: np.ndarray, source: dict) -> list[tuple]:
        return list(zip(source["score"][rows].tolist(), source["cls"][rows].tolist(),
                        *source["box"][rows].T.tolist()))

    key = int(det["key"][det_rows[0]])
    lo, hi = np.searchsorted(gt_group, [key * (num_classes + 1), (key + 1) * (num_classes + 1)])
    listed = _heap_listing(entries(det_rows, det), MAX_DETECTIONS_PER_KEYFRAME)
    gt_listed = _heap_listing(entries(np.sort(gt_order[lo:hi]), gt), 0)
    det_cls = np.array([e[1] for e in listed], dtype=np.int64)
    det_box = np.array([e[2:] for e in listed], dtype=np.float64).reshape(-1, 4)
    gt_cls = np.array([e[1] for e in gt_listed], dtype=np.int64)
    gt_box = np.array([e[2:] for e in gt_listed], dtype=np.float64).reshape(-1, 4)
    valid = np.flatnonzero((det_box[:, 0] < det_box[:, 2]) & (det_box[:, 1] < det_box[:, 3]))
    tp = np.zeros(len(listed), dtype=bool)
    for class_id in np.unique(det_cls[valid]):
        dets = valid[det_cls[valid] == class_id]
        gts = np.flatnonzero(gt_cls == class_id)
        taken = np.zeros(len(gts), dtype=bool)
        for d in dets:
            if gts.size == 0:
                break
            iou = pairwise_iou(np.repeat(det_box[d:d + 1], len(gts), axis=0), gt_box[gts])
            j = int(np.argmax(iou))
            if iou[j] >= IOU_THRESHOLD and not taken[j]:
                tp[d] = taken[j] = True
    return {"image": np.full(len(valid), image_id, dtype=np.int64), "position": valid,
            "cls": det_cls[valid], "score": np.array([listed[i][0] for i in valid], dtype=np.float64),
            "tp": tp[valid]}


