"""What the AVA evaluator accepted but the user should hear about: one line per kind, with counts.

The official protocol silently scores some inputs in ways that are easy to miss (a 7-column
detection row gets score 1.0, a ground-truth action id outside the label map is dropped, an
empty file scores 0 or NaN).  The numbers stay the official ones; these notes only say how many
rows each rule touched, so that a wrong file does not pass unnoticed.  Detection rows the protocol
drops (outside the label map, degenerate boxes, beyond the cap) are in the evaluator's per-fate counts.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd


def ava_input_notes(groundtruth: str | os.PathLike, detections: str | os.PathLike, labelmap: str | os.PathLike,
                    gt_frame: pd.DataFrame, det_frame: pd.DataFrame, whitelist: np.ndarray) -> list[str]:
    """One-line notes about ``gt_frame`` / ``det_frame`` as read by :func:`~seqformer.data.ava_format.read_ava_frame`."""
    notes = []
    if len(gt_frame) == 0:
        notes.append(f"{groundtruth}: the ground truth is empty; every class has AP NaN and the mAP is NaN")
    if len(det_frame) == 0:
        notes.append(f"{detections}: the detection file is empty; every class with ground truth has AP 0")
    outside = _outside_labelmap(gt_frame, whitelist)
    if outside:  # detections dropped for this reason are in the evaluator's per-fate counts line
        notes.append(f"{groundtruth}: {outside} of {len(gt_frame)} ground-truth rows have an action id outside "
                     f"{labelmap} and are not scored (the label map is the class whitelist)")
    unscored = int(det_frame[7].isna().sum())
    if unscored:
        notes.append(f"{detections}: {unscored} of {len(det_frame)} detection rows have no score column "
                     f"and count with score 1.0 (official reader)")
    return notes


def _outside_labelmap(frame: pd.DataFrame, whitelist: np.ndarray) -> int:
    cls = frame[6].to_numpy(np.int64)
    inside = (cls >= 0) & (cls < len(whitelist))
    inside[inside] = whitelist[cls[inside]]
    return int(np.count_nonzero(~inside))
