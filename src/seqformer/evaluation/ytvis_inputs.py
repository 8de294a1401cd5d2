"""Parsing and validation of YouTube-VIS ground truth and results for :mod:`.ytvis_eval`.

Follows what the official ``YTVOS``/``loadRes`` keep and compute (see :mod:`.ytvis_eval`), but
turns every malformed input into a :class:`YTVISEvalError` naming the file, video and annotation.
Detection frames are only checked cheaply here (type, size); they are decoded later, once.

A large results array can be cut into byte spans of whole top-level elements
(:func:`split_json_array`) so that several processes parse it at once; see :func:`parse_json_span`
for why a successful parse of every span proves the cuts were right.
"""
from __future__ import annotations

import gc
import json
import mmap
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from seqformer.errors import SeqFormerError
from seqformer.evaluation.rle_ops import RLEFormatError, check_compressed_counts, frame_to_rle, rle_areas


class YTVISEvalError(SeqFormerError, ValueError):
    """Malformed ground truth or results; the message names the file, video and annotation."""


class ResultError(YTVISEvalError):
    """A malformed result; ``index`` (its position in the results list) orders errors across workers."""

    def __init__(self, name: str, index: int, detail: str) -> None:
        super().__init__(f"results {name}: result [{index}]{detail}")
        self.index = index


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: parsing creates millions of acyclic objects it would re-scan repeatedly."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_bytes(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise YTVISEvalError(f"cannot read {what} file {path}: {err}") from err


def parse_json(raw: bytes, what: str, name: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise YTVISEvalError(f"{what} file {name} is not valid JSON: {err}") from err


def load_json(source: str | Path | dict | list, what: str) -> tuple[object, str]:
    """(parsed data, name for messages); in-memory objects are passed through untouched."""
    if not isinstance(source, (str, Path)):
        return source, f"<in-memory {what}>"
    return parse_json(read_bytes(source, what), what, str(source)), str(source)


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_WHITESPACE_BYTES = b" \t\n\r"
_ELEMENT_START = b'"video_id"'
_MAX_CUT_TRIES = 64


_WINDOW = 1 << 20


def split_json_array(path: str | Path, parts: int) -> list[tuple[int, int]] | None:
    """Byte spans [start, stop) of ``parts`` runs of whole elements of the file's top-level array.

    Only small windows of the file are read: cuts are guessed near equal sizes at a ``}``,
    ``,``, ``{"video_id"`` pattern (how results files are written); a wrong guess is caught by
    :func:`parse_json_span`. None when the text is not a plain UTF-8 array or no cut is found:
    the caller then parses the file whole.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        head = _read_at(f, 0, _WINDOW)
        tail_start = max(size - _WINDOW, 0)
        tail = _read_at(f, tail_start, _WINDOW)
        first, last = _skip_forward(head, 0), tail_start + _skip_back(tail, len(tail)) - 1
        if head[first:first + 1] != b"[" or tail[last - tail_start:last - tail_start + 1] != b"]" \
                or b"\x00" in head[:4]:
            return None
        starts, stops = [first + 1], []
        for k in range(1, parts):
            window_start = max(size * k // parts, starts[-1])
            cut = _find_cut(_read_at(f, window_start, _WINDOW))
            if cut is None or window_start + cut[1] >= last:
                return None
            stops.append(window_start + cut[0])
            starts.append(window_start + cut[1])
    stops.append(last)
    return list(zip(starts, stops))


def parse_json_file_span(path: str | Path, start: int, stop: int) -> list:
    """:func:`parse_json_span` of ``path[start:stop]``, decoded straight from a memory map."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        with memoryview(mapped) as whole, whole[start:stop] as span:
            return parse_json_span(span)


def _read_at(f, start: int, length: int) -> bytes:
    f.seek(start)
    return f.read(length)


def _skip_forward(raw: bytes, index: int) -> int:
    while index < len(raw) and raw[index] in _WHITESPACE_BYTES:
        index += 1
    return index


def _skip_back(raw: bytes, index: int) -> int:
    while index > 0 and raw[index - 1] in _WHITESPACE_BYTES:
        index -= 1
    return index


def _find_cut(window: bytes) -> tuple[int, int] | None:
    """(end of one element, start of the next) at the first plausible boundary in ``window``."""
    position = 0
    for _ in range(_MAX_CUT_TRIES):
        key = window.find(_ELEMENT_START, position)
        if key < 0:
            return None
        position = key + 1
        start = _skip_back(window, key) - 1
        comma = _skip_back(window, start) - 1
        end = _skip_back(window, comma)
        if end > 0 and window[start] == ord("{") and window[comma] == ord(",") and window[end - 1] == ord("}"):
            return end, start
    return None


def parse_json_span(raw: bytes | memoryview) -> list:
    """The comma-separated JSON values in ``raw`` (a span); ValueError unless exactly that.

    Each value is decoded by the same C scanner ``json.loads`` uses. When the spans come from
    :func:`split_json_array` and all of them parse, the cuts are true top-level boundaries: a
    span that ended inside a string or a nested value would leave its last value unterminated
    (every cut ends at a ``}``, so no number can be silently shortened), and each span starts
    where the previous one provably ended, after one comma. So the concatenated lists equal
    ``json.loads(raw)``.
    """
    text = str(raw, "utf-8", "surrogatepass")
    decode, skip = json.JSONDecoder().raw_decode, _WHITESPACE.match
    values, position = [], skip(text, 0).end()
    while position < len(text):
        value, position = decode(text, position)
        values.append(value)
        position = skip(text, position).end()
        if position < len(text):
            if text[position] != ",":
                raise ValueError(f"expected ',' at character {position} of the span")
            position = skip(text, position + 1).end()
            if position == len(text):
                raise ValueError("trailing ',' at the end of the span")
    return values


class GroundTruth:
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
        self.null_mismatch = {"bboxes": 0, "areas": 0}  # frames whose null-ness differs from the segmentation's
        seen: set[object] = set()
        categories = set(self.category_ids)
        for i, ann in enumerate(data["annotations"]):
            self._add_annotation(ann, i, seen, categories)
        self._check_run_lengths()
        self.ann_area_sum = self._mask_area_sums()
        self.video_position = {v: i for i, v in enumerate(self.video_ids)}
        self.category_position = {c: k for k, c in enumerate(self.category_ids)}
        self.ann_key = self.group_keys(self.ann_video, self.ann_category)
        self.frame_blocks = self._frame_blocks()

    def group_keys(self, videos: list, categories: list) -> np.ndarray:
        """One int64 per (video, category): video position * number of categories + category position."""
        video = np.array([self.video_position[v] for v in videos], dtype=np.int64)
        category = np.array([self.category_position[c] for c in categories], dtype=np.int64)
        return video * len(self.category_ids) + category

    def _frame_blocks(self) -> dict[tuple[int, int], tuple[list[int], list[dict], list[int]]]:
        """(group key, frame) -> (annotation rows present there, their RLEs, all-ones crowd flags)."""
        blocks: dict[tuple[int, int], tuple[list[int], list[dict], list[int]]] = {}
        for row, (key, rles) in enumerate(zip(self.ann_key.tolist(), self.ann_rles)):
            for t, rle in enumerate(rles):
                if rle is not None:
                    rows, block_rles, flags = blocks.setdefault((key, t), ([], [], []))
                    rows.append(row)
                    block_rles.append(rle)
                    flags.append(1)
        return blocks

    def _add_video(self, video: object, index: int) -> None:
        try:
            vid, height, width = video["id"], int(video["height"]), int(video["width"])
        except (TypeError, KeyError, ValueError) as err:
            raise YTVISEvalError(f"groundtruth {self.name}: videos[{index}] needs 'id', 'height', 'width'") from err
        if not isinstance(vid, int) or isinstance(vid, bool):
            raise YTVISEvalError(f"groundtruth {self.name}: videos[{index}]: video id must be an integer, got {vid!r}")
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
        for key in self.null_mismatch:
            values = ann.get(key)
            if isinstance(values, list) and len(values) == len(rles):
                self.null_mismatch[key] += sum((v is None) != (r is None) for v, r in zip(values, rles))
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

    def _check_run_lengths(self) -> None:
        """Compressed RLE strings must decode to runs covering the frame exactly (pycocotools does not check)."""
        where = [(row, t) for row, rles in enumerate(self.ann_rles) for t, r in enumerate(rles) if r is not None]
        sizes = [self.video_size[self.ann_video[row]] for row, _ in where]
        problem = check_compressed_counts([self.ann_rles[row][t]["counts"] for row, t in where],
                                          np.array([h * w for h, w in sizes], dtype=np.int64))
        if problem is not None:
            row, t = where[problem[0]]
            raise YTVISEvalError(f"groundtruth {self.name}: annotation id {self.ann_ids[row]!r} "
                                 f"(video {self.ann_video[row]!r}) frame {t}: {problem[1]}")

    def _mask_area_sums(self) -> np.ndarray:
        present = [r for rles in self.ann_rles for r in rles if r is not None]
        owner = np.repeat(np.arange(len(self.ann_rles)), [sum(r is not None for r in x) for x in self.ann_rles])
        return np.bincount(owner, weights=rle_areas(present), minlength=len(self.ann_rles)).astype(np.int64)


class Detections:
    """Evaluated results with their per-frame RLEs flattened into one list (absent frames skipped).

    ``data`` may be a slice of the results list starting at position ``first_index``; messages
    and ``ids`` use positions in the whole list. ``inferred_lengths`` (filled even when an error
    is raised) records, for videos whose length was unknown, the length this slice inferred and
    the first result that set it, so that slices evaluated by different workers can be checked
    against each other.
    """

    def __init__(self, data: object, name: str, gt: GroundTruth, first_index: int = 0,
                 inferred_lengths: dict[object, tuple[int, int]] | None = None) -> None:
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
        self.inferred_lengths = {} if inferred_lengths is None else inferred_lengths
        for index, det in enumerate(data, first_index):
            try:
                vid, cat, score, segs = det["video_id"], det["category_id"], det["score"], det["segmentations"]
            except (TypeError, KeyError) as err:
                raise ResultError(name, index, " needs 'video_id', 'category_id', 'score', 'segmentations'") from err
            if vid not in gt.video_size:
                raise ResultError(name, index, f" (video {vid!r}): video_id not in the groundtruth 'videos'")
            if gt.video_length[vid] is None and isinstance(segs, list):
                self.inferred_lengths[vid] = (len(segs), index)
            try:
                gt.check_length(vid, segs, "")
            except YTVISEvalError as err:
                raise ResultError(name, index, f" (video {vid!r}){err}") from None
            if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
                raise ResultError(name, index, f" (video {vid!r}): 'score' must be a number, got {score!r}")
            if cat not in categories:
                self.skipped_unknown_category += 1
                continue
            present = [t for t, s in enumerate(segs) if s]
            frames = [segs[t] for t in present]
            if not self._sizes_match(frames, gt.video_size[vid]):
                frames = [self._checked_frame(segs[t], gt.video_size[vid], name, index, f" (video {vid!r}) frame {t}")
                          for t in present]
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
        self._check_run_lengths(name, gt)

    def _check_run_lengths(self, name: str, gt: GroundTruth) -> None:
        """Every frame's compressed RLE must decode to runs covering the frame exactly: pycocotools
        scores a corrupt string as some mask without a word."""
        owner = np.repeat(np.arange(len(self.video)), np.diff(self.frame_start))
        pixels = np.array([h * w for h, w in (gt.video_size[v] for v in self.video)], dtype=np.int64)
        problem = check_compressed_counts([f["counts"] for f in self.frames], pixels[owner])
        if problem is not None:
            frame, reason = problem
            result = int(owner[frame])
            raise ResultError(name, self.ids[result] - 1,
                              f" (video {self.video[result]!r}) frame {self.frame_t[frame]}: {reason}")

    @staticmethod
    def _sizes_match(frames: list, size: list[int]) -> bool:
        """Fast path: every frame is a dict with the video's ``size`` and string ``counts``."""
        try:
            return ([seg["size"] for seg in frames].count(size) == len(frames)
                    and [type(seg["counts"]) for seg in frames].count(str) == len(frames))
        except (TypeError, KeyError, IndexError):
            return False

    @staticmethod
    def _checked_frame(seg: object, size: list[int], name: str, index: int, where: str) -> dict:
        if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
            raise ResultError(name, index, f"{where}: segmentation must be null or an RLE dict with 'counts' "
                                           "and 'size'")
        if seg["size"] != size:
            raise ResultError(name, index, f"{where}: RLE size {seg['size']!r} differs from the video size {size}")
        try:
            return frame_to_rle(seg, size[0], size[1])
        except (RLEFormatError, TypeError, ValueError) as err:
            raise ResultError(name, index, f"{where}: {err}") from err
