"""Slow, straightforward YouTube-VIS evaluator used as the oracle for ``seqformer.evaluation.ytvis_eval``.

It mirrors the algorithm of the official youtubevos cocoapi fork (``YTVOS.loadRes`` and
``YTVOSeval``) step by step: results get 1-based ids, per-frame areas via ``maskUtils.area`` and
their mean over non-empty frames as area; ground truth uses the mean of the non-zero entries of
its ``areas`` field; the video IoU of every (detection, ground truth) pair of a
(video, category) is accumulated frame by frame with ``maskUtils.merge``/``area``. The matching,
accumulation and summary are pycocotools' own ``COCOeval.evaluateImg``/``accumulate``/
``summarize``, which the official ``YTVOSeval`` copies line for line (images renamed videos), run
with the YouTube-VIS area ranges.

The official file itself is not vendored: it is not on PyPI, it no longer runs under numpy 2
(``np.float``) and copying it would bring foreign code into the project. Two documented
extensions match the fast evaluator: a missing ``iscrowd`` counts as 0, and a ground truth
without ``areas`` takes its areas from its masks. It assumes valid input (no error reporting).
"""
from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.cocoeval import COCOeval

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
YTVIS_AREA_RANGES = [[0 ** 2, 1e5 ** 2], [0 ** 2, 128 ** 2], [128 ** 2, 256 ** 2], [256 ** 2, 1e5 ** 2]]


def _to_rle(segmentation: object, height: int, width: int) -> dict:
    """``YTVOS.annToRLE`` for one frame."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def _mean_nonzero(areas: list) -> float:
    nonzero = [a for a in areas if a]
    return np.array(nonzero).mean() if nonzero else 0


class ReferenceYTVISEval(COCOeval):
    """COCOeval with video "images": official-style ``_prepare`` (loadRes + toMask) and ``computeIoU``."""

    def __init__(self, groundtruth: dict, results: list) -> None:
        super().__init__(None, None, iouType="segm")
        self.groundtruth, self.results = groundtruth, results
        self.videos = {v["id"]: v for v in groundtruth["videos"]}
        self.params.imgIds = sorted(self.videos)
        self.params.catIds = sorted(c["id"] for c in groundtruth["categories"])
        self.params.areaRng = YTVIS_AREA_RANGES

    def _frames_to_rles(self, ann: dict) -> list:
        video = self.videos[ann["video_id"]]
        return [_to_rle(s, video["height"], video["width"]) if s else s for s in ann["segmentations"]]

    def _prepare(self) -> None:
        vids, cats = set(self.params.imgIds), set(self.params.catIds)
        self._gts, self._dts = defaultdict(list), defaultdict(list)
        for ann in self.groundtruth["annotations"]:
            if ann["video_id"] not in vids or ann["category_id"] not in cats:
                continue
            rles = self._frames_to_rles(ann)
            areas = ann["areas"] if "areas" in ann else [mask_utils.area(r) if r else None for r in rles]
            crowd = int(ann.get("iscrowd", 0))
            self._gts[ann["video_id"], ann["category_id"]].append({
                "id": ann["id"], "segmentations": rles, "area": _mean_nonzero(areas),
                "iscrowd": crowd, "ignore": crowd})
        for index, res in enumerate(self.results):  # YTVOS.loadRes
            if res["video_id"] not in vids or res["category_id"] not in cats:
                continue
            areas = [mask_utils.area(s) if s else None for s in res["segmentations"]]
            self._dts[res["video_id"], res["category_id"]].append({
                "id": index + 1, "score": res["score"], "segmentations": self._frames_to_rles(res),
                "area": _mean_nonzero(areas), "iscrowd": 0})
        self.evalImgs = defaultdict(list)
        self.eval = {}

    def computeIoU(self, vid: object, cat: object) -> np.ndarray | list:  # noqa: N802 (COCOeval API)
        gt, dt = self._gts[vid, cat], self._dts[vid, cat]
        if len(gt) == 0 and len(dt) == 0:
            return []
        dt = [dt[i] for i in np.argsort([-d["score"] for d in dt], kind="mergesort")][: self.params.maxDets[-1]]
        ious = np.zeros([len(dt), len(gt)])
        for i, j in np.ndindex(ious.shape):
            inter = union = 0.0
            for d, g in zip(dt[i]["segmentations"], gt[j]["segmentations"]):
                if d and g:
                    inter += mask_utils.area(mask_utils.merge([d, g], True))
                    union += mask_utils.area(mask_utils.merge([d, g], False))
                elif g:
                    union += mask_utils.area(g)
                elif d:
                    union += mask_utils.area(d)
            ious[i, j] = inter / union if union > 0 else 0.0
        return ious


def reference_evaluate(groundtruth: str | Path | dict, results: str | Path | list) -> dict[str, float]:
    """Load like the official tools (plain ``json.load``) and return the 12 summary numbers."""
    if isinstance(groundtruth, (str, Path)):
        with open(groundtruth) as f:
            groundtruth = json.load(f)
    if isinstance(results, (str, Path)):
        with open(results) as f:
            results = json.load(f)
    evaluator = ReferenceYTVISEval(groundtruth, results)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: float(v) for k, v in zip(STAT_KEYS, evaluator.stats)}
