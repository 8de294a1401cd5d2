"""Reading, validating and writing YouTube-VIS-format annotation files (2019 and 2021 layouts).

The official files are plain JSON: ``videos`` (id, width, height, length, file_names), ``categories`` and
``annotations`` whose ``segmentations``/``bboxes``/``areas`` hold one entry per frame, ``null`` where the
instance is absent.  Segmentations are RLE (``counts`` as a list = uncompressed, or as a string = COCO's
compressed encoding) or polygon lists.  pycocotools does not check RLE consistency (a broken compressed string
decodes to uninitialised memory), so we validate run lengths ourselves and every error names the file, the
video and the annotation id.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from seqformer.errors import SeqFormerError


class YTVISFormatError(SeqFormerError, ValueError):
    """Malformed YouTube-VIS annotation file; the message names the file and the offending id."""


Segmentation = dict | list | None


def compressed_rle_counts(counts: str) -> list[int]:
    """Decode pycocotools' compressed RLE string into run lengths (6-bit chars, delta-coded from run 3)."""
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("truncated RLE string")
            chunk = ord(counts[pos]) - 48
            if not 0 <= chunk < 64:
                raise ValueError(f"invalid RLE character {counts[pos]!r}")
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            pos += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _check_rle(seg: dict, height: int, width: int) -> None:
    size = seg.get("size")
    if not (isinstance(size, list) and len(size) == 2 and list(size) == [height, width]):
        raise ValueError(f"RLE size {size} does not match the video size [{height}, {width}]")
    counts = seg.get("counts")
    if isinstance(counts, str):
        runs = compressed_rle_counts(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) for c in counts):
        runs = counts
    else:
        raise ValueError(f"RLE counts must be a list of ints or a string, got {type(counts).__name__}")
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ValueError(f"RLE run lengths sum to {sum(runs)} (negative runs: {any(r < 0 for r in runs)}), "
                         f"expected {height}x{width}={height * width}")


def _check_polygons(seg: list) -> None:
    if not seg:
        raise ValueError("empty polygon list (use null for an absent frame)")
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            n = len(poly) if isinstance(poly, list) else type(poly).__name__
            raise ValueError(f"polygon must be a flat list of >= 3 (x, y) pairs, got {n} values")
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in poly):
            raise ValueError("polygon has non-numeric or non-finite coordinates")


def check_segmentation(seg: Segmentation, height: int, width: int) -> None:
    """Raise ValueError (no context) if ``seg`` is not null, a valid RLE dict or a valid polygon list."""
    if seg is None:
        return
    if isinstance(seg, dict):
        _check_rle(seg, height, width)
    elif isinstance(seg, list):
        _check_polygons(seg)
    else:
        raise ValueError(f"segmentation must be null, an RLE dict or a polygon list, got {type(seg).__name__}")


def decode_segmentation(seg: Segmentation, height: int, width: int, validate: bool = True) -> np.ndarray:
    """Binary ``uint8 [H, W]`` mask of one frame's segmentation (zeros for null); polygons are unioned.

    ``validate=False`` skips :func:`check_segmentation` for input already validated at load time.
    """
    if validate:
        check_segmentation(seg, height, width)
    if seg is None:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    return mask_utils.decode(rle)


def encode_rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """JSON-ready RLE of a binary ``[H, W]`` mask; string counts (compressed) or a list (uncompressed)."""
    mask = np.asfortranarray(mask.astype(np.uint8))
    if compressed:
        rle = mask_utils.encode(mask)
        return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    flat = mask.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


class YTVISAnnotations:
    """A validated YouTube-VIS annotation file with per-video lookups; the raw dicts stay JSON-ready."""

    def __init__(self, data: dict[str, Any], path: str | Path = "<memory>"):
        self.path = str(path)
        self.data = data
        self.videos: list[dict] = data["videos"]
        self.categories: list[dict] = data["categories"]
        self.annotations: list[dict] = data.get("annotations", [])
        self.videos_by_id = {v["id"]: v for v in self.videos}
        self.anns_by_video: dict[int, list[dict]] = {v["id"]: [] for v in self.videos}
        for ann in self.annotations:
            self.anns_by_video[ann["video_id"]].append(ann)

    @property
    def has_annotations(self) -> bool:
        return "annotations" in self.data

    def decode_mask(self, ann: dict, frame: int) -> np.ndarray:
        """Decode one frame of an annotation, re-raising pycocotools errors with file/video/annotation ids."""
        video = self.videos_by_id[ann["video_id"]]
        try:
            return decode_segmentation(ann["segmentations"][frame], video["height"], video["width"], validate=False)
        except Exception as err:  # pycocotools raises bare Exception/TypeError for bad input
            raise YTVISFormatError(f"{self.path}: video {video['id']} annotation {ann['id']} frame {frame}: "
                                   f"cannot decode segmentation: {err}") from err

    def check_images(self, img_dir: str | Path) -> None:
        """Raise if any listed frame file is missing under ``img_dir``."""
        root = Path(img_dir)
        for video in self.videos:
            for name in video["file_names"]:
                if not (root / name).is_file():
                    raise YTVISFormatError(f"{self.path}: video {video['id']}: missing image file {root / name}")


def null_mismatches(annotations: list[dict]) -> dict[str, int]:
    """Frames whose ``bboxes`` / ``areas`` entry is null where the segmentation is present, or the other
    way round, per key (counted so that a reader can say so; the files are not wrong enough to refuse)."""
    counts = {"bboxes": 0, "areas": 0}
    for ann in annotations:
        segs = ann["segmentations"]
        for key in counts:
            if isinstance(ann.get(key), list):
                counts[key] += sum((v is None) != (s is None) for v, s in zip(ann[key], segs))
    return counts


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise YTVISFormatError(f"{where}: {msg}")


def validate_ytvis(data: Any, path: str | Path = "<memory>") -> None:
    """Structural and RLE/polygon validation of a parsed YouTube-VIS json; raises YTVISFormatError."""
    where = str(path)
    _require(isinstance(data, dict), where, "top level must be a JSON object")
    for key in ("videos", "categories"):
        _require(isinstance(data.get(key), list), where, f"missing or non-list '{key}'")
    cat_ids = set()
    for cat in data["categories"]:
        _require(isinstance(cat, dict) and isinstance(cat.get("id"), int), where, f"category without int id: {cat}")
        cat_ids.add(cat["id"])
    videos: dict[int, dict] = {}
    for video in data["videos"]:
        vid = video.get("id") if isinstance(video, dict) else None
        _require(isinstance(vid, int), where, f"video entry without int id: {str(video)[:80]}")
        vwhere = f"{where}: video {vid}"
        _require(vid not in videos, vwhere, "duplicate video id")
        names = video.get("file_names")
        _require(isinstance(names, list) and len(names) > 0 and all(isinstance(n, str) for n in names),
                 vwhere, "'file_names' must be a non-empty list of strings")
        for key in ("height", "width"):
            _require(isinstance(video.get(key), int) and video[key] > 0, vwhere, f"'{key}' must be a positive int")
        _require(video.get("length", len(names)) == len(names), vwhere,
                 f"'length' {video.get('length')} != {len(names)} file names")
        videos[vid] = video
    annotations = data.get("annotations", [])
    _require(isinstance(annotations, list), where, "'annotations' must be a list")
    ann_ids = set()
    for ann in annotations:
        aid = ann.get("id") if isinstance(ann, dict) else None
        _require(isinstance(aid, int), where, f"annotation without int id: {str(ann)[:80]}")
        video = videos.get(ann.get("video_id"))
        awhere = f"{where}: video {ann.get('video_id')} annotation {aid}"
        _require(aid not in ann_ids, awhere, "duplicate annotation id")
        ann_ids.add(aid)
        _require(video is not None, awhere, "unknown video_id")
        _require(ann.get("category_id") in cat_ids, awhere, f"unknown category_id {ann.get('category_id')}")
        n = len(video["file_names"])
        segs = ann.get("segmentations")
        _require(isinstance(segs, list) and len(segs) == n, awhere,
                 f"'segmentations' must list one entry per frame ({n})")
        for key in ("bboxes", "areas"):
            if key in ann:
                _require(isinstance(ann[key], list) and len(ann[key]) == n, awhere, f"'{key}' must have {n} entries")
        for frame, seg in enumerate(segs):
            try:
                check_segmentation(seg, video["height"], video["width"])
            except ValueError as err:
                raise YTVISFormatError(f"{awhere} frame {frame}: {err}") from None
            box = ann["bboxes"][frame] if "bboxes" in ann else None
            _require(box is None or (isinstance(box, list) and len(box) == 4), awhere,
                     f"frame {frame}: bbox must be null or [x, y, w, h]")


def load_ytvis_json(path: str | Path, img_dir: str | Path | None = None) -> YTVISAnnotations:
    """Load and validate a YouTube-VIS json; with ``img_dir`` also check that every frame file exists."""
    path = Path(path)
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise YTVISFormatError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    validate_ytvis(data, path)
    anns = YTVISAnnotations(data, path)
    if img_dir is not None:
        anns.check_images(img_dir)
    return anns


def save_ytvis_json(data: dict[str, Any], path: str | Path) -> None:
    """Validate then write a YouTube-VIS json (compact, as the official files), creating parent folders."""
    validate_ytvis(data, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
