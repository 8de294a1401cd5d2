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
are computed per (video, frame) with one batched pycocotools call.
"""
from __future__ import annotations

import gc
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from seqformer.evaluation.rle_ops import RLEFormatError, frame_intersections, frame_to_rle, rle_areas
from seqformer.evaluation.ytvis_matching import STAT_KEYS, GroupResult, accumulate, match_group, summarize

logger = logging.getLogger(__name__)
MAX_DETS_PER_GROUP = 100


class YTVISEvalError(ValueError):
    """Malformed ground truth or results; the message names the file, video and annotation."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(source: str | Path | dict | list, what: str) -> tuple[object, str]:
    if not isinstance(source, (str, Path)):
        return source, f"<in-memory {what}>"
    path = Path(source)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise YTVISEvalError(f"cannot read {what} file {path}: {err}") from err
    try:
        return json.loads(raw), str(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise YTVISEvalError(f"{what} file {path} is not valid JSON: {err}") from err


class _GroundTruth:
    """Videos, categories and per-annotation arrays needed by the evaluation."""

    def __init__(self, data: object, name: str) -> None:
        if not isinstance(data, dict):
            raise YTVISEvalError(f"groundtruth {name}: top level must be an object")
        for key in ("videos", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise YTVISEvalError(f"groundtruth {name}: missing list '{key}'")
        self.name = name
        self.video_size: dict[object, list[int]] = {}
        self.video_length: dict[object, int | None] = {}
        for i, video in enumerate(data["videos"]):
            self._add_video(video, i)
        self.video_ids = sorted(self.video_size)
        try:
            self.category_ids = sorted({c["id"] for c in data["categories"]})
        except (TypeError, KeyError) as err:
            raise YTVISEvalError(f"groundtruth {name}: every category needs an 'id'") from err
        self.ann_ids: list[object] = []
        self.ann_video: list[object] = []
        self.ann_category: list[object] = []
        self.ann_crowd: list[bool] = []
        self.ann_avg_area: list[float] = []
        self.ann_rles: list[list[dict | None]] = []
        seen: set[object] = set()
        categories = set(self.category_ids)
        for i, ann in enumerate(data["annotations"]):
            self._add_annotation(ann, i, seen, categories)
        self.ann_area_sum = self._mask_area_sums()

    def _add_video(self, video: object, index: int) -> None:
        try:
            vid, height, width = video["id"], int(video["height"]), int(video["width"])
        except (TypeError, KeyError, ValueError) as err:
            raise YTVISEvalError(f"groundtruth {self.name}: videos[{index}] needs 'id', 'height', 'width'") from err
        if vid in self.video_size:
            raise YTVISEvalError(f"groundtruth {self.name}: duplicate video id {vid!r}")
        self.video_size[vid] = [height, width]
        length = video.get("length", len(video["file_names"]) if "file_names" in video else None)
        self.video_length[vid] = None if length is None else int(length)

    def check_length(self, vid: object, segmentations: object, where: str) -> None:
        if not isinstance(segmentations, list):
            raise YTVISEvalError(f"{where}: 'segmentations' must be a list")
        if self.video_length[vid] is None:
            self.video_length[vid] = len(segmentations)
        if len(segmentations) != self.video_length[vid]:
            raise YTVISEvalError(f"{where}: {len(segmentations)} segmentations but video {vid!r} "
                                 f"has {self.video_length[vid]} frames")

    def _add_annotation(self, ann: object, index: int, seen: set, categories: set) -> None:
        where = f"groundtruth {self.name}: annotations[{index}]"
        try:
            ann_id, vid, cat, segs = ann["id"], ann["video_id"], ann["category_id"], ann["segmentations"]
        except (TypeError, KeyError) as err:
            raise YTVISEvalError(f"{where} needs 'id', 'video_id', 'category_id', 'segmentations'") from err
        where = f"groundtruth {self.name}: annotation id {ann_id!r} (video {vid!r})"
        if ann_id in seen:
            raise YTVISEvalError(f"{where}: duplicate annotation id")
        seen.add(ann_id)
        if vid not in self.video_size:
            raise YTVISEvalError(f"{where}: video id not in 'videos'")
        if cat not in categories:
            raise YTVISEvalError(f"{where}: category_id {cat!r} not in 'categories'")
        self.check_length(vid, segs, where)
        height, width = self.video_size[vid]
        rles = []
        for t, seg in enumerate(segs):
            try:
                rles.append(frame_to_rle(seg, height, width))
            except (RLEFormatError, TypeError, ValueError) as err:
                raise YTVISEvalError(f"{where} frame {t}: {err}") from err
        areas = ann.get("areas")
        if areas is None:
            present = [r for r in rles if r is not None]
            areas = rle_areas(present).tolist()
        elif not isinstance(areas, list) or not all(
                a is None or (isinstance(a, (int, float)) and not isinstance(a, bool)) for a in areas):
            raise YTVISEvalError(f"{where}: 'areas' must be a list of numbers or nulls")
        nonzero = [a for a in areas if a]
        self.ann_ids.append(ann_id)
        self.ann_video.append(vid)
        self.ann_category.append(cat)
        self.ann_crowd.append(bool(ann.get("iscrowd", 0)))
        self.ann_avg_area.append(float(np.array(nonzero, dtype=np.float64).mean()) if nonzero else 0.0)
        self.ann_rles.append(rles)

    def _mask_area_sums(self) -> np.ndarray:
        present = [r for rles in self.ann_rles for r in rles if r is not None]
        owner = np.repeat(np.arange(len(self.ann_rles)), [sum(r is not None for r in x) for x in self.ann_rles])
        return np.bincount(owner, weights=rle_areas(present), minlength=len(self.ann_rles)).astype(np.int64)


class _Detections:
    """Evaluated results with their per-frame RLEs flattened into one list (absent frames skipped)."""

    def __init__(self, data: object, name: str, gt: _GroundTruth) -> None:
        if not isinstance(data, list):
            raise YTVISEvalError(f"results {name}: top level must be a list of result objects")
        categories = set(gt.category_ids)
        self.ids: list[int] = []
        self.video: list[object] = []
        self.category: list[object] = []
        scores: list[float] = []
        self.frames: list[dict] = []
        self.frame_t: list[int] = []
        frame_counts: list[int] = []
        self.skipped_unknown_category = 0
        for index, det in enumerate(data):
            try:
                vid, cat, score, segs = det["video_id"], det["category_id"], det["score"], det["segmentations"]
            except (TypeError, KeyError) as err:
                raise YTVISEvalError(f"results {name}: result [{index}] needs 'video_id', 'category_id', "
                                     "'score', 'segmentations'") from err
            where = f"results {name}: result [{index}] (video {vid!r})"
            if vid not in gt.video_size:
                raise YTVISEvalError(f"{where}: video_id not in the groundtruth 'videos'")
            gt.check_length(vid, segs, where)
            if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
                raise YTVISEvalError(f"{where}: 'score' must be a number, got {score!r}")
            if cat not in categories:
                self.skipped_unknown_category += 1
                continue
            present = [t for t, s in enumerate(segs) if s]
            frames = [segs[t] for t in present]
            if not self._sizes_match(frames, gt.video_size[vid]):
                frames = [self._checked_frame(segs[t], gt.video_size[vid], f"{where} frame {t}") for t in present]
            self.frames += frames
            self.frame_t += present
            frame_counts.append(len(present))
            self.ids.append(index + 1)
            self.video.append(vid)
            self.category.append(cat)
            scores.append(score)
        self.scores = np.array(scores, dtype=np.float64)
        self.frame_start = np.concatenate([[0], np.cumsum(frame_counts)]).astype(np.int64)
        self.frame_t_array = np.array(self.frame_t, dtype=np.int64)
        self.frame_area = self._frame_areas(name, gt.video_size)
        owner = np.repeat(np.arange(len(frame_counts)), frame_counts)
        self.area_sum = np.bincount(owner, weights=self.frame_area, minlength=len(frame_counts))
        nonzero = np.bincount(owner, weights=self.frame_area > 0, minlength=len(frame_counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.avg_area = np.where(nonzero > 0, self.area_sum / nonzero, 0.0)

    @staticmethod
    def _sizes_match(frames: list, size: list[int]) -> bool:
        """Fast path: every frame is a dict whose ``size`` is the video size (counts checked later)."""
        try:
            return [seg["size"] for seg in frames].count(size) == len(frames)
        except (TypeError, KeyError, IndexError):
            return False

    @staticmethod
    def _checked_frame(seg: object, size: list[int], where: str) -> dict:
        if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
            raise YTVISEvalError(f"{where}: segmentation must be null or an RLE dict with 'counts' and 'size'")
        if seg["size"] != size:
            raise YTVISEvalError(f"{where}: RLE size {seg['size']!r} differs from the video size {size}")
        try:
            return frame_to_rle(seg, size[0], size[1])
        except (RLEFormatError, TypeError, ValueError) as err:
            raise YTVISEvalError(f"{where}: {err}") from err

    def _frame_areas(self, name: str, video_size: dict) -> np.ndarray:
        """Areas of all detection frames; on a decoding failure re-check frame by frame for the culprit."""
        try:
            return rle_areas(self.frames)
        except (TypeError, KeyError, ValueError):
            pass
        owner = np.repeat(np.arange(len(self.ids)), np.diff(self.frame_start))
        for j, seg in enumerate(self.frames):
            det = int(owner[j])
            where = f"results {name}: result [{self.ids[det] - 1}] (video {self.video[det]!r}) frame {self.frame_t[j]}"
            self.frames[j] = self._checked_frame(seg, video_size[self.video[det]], where)
        return rle_areas(self.frames)

def _video_ious(gt: _GroundTruth, dets: _Detections, gt_idx: list[int], det_idx: list[int], vid: object) -> np.ndarray:
    """[len(det_idx), len(gt_idx)] video IoUs: summed intersections over summed unions."""
    inter = np.zeros((len(det_idx), len(gt_idx)), dtype=np.int64)
    starts, stops = dets.frame_start[det_idx], dets.frame_start[np.asarray(det_idx) + 1]
    lengths = stops - starts
    frame_idx = np.repeat(stops - np.cumsum(lengths), lengths) + np.arange(lengths.sum())
    local = np.repeat(np.arange(len(det_idx)), lengths)
    times = dets.frame_t_array[frame_idx]
    order = np.argsort(times, kind="stable")
    frame_idx, local, times = frame_idx[order], local[order], times[order]
    bounds = np.flatnonzero(np.diff(times)) + 1
    gt_rles = [gt.ann_rles[g] for g in gt_idx]
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(times)]])) if len(times) else ():
        t = int(times[lo])
        g_local = [j for j, rles in enumerate(gt_rles) if rles[t] is not None]
        if not g_local:
            continue
        rows = frame_idx[lo:hi]
        try:
            counts = frame_intersections([dets.frames[i] for i in rows], dets.frame_area[rows],
                                         [gt_rles[j][t] for j in g_local])
        except RLEFormatError as err:
            raise YTVISEvalError(f"video {vid!r} frame {t}: {err}") from err
        inter[np.ix_(local[lo:hi], g_local)] += counts
    union = dets.area_sum[det_idx][:, None] + gt.ann_area_sum[gt_idx][None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _evaluate_groups(gt: _GroundTruth, dets: _Detections) -> list[list[GroupResult]]:
    """Match every (video, category) group; groups are listed per category in video-id order."""
    cat_index = {c: k for k, c in enumerate(gt.category_ids)}
    gts_by_video: dict[object, list[int]] = defaultdict(list)
    for i, vid in enumerate(gt.ann_video):
        gts_by_video[vid].append(i)
    dets_by_video: dict[object, list[int]] = defaultdict(list)
    for i, vid in enumerate(dets.video):
        dets_by_video[vid].append(i)
    gt_ids = np.asarray(gt.ann_ids)
    gt_crowd = np.asarray(gt.ann_crowd, dtype=bool)
    gt_avg = np.asarray(gt.ann_avg_area, dtype=np.float64)
    per_category: list[list[GroupResult]] = [[] for _ in gt.category_ids]
    for vid in gt.video_ids:
        gt_v, det_v = gts_by_video.get(vid, []), dets_by_video.get(vid, [])
        if not gt_v and not det_v:
            continue
        gt_cats = {gt.ann_category[i] for i in gt_v}
        candidates = [i for i in det_v if dets.category[i] in gt_cats]
        ious = _video_ious(gt, dets, gt_v, candidates, vid) if candidates else np.zeros((0, len(gt_v)))
        row_of = {d: r for r, d in enumerate(candidates)}
        gts_by_cat: dict[object, list[int]] = defaultdict(list)
        for col, i in enumerate(gt_v):
            gts_by_cat[gt.ann_category[i]].append(col)
        dets_by_cat: dict[object, list[int]] = defaultdict(list)
        for i in det_v:
            dets_by_cat[dets.category[i]].append(i)
        for cat in set(gts_by_cat) | set(dets_by_cat):
            cols = np.array(gts_by_cat.get(cat, []), dtype=np.int64)
            det_arr = np.array(dets_by_cat.get(cat, []), dtype=np.int64)
            det_arr = det_arr[np.argsort(-dets.scores[det_arr], kind="mergesort")[:MAX_DETS_PER_GROUP]]
            if len(cols) and len(det_arr):
                group_ious = ious[np.array([row_of[d] for d in det_arr])][:, cols]
            else:
                group_ious = np.zeros((len(det_arr), len(cols)))
            gt_sel = np.asarray(gt_v, dtype=np.int64)[cols]
            per_category[cat_index[cat]].append((vid, match_group(
                group_ious, dets.scores[det_arr], dets.avg_area[det_arr], gt_ids[gt_sel], gt_crowd[gt_sel],
                gt_avg[gt_sel])))
    return [[res for _, res in groups] for groups in per_category]


def evaluate_ytvis(groundtruth: str | Path | dict, results: str | Path | list) -> dict[str, float]:
    """The 12 official summary numbers (AP, AP50, ..., ARl) of ``results`` against ``groundtruth``.

    Both may be paths to JSON files or already-loaded objects (which are not modified).
    """
    with _gc_paused():
        gt_data, gt_name = _load(groundtruth, "groundtruth")
        gt = _GroundTruth(gt_data, gt_name)
        res_data, res_name = _load(results, "results")
        dets = _Detections(res_data, res_name, gt)
        if dets.skipped_unknown_category:
            logger.warning("%d result(s) in %s have a category_id absent from the groundtruth categories "
                           "and are not evaluated (as in the official evaluator)",
                           dets.skipped_unknown_category, res_name)
        precision, recall = accumulate(_evaluate_groups(gt, dets))
    return summarize(precision, recall)


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
