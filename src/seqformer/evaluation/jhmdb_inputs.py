"""Detection files of the JHMDB-21 / UCF101-24 evaluation: per-frame CSV and video-level tube JSON.

* Per-frame detections CSV, header row ``video,frame,x1,y1,x2,y2,label,score``; one detection per row;
  ``video`` as named in the ground-truth pickle, ``frame`` 1-based, ``label`` 1-based (``labels[label - 1]``
  of the pickle), box corners in pixels of the original frame.
* Tubes JSON: ``[{"video": str, "label": int (1-based), "score": float, "boxes": [[frame, x1, y1, x2, y2],
  ...]}, ...]`` with consecutive increasing frames (the tube overlap slices tubes by frame range).

Both readers check everything they can without the ground truth (types, finiteness, ``x1 <= x2``,
``y1 <= y2``, integer frames and labels >= 1) and raise :class:`JhmdbInputError` naming the file and the
1-based line (CSV) or 0-based entry index (JSON); checks against the ground truth (known video, frame
within the video, label within the label list) happen in the evaluator with the same kind of message.
The CSV goes through the pandas C parser (a full split at ~40 detections per frame is ~400k rows); only
when it rejects the file is the file re-read line by line to name the offending line.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqformer.errors import SeqFormerError

FRAME_COLUMNS = ("video", "frame", "x1", "y1", "x2", "y2", "label", "score")
_DTYPES = {"video": str, "frame": np.int64, "x1": np.float64, "y1": np.float64, "x2": np.float64,
           "y2": np.float64, "label": np.int64, "score": np.float64}


class JhmdbInputError(SeqFormerError, ValueError):
    """Malformed detection CSV / tube JSON; the message names the file and the line or entry."""


@dataclass
class FrameDetections:
    """Rows of a detection CSV as column arrays; row ``i`` is line ``i + 2`` of the file."""

    video_names: list[str]  # distinct videos, in order of first appearance
    video_index: np.ndarray  # int64 [N], index into video_names
    frames: np.ndarray  # int64 [N], 1-based
    boxes: np.ndarray  # float64 [N, 4], x1, y1, x2, y2 in pixels
    labels: np.ndarray  # int64 [N], 1-based
    scores: np.ndarray  # float64 [N]
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.frames)

    @staticmethod
    def line_of(row: int) -> int:
        return int(row) + 2


@dataclass
class TubeDetections:
    """Entries of a tube JSON, in file order."""

    videos: list[str]
    labels: np.ndarray  # int64 [T], 1-based
    scores: np.ndarray  # float64 [T]
    boxes: list[np.ndarray]  # float64 [n_t, 5] rows frame, x1, y1, x2, y2 (consecutive frames)
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.videos)


def read_frame_detections(path: str | os.PathLike) -> FrameDetections:
    """Read a per-frame detection CSV (header row required)."""
    path = str(path)
    _check_header(path)
    try:
        frame = pd.read_csv(path, header=0, names=list(FRAME_COLUMNS), dtype=_DTYPES, engine="c", keep_default_na=False,
                            na_filter=False, skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError) as exc:
        _raise_first_bad_line(path)
        raise JhmdbInputError(f"{path}: could not parse the detection CSV: {exc}") from None
    codes, names = pd.factorize(frame["video"], sort=False)
    detections = FrameDetections(
        video_names=[str(v) for v in names], video_index=codes.astype(np.int64),
        frames=frame["frame"].to_numpy(np.int64), boxes=frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float64),
        labels=frame["label"].to_numpy(np.int64), scores=frame["score"].to_numpy(np.float64), source=path)
    _check_rows(detections)
    return detections


def write_frame_detections(path: str | os.PathLike, videos, frames, boxes, labels, scores) -> None:
    """Write the detection CSV read by :func:`read_frame_detections` (boxes 3 decimals, scores 6)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    columns = {"video": np.asarray(videos, dtype=object), "frame": np.asarray(frames, dtype=np.int64),
               "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
               "label": np.asarray(labels, dtype=np.int64), "score": np.asarray(scores, dtype=np.float64)}
    if any(len(c) != len(boxes) for c in columns.values()):
        raise ValueError(f"column lengths differ: {({k: len(c) for k, c in columns.items()})}")
    table = pd.DataFrame(columns)
    table["score"] = [f"{s:.6f}" for s in columns["score"]]
    table.to_csv(path, index=False, float_format="%.3f")


def read_tubes(path: str | os.PathLike) -> TubeDetections:
    """Read and validate a tube JSON."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except json.JSONDecodeError as exc:
        raise JhmdbInputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JhmdbInputError(f"{path}: cannot read ({exc})") from None
    if not isinstance(entries, list):
        raise JhmdbInputError(f"{path}: expected a JSON list of tubes, got {type(entries).__name__}")
    videos, labels, scores, boxes = [], [], [], []
    for i, entry in enumerate(entries):
        video, label, score, tube = _tube_entry(entry, f"{path}: entry {i}")
        videos.append(video)
        labels.append(label)
        scores.append(score)
        boxes.append(tube)
    return TubeDetections(videos, np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64),
                          boxes, source=path)


def write_tubes(path: str | os.PathLike, tubes: list[dict]) -> None:
    """Write ``[{"video", "label", "score", "boxes"}]`` (boxes as given, frames as integers)."""
    out = []
    for t in tubes:
        rows = np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 5)
        out.append({"video": str(t["video"]), "label": int(t["label"]), "score": float(t["score"]),
                    "boxes": [[int(r[0])] + [float(x) for x in r[1:]] for r in rows]})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)


# ------------------------------------------------------------------------------------------------ CSV

def _check_header(path: str) -> None:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise JhmdbInputError(f"{path}: cannot read ({exc})") from None
    if header is None:
        raise JhmdbInputError(f"{path}: empty file; expected the header {','.join(FRAME_COLUMNS)}")
    header = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(header) != FRAME_COLUMNS:
        raise JhmdbInputError(f"{path}:1: header must be {','.join(FRAME_COLUMNS)}, got {','.join(header)}")


def _check_rows(d: FrameDetections) -> None:
    """Vectorised value checks; the error names the first offending line."""
    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise JhmdbInputError(f"{d.source}:{d.line_of(row)}: {what}")

    empty = np.array([name.strip() == "" for name in d.video_names], dtype=bool)
    fail(empty[d.video_index] if len(d) else np.zeros(0, bool), "missing video name")
    fail(d.frames < 1, "frame must be >= 1 (frames are 1-based)")
    fail(d.labels < 1, "label must be >= 1 (labels are 1-based)")
    fail(~np.isfinite(d.boxes).all(axis=1), "non-finite box coordinate")
    fail(~np.isfinite(d.scores), "non-finite score")
    fail(d.boxes[:, 2] < d.boxes[:, 0], "x2 < x1")
    fail(d.boxes[:, 3] < d.boxes[:, 1], "y2 < y1")


def _raise_first_bad_line(path: str) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if line_no == 1:
                continue
            where = f"{path}:{line_no}"
            if len(row) != len(FRAME_COLUMNS):
                raise JhmdbInputError(f"{where}: expected {len(FRAME_COLUMNS)} columns, got {len(row)}")
            for name, value in zip(FRAME_COLUMNS[1:], row[1:]):
                try:
                    number = int(value) if name in ("frame", "label") else float(value)
                except ValueError:
                    kind = "an integer" if name in ("frame", "label") else "a number"
                    raise JhmdbInputError(f"{where}: {name} {value!r} is not {kind}") from None
                if isinstance(number, float) and math.isnan(number):
                    raise JhmdbInputError(f"{where}: {name} is NaN")


# ----------------------------------------------------------------------------------------------- JSON

def _number(x, what: str, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise JhmdbInputError(f"{where}: {what} must be a finite number, got {x!r}")
    return float(x)


def _tube_entry(entry, where: str) -> tuple[str, int, float, np.ndarray]:
    if not isinstance(entry, dict):
        raise JhmdbInputError(f"{where}: expected an object with video, label, score, boxes")
    missing = [k for k in ("video", "label", "score", "boxes") if k not in entry]
    if missing:
        raise JhmdbInputError(f"{where}: missing key(s) {', '.join(missing)}")
    video, label, boxes = entry["video"], entry["label"], entry["boxes"]
    if not isinstance(video, str) or not video:
        raise JhmdbInputError(f"{where}: video must be a non-empty string, got {video!r}")
    where = f"{where} (video {video!r})"
    if isinstance(label, bool) or not isinstance(label, int) or label < 1:
        raise JhmdbInputError(f"{where}: label must be an integer >= 1 (1-based), got {label!r}")
    score = _number(entry["score"], "score", where)
    if not isinstance(boxes, list) or not boxes:
        raise JhmdbInputError(f"{where}: boxes must be a non-empty list of [frame, x1, y1, x2, y2]")
    for j, row in enumerate(boxes):
        if not isinstance(row, list) or len(row) != 5:
            raise JhmdbInputError(f"{where}: boxes[{j}] must be [frame, x1, y1, x2, y2], got {row!r}")
    if not {type(value) for row in boxes for value in row} <= {int, float}:  # fast path; bool is not int here
        for j, row in enumerate(boxes):
            for value in row:
                _number(value, f"boxes[{j}] value", where)
    tube = np.asarray(boxes, dtype=np.float64)
    if not np.isfinite(tube).all():
        j = int(np.flatnonzero(~np.isfinite(tube).all(axis=1))[0])
        raise JhmdbInputError(f"{where}: boxes[{j}] has a non-finite value")
    frames = tube[:, 0]
    bad = np.flatnonzero((frames != np.round(frames)) | (frames < 1))
    if bad.size:
        raise JhmdbInputError(f"{where}: boxes[{bad[0]}] frame {boxes[bad[0]][0]!r} is not an integer >= 1")
    jump = np.flatnonzero(np.diff(frames) != 1)
    if jump.size:
        raise JhmdbInputError(f"{where}: boxes[{jump[0] + 1}] frames must be consecutive and increasing "
                              f"({int(frames[jump[0]])} then {int(frames[jump[0] + 1])})")
    bad = np.flatnonzero((tube[:, 3] < tube[:, 1]) | (tube[:, 4] < tube[:, 2]))
    if bad.size:
        raise JhmdbInputError(f"{where}: boxes[{bad[0]}] has x2 < x1 or y2 < y1")
    return video, label, score, tube
