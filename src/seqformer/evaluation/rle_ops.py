"""Exact mask-area and mask-intersection arithmetic on COCO RLEs for the YouTube-VIS evaluator.

Every number here is an exact integer pixel count: the official evaluator sums per-frame
intersections and unions as integers before dividing, so anything approximate (for example
converting an IoU back to an intersection without rounding) could flip a threshold decision.
The heavy lifting is done by pycocotools' C routines, batched so that each detection frame is
decoded a small, fixed number of times instead of once per (detection, ground truth) pair.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils

from seqformer.errors import SeqFormerError

# pycocotools' ``area`` stores the list length in a uint8 under numpy 2 and overflows past 255.
_AREA_CHUNK = 255
# Characters of a compressed COCO RLE string: chr(48) .. chr(48 + 63).
_RLE_ALPHABET = bytes(range(48, 48 + 64))


class RLEFormatError(SeqFormerError, ValueError):
    """A segmentation that cannot be turned into an RLE; the caller adds file/video/id context."""


def frame_to_rle(segmentation: object, height: int, width: int) -> dict | None:
    """Compressed RLE for one ground-truth frame, or None when the object is absent.

    Mirrors the official ``annToRLE``: polygons are rasterised at the video size and their parts
    merged; uncompressed RLEs (``counts`` a list) are compressed with their own ``size``;
    compressed RLEs are used as they are. Falsy values (null, [], {}) mean "absent".
    """
    if not segmentation:
        return None
    if isinstance(segmentation, list):
        return _polygon_to_rle(segmentation, height, width)
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise RLEFormatError("segmentation must be null, a polygon list or an RLE dict with 'counts' and 'size'")
    size = segmentation["size"]
    if not (isinstance(size, list) and len(size) == 2 and list(size) == [height, width]):
        raise RLEFormatError(f"RLE size {size!r} differs from the video size [{height}, {width}]")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        array = np.array(counts)
        if array.ndim != 1 or (array.size and (array.dtype.kind not in "iu" or array.min() < 0)):
            raise RLEFormatError("uncompressed RLE counts must be a list of non-negative integers")
        if int(array.sum()) != height * width:
            raise RLEFormatError(f"uncompressed RLE counts sum to {int(array.sum())}, expected {height * width}")
        return mask_utils.frPyObjects({"size": size, "counts": array.astype(np.uint32)}, height, width)
    if isinstance(counts, (str, bytes)):
        raw = counts.encode("ascii", "replace") if isinstance(counts, str) else counts
        if raw.translate(None, _RLE_ALPHABET):
            raise RLEFormatError("compressed RLE counts contain characters outside the RLE alphabet")
        return {"size": [height, width], "counts": raw}
    raise RLEFormatError(f"RLE counts must be a list or a string, got {type(counts).__name__}")


def _polygon_to_rle(polygons: list, height: int, width: int) -> dict:
    for poly in polygons:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise RLEFormatError("each polygon must be a flat list of at least 3 (x, y) pairs")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise RLEFormatError("polygon coordinates must be numbers")
    return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


def rle_areas(rles: Sequence[dict]) -> np.ndarray:
    """Pixel areas (int64) of many RLEs, decoded by pycocotools in chunks."""
    if not rles:
        return np.zeros(0, dtype=np.int64)
    parts = [mask_utils.area(list(rles[i:i + _AREA_CHUNK])) for i in range(0, len(rles), _AREA_CHUNK)]
    return np.concatenate(parts).astype(np.int64)


def crowd_overlap_ratios(det_rles: list[dict], gt_rles: list[dict], crowd_flags: list[int]) -> np.ndarray:
    """Flat [D * G] (detection-major) ``intersection / area(det)`` of one frame's masks.

    pycocotools' ``iou`` with every ground truth flagged as crowd divides by the detection area;
    each detection string is decoded once per call, and pairs whose boxes do not overlap come back
    as exactly 0 without being intersected. Sizes must already agree (checked when parsing).
    """
    return mask_utils.iou(det_rles, gt_rles, crowd_flags).ravel()


def exact_intersections(ratios: np.ndarray, det_areas: np.ndarray) -> np.ndarray:
    """Integer intersections from correctly rounded ``I / A`` ratios and the exact areas ``A``.

    ``fl(fl(I / A) * A)`` differs from ``I`` by at most ``I * 2**-52`` (two roundings), well below
    0.5 for any frame smaller than 2**51 pixels, so rounding to the nearest integer gives ``I``.
    """
    return np.rint(ratios * det_areas).astype(np.int64)


def check_compressed_counts(counts: Sequence[str | bytes], pixels: np.ndarray) -> tuple[int, str] | None:
    """``(position, reason)`` of the first compressed RLE string that is not a valid mask, else None.

    pycocotools decodes any string of the RLE alphabet without checking it: a corrupt string becomes
    some mask (reading memory past the runs when they sum to less than the frame).  A valid string
    decodes to non-negative runs summing to ``pixels[i]`` (height * width).  The strings are decoded
    all at once with numpy (the same 6-bit, sign-extended, delta-from-run-3 code as
    :func:`seqformer.data.ytvis_format.compressed_rle_counts`), so a results file with millions of
    frames is checked in seconds.
    """
    if not len(counts):
        return None
    raw = [c.encode("ascii", "replace") if isinstance(c, str) else bytes(c) for c in counts]
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    chunk = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(len(raw)), lengths)
    bad = np.zeros(len(raw), dtype=bool)
    reason = np.empty(len(raw), dtype=object)

    def flag(mask: np.ndarray, why: str) -> None:
        new = mask & ~bad
        reason[new] = why
        bad[:] |= mask

    flag(lengths == 0, "empty compressed RLE string")
    outside = (chunk < 0) | (chunk >= 64)
    flag(np.bincount(owner[outside], minlength=len(raw)) > 0, "compressed RLE counts contain characters "
                                                              "outside the RLE alphabet")
    chunk = np.where(outside, 0, chunk)
    last_of_string = np.cumsum(lengths) - 1
    more = (chunk & 0x20) != 0
    ends = ~more
    ends[last_of_string[lengths > 0]] = True  # a string ending mid-value is flagged below
    flag(np.bincount(owner[more & np.isin(np.arange(len(chunk)), last_of_string)], minlength=len(raw)) > 0,
         "truncated compressed RLE string")
    value_id = np.concatenate([[0], np.cumsum(ends)[:-1]])
    value_start = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    shift = np.arange(len(chunk)) - value_start[value_id]
    flag(np.bincount(owner[shift > 11], minlength=len(raw)) > 0, "compressed RLE run too long")
    shift = np.minimum(shift, 11)
    value = np.zeros(len(value_start), dtype=np.int64)
    np.add.at(value, value_id, (chunk & 0x1F) << (5 * shift))
    last_chunk = chunk[ends]
    negative = (last_chunk & 0x10) != 0
    value[negative] -= np.left_shift(1, 5 * (shift[ends][negative] + 1))
    # Runs from the third on are stored as the difference to the run two places earlier.
    value_owner = owner[value_start]
    first_value = np.searchsorted(value_owner, np.arange(len(raw)))
    index = np.arange(len(value)) - first_value[value_owner]
    group = value_owner * 3 + np.where(index == 0, 0, 1 + index % 2)
    order = np.argsort(group, kind="stable")
    sums = np.cumsum(value[order])
    group_sorted = group[order]
    group_first = np.searchsorted(group_sorted, group_sorted, side="left")
    runs = np.empty_like(value)
    runs[order] = sums - np.where(group_first > 0, sums[group_first - 1], 0)
    flag(np.bincount(value_owner[runs < 0], minlength=len(raw)) > 0, "compressed RLE has negative run lengths")
    total = np.bincount(value_owner, weights=runs.astype(np.float64), minlength=len(raw))
    wrong_sum = np.rint(total).astype(np.int64) != np.asarray(pixels, dtype=np.int64)
    for i in np.flatnonzero(wrong_sum & ~bad):
        reason[i] = f"compressed RLE runs sum to {int(round(total[i]))} pixels, expected {int(pixels[i])}"
    bad |= wrong_sum
    if not bad.any():
        return None
    first = int(np.flatnonzero(bad)[0])
    return first, str(reason[first])
