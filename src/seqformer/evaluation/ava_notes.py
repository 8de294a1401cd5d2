"""What the AVA evaluator accepted but the user should hear about: one line per kind, with counts.

The official protocol silently scores some inputs in ways that are easy to miss (a 7-column
detection row gets score 1.0, an action id outside the label map is dropped, a degenerate box is
dropped, an empty file scores 0 or NaN).  The numbers stay the official ones; these notes only say
how many rows each rule touched, so that a wrong file does not pass unnoticed.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from seqformer.data.ava_format import count_degenerate_boxes


def ava_input_notes(groundtruth: str | os.PathLike, detections: str | os.PathLike, labelmap: str | os.PathLike,
                    gt_frame: pd.DataFrame, det_frame: pd.DataFrame, whitelist: np.ndarray) -> list[str]:
    """One-line notes about ``gt_frame`` / ``det_frame`` as read by :func:`~seqformer.data.ava_format.read_ava_frame`."""
    notes = []
    if len(gt_frame) == 0:
        notes.append(f"{groundtruth}: the ground truth is empty; every class has AP NaN and the mAP is NaN")
    if len(det_frame) == 0:
        notes.append(f"{detections}: the detection file is empty; every class with ground truth has AP 0")
    for path, frame, what in ((groundtruth, gt_frame, "ground-truth"), (detections, det_frame, "detection")):
        outside = _outside_labelmap(frame, whitelist)
        if outside:
            notes.append(f"{path}: {outside} of {len(frame)} {what} rows have an action id outside {labelmap} "
                         f"and are not scored (the label map is the class whitelist)")
    unscored = int(det_frame[7].isna().sum())
    if unscored:
        notes.append(f"{detections}: {unscored} of {len(det_frame)} detection rows have no score column "
                     f"and count with score 1.0 (official reader)")
    degenerate = count_degenerate_boxes(det_frame)
    if degenerate:
        notes.append(f"{detections}: {degenerate} of {len(det_frame)} detection rows have x1 >= x2 or y1 >= y2 "
                     f"and are dropped (official evaluator)")
    return notes


def _outside_labelmap(frame: pd.DataFrame, whitelist: np.ndarray) -> int:
    cls = frame[6].to_numpy(np.int64)
    inside = (cls >= 0) & (cls < len(whitelist))
    inside[inside] = whitelist[cls[inside]]
    return int(np.count_nonzero(~inside))
