"""Exact mask-area and mask-intersection arithmetic on COCO RLEs for the YouTube-VIS evaluator.

Every number here is an exact integer pixel count: the official evaluator sums per-frame
intersections and unions as integers before dividing, so anything approximate (for example
converting an IoU back to an intersection without rounding) could flip a threshold decision.
The heavy lifting is done by pycocotools' C routines, batched so that each detection frame is
decoded a small, fixed number of times instead of once per (detection, ground truth) pair.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils

# pycocotools' ``area`` stores the list length in a uint8 under numpy 2 and overflows past 255.
_AREA_CHUNK = 255
# Characters of a compressed COCO RLE string: chr(48) .. chr(48 + 63).
_RLE_ALPHABET = bytes(range(48, 48 + 64))


class RLEFormatError(ValueError):
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


@functools.lru_cache(maxsize=64)
def _full_frame(height: int, width: int) -> dict:
    return mask_utils.frPyObjects({"size": [height, width], "counts": [0, height * width]}, height, width)


def frame_areas_and_intersections(det_rles: list[dict], gt_rles: list[dict], height: int,
                                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact areas [D] of one frame's detection masks and their intersections [D, G] with the GTs.

    One batched pycocotools ``iou`` call decodes each detection once. With every ground truth
    flagged as crowd it returns ``intersection / area(det)``, and an extra full-frame non-crowd
    probe returns ``area(det) / (height * width)``; both are correctly rounded doubles, so
    multiplying back by the integer denominator and rounding recovers the integers exactly (the
    relative error is a few ulps, far below half a pixel). Pairs whose boxes do not overlap come
    back as exactly 0. A size mismatch comes back as -1 and is reported.
    """
    probe = _full_frame(height, width)
    num_gt = len(gt_rles)
    ratio = np.asarray(mask_utils.iou(det_rles, gt_rles + [probe], [1] * num_gt + [0]), dtype=np.float64)
    ratio = ratio.reshape(len(det_rles), num_gt + 1)
    if (ratio < 0).any():
        raise RLEFormatError("detection and ground-truth masks of the same frame differ in size")
    areas = np.rint(ratio[:, num_gt] * (height * width))
    return areas.astype(np.int64), np.rint(ratio[:, :num_gt] * areas[:, None]).astype(np.int64)
