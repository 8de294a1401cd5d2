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

Speed: the results are split between forked worker processes (``workers``, default: up to 2),
each of which parses its own byte range of the results file while the parent parses the ground
truth, then computes its detections' frame areas and exact intersections (one batched pycocotools
call per (video, category, frame)) and sends back only small arrays; a worker exits without
freeing its parsed JSON. The garbage collector is paused while parsing (it would otherwise
re-scan the millions of freshly created objects). With one worker, without ``fork``, or for small
inputs the same steps run in-process.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqformer.evaluation.rle_ops import crowd_overlap_ratios, exact_intersections, rle_areas
from seqformer.evaluation.ytvis_inputs import (
    Detections,
    GroundTruth,
    ResultError,
    YTVISEvalError,
    gc_paused,
    load_json,
    parse_json,
    parse_json_file_span,
    read_bytes,
    split_json_array,
)
from seqformer.evaluation.ytvis_matching import (
    IOU_THRESHOLDS,
    MAX_DETS,
    STAT_KEYS,
    accumulate,
    match_group,
    outside_area_ranges,
    summarize,
)
from seqformer.evaluation.ytvis_notes import warn_about_inputs

__all__ = ["YTVISEvalError", "default_workers", "evaluate_ytvis", "format_ytvis_table"]
logger = logging.getLogger(__name__)

# Below these sizes per worker, forking and shipping the ground truth costs more than it saves.
MIN_RESULTS_PER_WORKER = 2000
MIN_BYTES_PER_WORKER = 8_000_000


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


def evaluate_ytvis(groundtruth: str | Path | dict, results: str | Path | list,
                   workers: int | None = None) -> dict[str, float]:
    """The 12 official summary numbers (AP, AP50, ..., ARl) of ``results`` against ``groundtruth``.

    Both may be paths to JSON files or already-loaded objects (which are not modified).
    ``workers``: processes sharing the results (default :func:`default_workers`); the numbers do
    not depend on it.
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with gc_paused():
        gt, parts, results_name = _detection_parts(groundtruth, results, workers)
        skipped = sum(part.skipped_unknown_category for part in parts)
        if skipped:
            logger.warning("%d result(s) in %s have a category_id absent from the groundtruth categories "
                           "and are not evaluated (as in the official evaluator)", skipped, results_name)
        merged = _merge(parts)
        warn_about_inputs(gt, merged.scores, merged.skipped_unknown_category, results_name)
        precision, recall = _evaluate(gt, merged)
    return summarize(precision, recall)


@dataclass
class _DetectionPart:
    """What one worker sends back for its slice of the results (one entry per evaluated result)."""

    video: np.ndarray  # position of the video in gt.video_ids
    category: np.ndarray  # position of the category in gt.category_ids
    scores: np.ndarray
    area_sum: np.ndarray  # sum of the per-frame mask areas (exact integers in float64)
    nonzero_frames: np.ndarray
    pair_det: np.ndarray  # (detection row, annotation row, intersection summed over frames)
    pair_ann: np.ndarray
    pair_inter: np.ndarray
    skipped_unknown_category: int
    inferred_lengths: dict[object, tuple[int, int]]


def _areas_by_result(data: list) -> tuple[np.ndarray, np.ndarray] | None:
    """(area of every present frame, first frame of each result), or None if some frame is not
    a plain compressed RLE. Needs no ground truth, so workers do it while that is being parsed;
    it is only used once :class:`Detections` has accepted the same frames."""
    try:
        counts = [sum(1 for seg in det["segmentations"] if seg) for det in data]
        areas = rle_areas([seg for det in data for seg in det["segmentations"] if seg])
    except Exception:  # noqa: BLE001 - malformed results are reported by Detections later
        return None
    return areas, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _detection_part(data: object, name: str, gt: GroundTruth, first_index: int,
                    inferred_lengths: dict[object, tuple[int, int]],
                    areas_by_result: tuple[np.ndarray, np.ndarray] | None) -> _DetectionPart:
    dets = Detections(data, name, gt, first_index, inferred_lengths)
    num = len(dets.ids)
    video = np.array([gt.video_position[v] for v in dets.video], dtype=np.int64)
    category = np.array([gt.category_position[c] for c in dets.category], dtype=np.int64)
    frame_count = np.diff(dets.frame_start)
    if areas_by_result is None:
        frame_area = rle_areas(dets.frames)
    else:
        all_areas, first_frame = areas_by_result
        kept = np.asarray(dets.ids, dtype=np.int64) - 1 - first_index
        frame_area = all_areas[np.repeat(first_frame[kept] - dets.frame_start[:-1], frame_count)
                               + np.arange(len(dets.frames))]
    owner = np.repeat(np.arange(num), frame_count)
    pairs = _pair_intersections(dets, (video * len(gt.category_ids) + category)[owner], owner, frame_area, gt)
    return _DetectionPart(
        video, category, dets.scores, np.bincount(owner, weights=frame_area, minlength=num),
        np.bincount(owner, weights=frame_area > 0, minlength=num).astype(np.int64), *pairs,
        dets.skipped_unknown_category, dets.inferred_lengths)


def _pair_intersections(dets: Detections, frame_key: np.ndarray, owner: np.ndarray, frame_area: np.ndarray,
                        gt: GroundTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(detection row, annotation row, intersection summed over frames) of same-group pairs.

    Only frames where both the detection and a ground truth of its (video, category) are present
    are intersected; elsewhere the intersection is 0 and the union needs only the area sums.
    """
    frame_t = dets.frame_t_array
    candidates = np.flatnonzero(np.isin(frame_key, gt.ann_key))
    order = candidates[np.lexsort((frame_t[candidates], frame_key[candidates]))]
    key, t = frame_key[order], frame_t[order]
    starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (t[1:] != t[:-1])]) if len(order) else order
    stops = np.r_[starts[1:], len(order)]
    frames = [dets.frames[i] for i in order.tolist()]
    ratios, block_lo, block_dets, block_anns, ann_rows = [], [], [], [], []
    for lo, hi, block_key in zip(starts.tolist(), stops.tolist(), zip(key[starts].tolist(), t[starts].tolist())):
        block = gt.frame_blocks.get(block_key)
        if block is not None:
            ratios.append(crowd_overlap_ratios(frames[lo:hi], block[1], block[2]))
            block_lo.append(lo)
            block_dets.append(hi - lo)
            block_anns.append(len(block[0]))
            ann_rows += block[0]
    if not ratios:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    num_anns = np.array(block_anns, dtype=np.int64)
    entries = np.array(block_dets, dtype=np.int64) * num_anns
    block = np.repeat(np.arange(len(entries)), entries)
    entry = np.arange(entries.sum()) - np.repeat(np.cumsum(entries) - entries, entries)
    frame = order[np.array(block_lo, dtype=np.int64)[block] + entry // num_anns[block]]
    first_ann = np.repeat(np.cumsum(num_anns) - num_anns, entries)
    ann = np.array(ann_rows, dtype=np.int64)[first_ann + entry % num_anns[block]]
    inter = exact_intersections(np.concatenate(ratios), frame_area[frame])
    code, position = np.unique(owner[frame] * len(gt.ann_ids) + ann, return_inverse=True)
    total = np.bincount(position, weights=inter).astype(np.int64)
    return code // len(gt.ann_ids), code % len(gt.ann_ids), total


def _load_groundtruth(groundtruth: str | Path | dict) -> GroundTruth:
    data, name = load_json(groundtruth, "groundtruth")
    return GroundTruth(data, name)


def _detection_parts(groundtruth: str | Path | dict, results: str | Path | list,
                     workers: int) -> tuple[GroundTruth, list[_DetectionPart], str]:
    """Ground truth and the results' parts: in forked workers when worth it, else in-process."""
    spans = None
    if isinstance(results, (str, Path)):
        name = str(results)
        try:
            if workers > 1 and os.path.getsize(results) >= workers * MIN_BYTES_PER_WORKER:
                spans = split_json_array(results, workers)
        except OSError:
            spans = None  # reported with context by the in-process path
    else:
        name = "<in-memory results>"
        count = len(results) if isinstance(results, list) else 0
        bounds = [count * k // workers for k in range(workers + 1)]
        if workers > 1 and count >= workers * MIN_RESULTS_PER_WORKER:
            spans = list(zip(bounds[:-1], bounds[1:]))
    gt = None
    if spans and "fork" in multiprocessing.get_all_start_methods():
        gt, parts = _run_workers(groundtruth, results, spans, name)
        if parts is not None:
            return gt, parts, name
    gt = gt or _load_groundtruth(groundtruth)
    if isinstance(results, (str, Path)):
        results = parse_json(read_bytes(results, "results"), "results", name)
    return gt, [_detection_part(results, name, gt, 0, {}, None)], name


def _run_workers(groundtruth: str | Path | dict, source: str | Path | list, spans: list[tuple[int, int]],
                 name: str) -> tuple[GroundTruth, list[_DetectionPart] | None]:
    """Fork one worker per span, parse the ground truth meanwhile, collect the parts in order.

    Parts are None when a span of the results file did not parse on its own (the caller then
    parses the file whole, which also gives the right error message). Workers are always reaped.
    """
    context = multiprocessing.get_context("fork")
    conns, procs, parts = [], [], None
    try:
        for span in spans:
            parent_end, child_end = context.Pipe()
            proc = context.Process(target=_worker, args=(child_end, source, span), daemon=True)
            proc.start()
            child_end.close()
            conns.append(parent_end)
            procs.append(proc)
        gt = _load_groundtruth(groundtruth)
        statuses = [_receive(conn) for conn in conns]
        if any(status[0] != "parsed" for status in statuses):
            return gt, None
        shared = pickle.dumps((gt, name), protocol=pickle.HIGHEST_PROTOCOL)
        first_index = 0
        for conn, (_, count) in zip(conns, statuses):
            conn.send_bytes(shared)
            conn.send(first_index)
            first_index += count
        parts = _checked_parts([_receive(conn) for conn in conns], name)
        return gt, parts
    finally:
        for conn in conns:
            conn.close()
        for proc in procs:
            if parts is None:  # an error or a fallback: the workers' results are not wanted
                proc.terminate()
            proc.join()


def _receive(conn: multiprocessing.connection.Connection) -> tuple:
    try:
        reply = conn.recv()
    except EOFError:
        raise RuntimeError("a YouTube-VIS evaluation worker exited unexpectedly") from None
    if reply[0] == "crash":
        raise RuntimeError(f"a YouTube-VIS evaluation worker failed:\n{reply[1]}")
    return reply


def _worker(conn: multiprocessing.connection.Connection, source: str | Path | list, span: tuple[int, int]) -> None:
    """Body of a forked worker; it never returns, so its parsed JSON is never freed (os._exit)."""
    try:
        try:
            data = source[span[0]:span[1]] if isinstance(source, list) else parse_json_file_span(source, *span)
        except (OSError, ValueError) as err:  # ValueError includes JSONDecodeError and UnicodeDecodeError
            conn.send(("unparsable", str(err)))
            return
        areas = _areas_by_result(data)
        conn.send(("parsed", len(data)))
        gt, name = pickle.loads(conn.recv_bytes())
        first_index = conn.recv()
        lengths: dict[object, tuple[int, int]] = {}
        try:
            conn.send(("done", _detection_part(data, name, gt, first_index, lengths, areas)))
        except YTVISEvalError as err:
            conn.send(("error", str(err), getattr(err, "index", None), lengths))
    except (EOFError, BrokenPipeError):
        pass  # the parent gave up; nothing to report to
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            conn.send(("crash", traceback.format_exc()))
        except OSError:
            pass
    finally:
        os._exit(0)


def _checked_parts(replies: list[tuple], name: str) -> list[_DetectionPart]:
    """The parts, or the error the in-process evaluation would raise first.

    A video without a known length takes it from its first result; each worker only saw its own
    slice, so a later slice that inferred a different length fails at its first such result.
    """
    known: dict[object, int] = {}
    for reply in replies:
        lengths = reply[1].inferred_lengths if reply[0] == "done" else reply[3]
        conflicts = [(index, vid, length) for vid, (length, index) in lengths.items()
                     if known.get(vid, length) != length]
        failed = reply[0] == "error"
        error_index = reply[2] if failed and reply[2] is not None else math.inf
        if conflicts and min(conflicts)[0] < error_index:
            index, vid, length = min(conflicts)
            raise ResultError(name, index, f" (video {vid!r}): {length} segmentations but video {vid!r} "
                                           f"has {known[vid]} frames")
        if failed:
            raise YTVISEvalError(reply[1])
        for vid, (length, _) in lengths.items():
            known.setdefault(vid, length)
    return [reply[1] for reply in replies]


def _merge(parts: list[_DetectionPart]) -> _DetectionPart:
    offsets = np.cumsum([0] + [len(part.scores) for part in parts])[:-1]
    return _DetectionPart(
        *(np.concatenate([getattr(part, field) for part in parts]) for field in (
            "video", "category", "scores", "area_sum", "nonzero_frames")),
        np.concatenate([part.pair_det + offset for part, offset in zip(parts, offsets)]),
        np.concatenate([part.pair_ann for part in parts]), np.concatenate([part.pair_inter for part in parts]),
        sum(part.skipped_unknown_category for part in parts), {})


def _evaluate(gt: GroundTruth, dets: _DetectionPart) -> tuple[np.ndarray, np.ndarray]:
    num_cat, num_det = len(gt.category_ids), len(dets.scores)
    det_keys = dets.video * num_cat + dets.category
    gt_cat = gt.ann_key % num_cat
    with np.errstate(invalid="ignore", divide="ignore"):
        det_avg = np.where(dets.nonzero_frames > 0, dets.area_sum / dets.nonzero_frames, 0.0)

    # Rank of each detection inside its (video, category): stable descending score.
    order = np.lexsort((np.arange(num_det), -dets.scores, det_keys))
    starts = np.flatnonzero(np.r_[True, det_keys[order][1:] != det_keys[order][:-1]]) if num_det else order
    rank = np.empty(num_det, dtype=np.int64)
    rank[order] = np.arange(num_det) - np.repeat(starts, np.diff(np.r_[starts, num_det]))
    evaluated = np.flatnonzero(rank < MAX_DETS[-1])

    outside = outside_area_ranges(det_avg)  # unmatched detections outside the range are ignored
    true_pos = np.zeros((outside.shape[0], len(IOU_THRESHOLDS), num_det), dtype=bool)
    false_pos = np.broadcast_to(~outside[:, None, :], true_pos.shape).copy()
    gt_avg = np.asarray(gt.ann_avg_area, dtype=np.float64)
    gt_crowd = np.asarray(gt.ann_crowd, dtype=bool)
    gt_ids = np.asarray(gt.ann_ids)
    for gt_rows, det_rows, inter in _groups(gt.ann_key, det_keys, dets):
        union = dets.area_sum[det_rows][:, None] + gt.ann_area_sum[gt_rows][None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            ious = np.where(union > 0, inter / union, 0.0)
        rows = np.argsort(rank[det_rows], kind="stable")
        rows = rows[rank[det_rows[rows]] < MAX_DETS[-1]]
        d = det_rows[rows]
        true_pos[:, :, d], false_pos[:, :, d] = match_group(
            ious[rows], det_avg[d], gt_ids[gt_rows], gt_crowd[gt_rows], gt_avg[gt_rows])

    gt_ignore = gt_crowd[None, :] | outside_area_ranges(gt_avg)
    num_gt_not_ignored = np.stack(
        [np.bincount(gt_cat, weights=~ignored, minlength=num_cat) for ignored in gt_ignore], axis=1)
    return accumulate(dets.category[evaluated], dets.video[evaluated], rank[evaluated], dets.scores[evaluated],
                      true_pos[:, :, evaluated], false_pos[:, :, evaluated], num_gt_not_ignored)


def _groups(gt_keys: np.ndarray, det_keys: np.ndarray,
            dets: _DetectionPart) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per (video, category) with ground truth and detections: (GT rows, det rows, intersections [D, G])."""
    gt_sorted = np.argsort(gt_keys, kind="stable")
    det_sorted = np.flatnonzero(np.isin(det_keys, gt_keys))
    det_sorted = det_sorted[np.argsort(det_keys[det_sorted], kind="stable")]
    det_local, gt_local = np.zeros(len(det_keys), dtype=np.int64), np.zeros(len(gt_keys), dtype=np.int64)
    for sorted_rows, keys, out in ((det_sorted, det_keys, det_local), (gt_sorted, gt_keys, gt_local)):
        sorted_keys = keys[sorted_rows]
        out[sorted_rows] = np.arange(len(sorted_rows)) - np.searchsorted(sorted_keys, sorted_keys, side="left")
    pair_order = np.argsort(det_keys[dets.pair_det], kind="stable")
    pair_keys = det_keys[dets.pair_det][pair_order]
    sorted_gt_keys, sorted_det_keys = gt_keys[gt_sorted], det_keys[det_sorted]
    group_keys = np.unique(sorted_det_keys)
    for d_lo, d_hi, g_lo, g_hi, p_lo, p_hi in zip(
            *(np.searchsorted(sorted_keys, group_keys, side=side).tolist()
              for sorted_keys in (sorted_det_keys, sorted_gt_keys, pair_keys) for side in ("left", "right"))):
        det_rows, gt_rows = det_sorted[d_lo:d_hi], gt_sorted[g_lo:g_hi]
        inter = np.zeros((len(det_rows), len(gt_rows)), dtype=np.int64)
        pairs = pair_order[p_lo:p_hi]
        inter[det_local[dets.pair_det[pairs]], gt_local[dets.pair_ann[pairs]]] = dets.pair_inter[pairs]
        yield gt_rows, det_rows, inter


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
