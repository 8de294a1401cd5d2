"""JHMDB-21 and UCF101-24 ground truth in the ACT-detector pickle format: read, validate, write.

The published ``JHMDB-GT.pkl`` and ``UCF101v2-GT.pkl`` (Kalogeiton et al., reused by MOC, YOWO,
TubeR, ...) are one dict:

* ``labels``: list of class names; a label's index is its 0-based id.
* ``gttubes``: ``{video: {label_0based: [tube, ...]}}``; a tube is an ``(n, 5)`` float32 array of rows
  ``[frame, x1, y1, x2, y2]`` with 1-based, consecutive frame numbers and pixel coordinates.
* ``nframes``: ``{video: number of frames}``; ``resolution``: ``{video: (height, width)}``.
* ``train_videos`` / ``test_videos``: one list of video names per split (JHMDB 3, UCF101-24 1);
  split ``N`` is index ``N - 1``.

They are Python-2 pickles (protocol 0 for the JHMDB file) holding numpy arrays, so they are read with
``encoding="latin1"`` through :class:`seqformer.utils.safe_pickle.NumpyOnlyUnpickler`, which resolves only the few numpy globals an
array needs: a crafted file cannot name ``os.system`` or any other callable.  Everything else is checked
against the schema above and a mismatch raises :class:`JhmdbFormatError` naming the file and the key,
video, label and tube.  Frames must be consecutive because the tube overlap of the evaluation (and of the
reference code) slices tubes by frame range.

:func:`write_groundtruth_pickle` writes the same structure (protocol 2, float32 ``(n, 5)`` arrays, tuples
for resolutions, ints elsewhere) so synthetic datasets are interchangeable with the published files.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqformer.errors import SeqFormerError
from seqformer.utils.safe_pickle import NumpyOnlyUnpickler

KEYS = ("labels", "gttubes", "nframes", "train_videos", "test_videos", "resolution")


class JhmdbFormatError(SeqFormerError, ValueError):
    """Malformed JHMDB/UCF101-24 ground-truth pickle; the message names the file and what is wrong where."""


@dataclass
class JhmdbGroundTruth:
    """A validated ground-truth pickle.  ``gttubes[video][label]`` holds float32 ``(n, 5)`` arrays."""

    labels: list[str]
    gttubes: dict[str, dict[int, list[np.ndarray]]]
    nframes: dict[str, int]
    train_videos: list[list[str]]
    test_videos: list[list[str]]
    resolution: dict[str, tuple[int, int]]
    source: str = "<memory>"
    ignored_keys: list[str] = field(default_factory=list)  # top-level keys outside the format

    @property
    def num_splits(self) -> int:
        return len(self.test_videos)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def test_videos_of(self, split: int) -> list[str]:
        """Test videos of 1-based ``split`` (``test_videos[split - 1]``, the evaluation's video list)."""
        return self.test_videos[self._split_index(split)]

    def train_videos_of(self, split: int) -> list[str]:
        return self.train_videos[self._split_index(split)]

    def frames(self, video: str) -> int:
        """Number of frames of ``video`` (frames are numbered 1..frames)."""
        return self.nframes[self._known(video)]

    def tubes(self, video: str) -> dict[int, list[np.ndarray]]:
        """``{label_0based: [tube (n, 5) float32, ...]}`` of ``video``; empty dict when it has none."""
        return self.gttubes.get(self._known(video), {})

    def tubes_of(self, video: str, label: int) -> list[np.ndarray]:
        return self.tubes(video).get(label, [])

    def _split_index(self, split: int) -> int:
        if isinstance(split, bool) or not isinstance(split, (int, np.integer)) or not 1 <= split <= self.num_splits:
            raise JhmdbFormatError(f"{self.source}: split {split!r} does not exist "
                                   f"(the file has splits 1..{self.num_splits})")
        return int(split) - 1

    def _known(self, video: str) -> str:
        if video not in self.nframes:
            raise JhmdbFormatError(f"{self.source}: unknown video {video!r}")
        return video

    def to_dict(self) -> dict:
        """The pickle's dict, in the published key order and container types."""
        return {
            "labels": list(self.labels),
            "gttubes": {v: {int(l): [np.ascontiguousarray(t, dtype=np.float32) for t in tubes]
                            for l, tubes in by_label.items()} for v, by_label in self.gttubes.items()},
            "nframes": {v: int(n) for v, n in self.nframes.items()},
            "train_videos": [list(s) for s in self.train_videos],
            "test_videos": [list(s) for s in self.test_videos],
            "resolution": {v: (int(h), int(w)) for v, (h, w) in self.resolution.items()},
        }


def read_groundtruth_pickle(path: str | os.PathLike) -> JhmdbGroundTruth:
    """Load and validate ``JHMDB-GT.pkl`` / ``UCF101v2-GT.pkl`` (or a file written by the writer below)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JhmdbFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise JhmdbFormatError(f"{path}: not a ground-truth pickle ({exc})") from None
    except Exception as exc:  # truncated/corrupt streams raise many unrelated types
        raise JhmdbFormatError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    return groundtruth_from_dict(obj, source=str(path))


def write_groundtruth_pickle(gt: JhmdbGroundTruth, path: str | os.PathLike, protocol: int = 2) -> None:
    """Write ``gt`` as a pickle with the published structure (validated first, so it reads back)."""
    data = gt.to_dict()
    groundtruth_from_dict(data, source=str(path))  # refuse to write what we could not read back
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)


def groundtruth_from_dict(obj: Any, source: str = "<memory>") -> JhmdbGroundTruth:
    """Validate an unpickled object against the format and return it typed (tubes as float32)."""
    if not isinstance(obj, dict):
        raise JhmdbFormatError(f"{source}: expected a dict at the top level, got {type(obj).__name__}")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise JhmdbFormatError(f"{source}: missing key(s) {', '.join(missing)} (need {', '.join(KEYS)})")
    labels = _labels(obj["labels"], source)
    nframes = _nframes(obj["nframes"], source)
    resolution = _resolution(obj["resolution"], nframes, source)
    train = _splits(obj["train_videos"], "train_videos", nframes, source)
    test = _splits(obj["test_videos"], "test_videos", nframes, source)
    if len(train) != len(test):
        raise JhmdbFormatError(f"{source}: train_videos has {len(train)} splits but test_videos {len(test)}")
    gttubes = _gttubes(obj["gttubes"], len(labels), nframes, source)
    for name, splits in (("train_videos", train), ("test_videos", test)):
        for s, videos in enumerate(splits, start=1):
            lacking = next((v for v in videos if v not in gttubes), None)
            if lacking is not None:
                raise JhmdbFormatError(f"{source}: {name} split {s}: video {lacking!r} has no gttubes entry")
    ignored = sorted(str(k) for k in obj if k not in KEYS)
    return JhmdbGroundTruth(labels, gttubes, nframes, train, test, resolution, source, ignored)


# ------------------------------------------------------------------------------------------ validation

def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _labels(labels: Any, source: str) -> list[str]:
    if not isinstance(labels, (list, tuple)) or not labels:
        raise JhmdbFormatError(f"{source}: 'labels' must be a non-empty list of names")
    for i, name in enumerate(labels):
        if not isinstance(name, str) or not name:
            raise JhmdbFormatError(f"{source}: labels[{i}] must be a non-empty string, got {name!r}")
    if len(set(labels)) != len(labels):
        dup = next(n for n in labels if labels.count(n) > 1)
        raise JhmdbFormatError(f"{source}: label {dup!r} appears more than once in 'labels'")
    return list(labels)


def _nframes(nframes: Any, source: str) -> dict[str, int]:
    if not isinstance(nframes, dict):
        raise JhmdbFormatError(f"{source}: 'nframes' must be a dict video -> frame count")
    out = {}
    for video, n in nframes.items():
        if not isinstance(video, str):
            raise JhmdbFormatError(f"{source}: nframes: video key {video!r} is not a string")
        if not _is_int(n) or n < 1:
            raise JhmdbFormatError(f"{source}: nframes[{video!r}] must be a positive integer, got {n!r}")
        out[video] = int(n)
    return out


def _resolution(resolution: Any, nframes: dict[str, int], source: str) -> dict[str, tuple[int, int]]:
    if not isinstance(resolution, dict):
        raise JhmdbFormatError(f"{source}: 'resolution' must be a dict video -> (height, width)")
    out = {}
    for video, hw in resolution.items():
        if video not in nframes:
            raise JhmdbFormatError(f"{source}: resolution: video {video!r} is not in nframes")
        if not (isinstance(hw, (tuple, list)) and len(hw) == 2 and all(_is_int(x) and x > 0 for x in hw)):
            raise JhmdbFormatError(f"{source}: resolution[{video!r}] must be (height, width) positive "
                                   f"integers, got {hw!r}")
        out[video] = (int(hw[0]), int(hw[1]))
    lacking = next((v for v in nframes if v not in out), None)
    if lacking is not None:
        raise JhmdbFormatError(f"{source}: resolution: video {lacking!r} (in nframes) has no entry")
    return out


def _splits(splits: Any, key: str, nframes: dict[str, int], source: str) -> list[list[str]]:
    if not isinstance(splits, (list, tuple)) or not splits:
        raise JhmdbFormatError(f"{source}: '{key}' must be a non-empty list with one video list per split")
    out = []
    for s, videos in enumerate(splits, start=1):
        if not isinstance(videos, (list, tuple)):
            raise JhmdbFormatError(f"{source}: {key} split {s} must be a list of video names")
        for video in videos:
            if not isinstance(video, str) or video not in nframes:
                raise JhmdbFormatError(f"{source}: {key} split {s}: video {video!r} is not in nframes")
        if len(set(videos)) != len(videos):
            dup = next(v for v in videos if videos.count(v) > 1)
            raise JhmdbFormatError(f"{source}: {key} split {s}: video {dup!r} is listed twice")
        out.append(list(videos))
    return out


def _gttubes(gttubes: Any, num_labels: int, nframes: dict[str, int],
             source: str) -> dict[str, dict[int, list[np.ndarray]]]:
    if not isinstance(gttubes, dict):
        raise JhmdbFormatError(f"{source}: 'gttubes' must be a dict video -> {{label: [tube, ...]}}")
    out: dict[str, dict[int, list[np.ndarray]]] = {}
    for video, by_label in gttubes.items():
        if video not in nframes:
            raise JhmdbFormatError(f"{source}: gttubes: video {video!r} is not in nframes")
        if not isinstance(by_label, dict):
            raise JhmdbFormatError(f"{source}: gttubes[{video!r}] must be a dict label -> list of tubes")
        out[video] = {}
        for label, tubes in by_label.items():
            where = f"{source}: gttubes[{video!r}][{label!r}]"
            if not _is_int(label) or not 0 <= label < num_labels:
                raise JhmdbFormatError(f"{where}: label must be an integer in 0..{num_labels - 1}")
            if not isinstance(tubes, (list, tuple)):
                raise JhmdbFormatError(f"{where}: expected a list of tubes, got {type(tubes).__name__}")
            out[video][int(label)] = [_tube(t, f"{where}[{i}]", nframes[video]) for i, t in enumerate(tubes)]
    return out


def _tube(tube: Any, where: str, nframes: int) -> np.ndarray:
    if not isinstance(tube, np.ndarray) or tube.dtype.kind not in "fiu":
        raise JhmdbFormatError(f"{where}: a tube must be a numeric numpy array, got "
                               f"{getattr(tube, 'dtype', type(tube).__name__)}")
    if tube.ndim != 2 or tube.shape[1] != 5 or tube.shape[0] == 0:
        raise JhmdbFormatError(f"{where}: a tube must have shape (n >= 1, 5), got {tube.shape}")
    tube = np.ascontiguousarray(tube, dtype=np.float32)
    if not np.isfinite(tube).all():
        raise JhmdbFormatError(f"{where}: non-finite value")
    frames = tube[:, 0]
    if not (frames == np.round(frames)).all():
        raise JhmdbFormatError(f"{where}: frame numbers must be integers")
    if frames[0] < 1 or frames[-1] > nframes:
        raise JhmdbFormatError(f"{where}: frames {int(frames[0])}..{int(frames[-1])} outside the video's "
                               f"1..{nframes}")
    if tube.shape[0] > 1 and not (np.diff(frames) == 1).all():
        raise JhmdbFormatError(f"{where}: frames must be consecutive and increasing (row "
                               f"{int(np.flatnonzero(np.diff(frames) != 1)[0]) + 1} jumps)")
    return tube
