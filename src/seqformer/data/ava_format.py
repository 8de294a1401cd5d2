"""Readers and writers for the official AVA file formats.

Formats (https://research.google.com/ava/download.html), as read by ActivityNet's
``get_ava_performance.py``:

* label map (``.pbtxt``): ``item { name: "..." id: N }`` blocks; ``label_id:`` is accepted for ``id:``.
* ground truth CSV: ``video_id,second,x1,y1,x2,y2,action_id[,person_id]`` (7 or 8 columns), or a
  2-column row ``video_id,second``: a keyframe that was annotated and has no box (the official
  format since April 2020; the default evaluation protocol counts detections there as false
  positives).
* detection CSV: ``video_id,second,x1,y1,x2,y2,action_id,score``. Like the official reader, a
  7-column detection row is accepted and gets score 1.0, and a 2-column row is accepted (it adds
  no detection).
* excluded timestamps CSV: ``video_id,second``.

Coordinates are normalised to [0, 1]. The official reader accepts any float; we raise on coordinates
outside [-COORD_TOLERANCE, 1 + COORD_TOLERANCE] (almost always pixel coordinates written by mistake,
which the official script would silently score as ~0 AP), on non-finite values and on ground-truth
boxes with x1 > x2 or y1 > y2. Nothing is ever clamped or dropped: a file either loads completely or
raises :class:`AvaFormatError` naming the file and the 1-based line.

Parsing uses the pandas C engine (the 15M-row detection file of a full validation run must load in
seconds); only when it rejects a file do we re-read it line by line with :mod:`csv` to name the
offending line.
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seqformer.errors import SeqFormerError

COORD_TOLERANCE = 0.01
_COLUMNS = list(range(8))
_DTYPES = {0: "category", 1: np.int64, 2: np.float64, 3: np.float64, 4: np.float64,
           5: np.float64, 6: "Int64", 7: np.float64}
_EMPTY_AS_NA = {column: [""] for column in range(2, 8)}  # missing fields of short rows


class AvaFormatError(SeqFormerError, ValueError):
    """Malformed AVA file; the message starts with ``path:line:``."""


@dataclass
class AvaTable:
    """Box rows of an AVA CSV as column arrays, in file order."""

    video_ids: np.ndarray  # object array of str
    seconds: np.ndarray  # int64
    boxes: np.ndarray  # float64 [N, 4], x1, y1, x2, y2, normalised
    action_ids: np.ndarray  # int64
    person_ids: np.ndarray  # int64, -1 where the GT row has no 8th column (always -1 for detections)
    scores: np.ndarray | None  # float64 for detections, None for ground truth
    # (video_id, second) of the 2-column rows: annotated keyframes without a box, in file order
    keyframes_without_boxes: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seconds)


def read_labelmap(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(id, name) pairs in file order.

    Like the official reader, an entry is emitted at each ``id:``/``label_id:`` line with the most
    recent ``name:``; unlike it, indentation is not significant and an id without a preceding name,
    an id that is not an integer, or an id listed twice (the official index would silently keep the
    later name) is an error rather than a silent empty name / crash / replacement.
    """
    entries: list[tuple[int, str]] = []
    first_line: dict[int, int] = {}
    name: str | None = None
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.strip()
            if line.startswith("name:"):
                match = re.fullmatch(r'name:\s*"(.*)"', line)
                if match is None:
                    raise AvaFormatError(f"{path}:{line_no}: expected name: \"...\", got {line!r}")
                name = match.group(1)
            elif line.startswith(("id:", "label_id:")):
                value = line.split(":", 1)[1].strip()
                try:
                    class_id = int(value)
                except ValueError:
                    raise AvaFormatError(f"{path}:{line_no}: class id {value!r} is not an integer") from None
                if name is None:
                    raise AvaFormatError(f"{path}:{line_no}: id {class_id} has no preceding name:")
                if class_id in first_line:
                    raise AvaFormatError(f"{path}:{line_no}: duplicate class id {class_id} (first at line "
                                         f"{first_line[class_id]}); each id must name one class")
                first_line[class_id] = line_no
                entries.append((class_id, name))
                name = None
    if not entries:
        raise AvaFormatError(f"{path}: no 'id:' or 'label_id:' entries found")
    return entries


def read_exclusions(path: str | os.PathLike) -> set[tuple[str, int]]:
    """Excluded (video_id, second) keyframes; two columns per line as in the official reader."""
    excluded: set[tuple[str, int]] = set()
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if len(row) != 2:
                raise AvaFormatError(f"{path}:{line_no}: expected 2 columns (video_id,second), got {len(row)}")
            try:
                excluded.add((row[0], int(row[1])))
            except ValueError:
                raise AvaFormatError(f"{path}:{line_no}: second {row[1]!r} is not an integer") from None
    return excluded


def read_ava_frame(path: str | os.PathLike, kind: str = "gt") -> pd.DataFrame:
    """Validated AVA CSV as a DataFrame with integer columns 0..7 (column 0 categorical).

    Row i is line i + 1 of the file. Column 7 is the person id (GT) or score (detections), NaN
    where a row has only 7 columns. A 2-column row (``video_id,second``) has NaN in columns 2-5
    and 7 and action id 0 (column 6 is int64); :func:`key_only_rows` finds them. This is the fast
    path shared by :func:`read_ava_csv` and the evaluator.
    """
    if kind not in ("gt", "det"):
        raise ValueError(f"kind must be 'gt' or 'det', got {kind!r}")
    if os.path.getsize(path) == 0:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _DTYPES.items()})
    try:
        frame = pd.read_csv(path, header=None, names=_COLUMNS, dtype=_DTYPES, engine="c",
                            keep_default_na=False, na_values=_EMPTY_AS_NA, skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError) as exc:
        _raise_first_bad_line(path, kind)
        raise AvaFormatError(f"{path}: could not parse as AVA {kind} CSV: {exc}") from exc
    missing = frame[[2, 3, 4, 5, 6]].isna().to_numpy()
    key_only = missing.all(axis=1) & frame[7].isna().to_numpy()
    partial = missing.any(axis=1) & ~key_only
    if partial.any() or (key_only.any() and not _key_only_lines_have_two_fields(path, key_only)):
        _raise_first_bad_line(path, kind)
        raise AvaFormatError(f"{path}:{int(np.flatnonzero(partial | key_only)[0]) + 1}: empty field")
    frame[6] = frame[6].to_numpy(np.int64, na_value=0)
    _check_values(path, kind, frame)
    return frame


def key_only_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the 2-column ``video_id,second`` rows of a :func:`read_ava_frame` result."""
    return np.isnan(frame[2].to_numpy(np.float64))


def read_ava_csv(path: str | os.PathLike, kind: str = "gt") -> AvaTable:
    """Read an AVA ground-truth (``kind="gt"``) or detection (``kind="det"``) CSV."""
    frame = read_ava_frame(path, kind)
    key_only = key_only_rows(frame)
    empty = list(zip(frame[0][key_only].astype(object).tolist(), frame[1][key_only].tolist()))
    frame = frame[~key_only]
    last = frame[7].to_numpy(np.float64)
    present = ~np.isnan(last)
    if kind == "gt":
        person_ids = np.where(present, last, -1).astype(np.int64)
        scores = None
    else:
        person_ids = np.full(len(frame), -1, dtype=np.int64)
        scores = np.where(present, last, 1.0)
    return AvaTable(
        video_ids=np.asarray(frame[0].astype(object), dtype=object),
        seconds=frame[1].to_numpy(np.int64),
        boxes=frame[[2, 3, 4, 5]].to_numpy(np.float64),
        action_ids=frame[6].to_numpy(np.int64),
        person_ids=person_ids,
        scores=scores,
        keyframes_without_boxes=empty,
    )


def write_detections_csv(path: str | os.PathLike, video_ids, seconds, boxes, action_ids, scores) -> None:
    """Write the official detection CSV ``video_id,SSSS,x1,y1,x2,y2,action_id,score``.

    Seconds are zero-padded to 4 digits and coordinates written with 3 decimals, as in the official
    AVA CSVs (and SlowFast's writer). Scores get 6 decimals rather than SlowFast's 4: the metric
    breaks score ties by sort position, so coarser scores perturb AP.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    columns = [np.asarray(video_ids, dtype=object), np.asarray(seconds), np.asarray(action_ids),
               np.asarray(scores, dtype=np.float64)]
    if any(len(c) != n for c in columns):
        raise ValueError(f"column lengths differ: boxes {n}, others {[len(c) for c in columns]}")
    frame = pd.DataFrame({
        "video_id": columns[0],
        "second": [f"{int(s):04d}" for s in columns[1]],
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "action_id": columns[2].astype(np.int64),
        "score": [f"{s:.6f}" for s in columns[3]],
    })
    frame.to_csv(path, header=False, index=False, float_format="%.3f")


def _check_values(path, kind: str, frame: pd.DataFrame) -> None:
    """Vectorised checks after a successful parse; errors name the first offending line."""
    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise AvaFormatError(f"{path}:{row + 1}: {what}")

    fail(frame[0].isna().to_numpy(), "missing video id")
    boxed = ~key_only_rows(frame)  # 2-column rows have NaN coordinates by construction
    coords = [frame[c].to_numpy(np.float64) for c in (2, 3, 4, 5)]
    fail(boxed & ~np.logical_and.reduce([np.isfinite(c) for c in coords]), "non-finite box coordinate")
    lo, hi = -COORD_TOLERANCE, 1.0 + COORD_TOLERANCE
    fail(np.logical_or.reduce([(c < lo) | (c > hi) for c in coords]),
         f"box coordinate outside [0, 1] (tolerance {COORD_TOLERANCE}); coordinates must be normalised")
    last = frame[7].to_numpy(np.float64)
    fail(np.isinf(last), f"non-finite {'person id' if kind == 'gt' else 'score'}")
    if kind == "gt":
        present = ~np.isnan(last)
        fail(present & (last != np.round(last)), "person id is not an integer")
        _check_gt_box_order(fail, coords)


def _check_gt_box_order(fail, coords: list[np.ndarray]) -> None:
    """Ground truth with x1 > x2 or y1 > y2 is an error (issue 13): the official evaluator crashes
    on it and training would learn the inverted box.  Detections keep the official behaviour (boxes
    with x1 >= x2 or y1 >= y2 are dropped when scored, and counted by the evaluator)."""
    x1, y1, x2, y2 = coords
    fail(x1 > x2, "x1 > x2 (columns 3 and 5); expected video_id,second,x1,y1,x2,y2,...")
    fail(y1 > y2, "y1 > y2 (columns 4 and 6); expected video_id,second,x1,y1,x2,y2,...")


def _key_only_lines_have_two_fields(path, key_only: np.ndarray) -> bool:
    """Whether the rows parsed without columns 2-7 really are 2-column lines (not empty fields)."""
    with open(path, newline="") as f:
        return all(len(row) == 2 for row, short in zip(csv.reader(f), key_only) if short)


def _raise_first_bad_line(path, kind: str) -> None:
    """Re-read ``path`` line by line and raise for the first row pandas could not have parsed."""
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            where = f"{path}:{line_no}"
            if len(row) not in (2, 7, 8):
                raise AvaFormatError(f"{where}: expected 2, 7 or 8 columns, got {len(row)}")
            fields = ["second", "x1", "y1", "x2", "y2", "action_id",
                      "person_id" if kind == "gt" else "score"]
            for name, value in zip(fields, row[1:]):
                try:
                    number = int(value) if name in ("second", "action_id", "person_id") else float(value)
                except ValueError:
                    raise AvaFormatError(f"{where}: {name} {value!r} is not a number") from None
                if isinstance(number, float) and math.isnan(number):
                    raise AvaFormatError(f"{where}: {name} is NaN")
