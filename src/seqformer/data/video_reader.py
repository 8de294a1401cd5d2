"""Frame sources for AVA-format clips: extracted JPEG frames or the video files themselves (PyAV).

Both sources speak in *frame indices* of one resampled timeline: index ``k`` (0-based) is the
picture shown at ``start_second + k / fps`` seconds of the video.  ``seqformer prepare ava`` writes
that timeline to JPEGs and :class:`VideoFileSource` decodes it on the fly with the same rule
(:func:`select_at_fps`), so a model sees the same frames from either source.

A per-root ``frames_index.json`` (written by ``prepare ava`` and ``synth ava``) records the fps,
start second and each video's frame count and resolution, so nothing has to be probed per sample.
"""
from __future__ import annotations

import bisect
import errno
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from seqformer.errors import SeqFormerError

INDEX_FILE = "frames_index.json"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts")

Payload = TypeVar("Payload")


class FrameReadError(SeqFormerError, RuntimeError):
    """A frame (or a video) that should exist could not be read; the message names the file and index."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    height: int
    width: int


@dataclass
class FramesIndex:
    fps: float
    start_second: float
    videos: dict[str, VideoInfo]


def write_frames_index(root: str | Path, index: FramesIndex) -> None:
    data = {"fps": index.fps, "start_second": index.start_second,
            "videos": {vid: asdict(info) for vid, info in sorted(index.videos.items())}}
    path = Path(root) / INDEX_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def read_frames_index(root: str | Path) -> FramesIndex | None:
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        videos = {vid: VideoInfo(int(v["num_frames"]), int(v["height"]), int(v["width"]))
                  for vid, v in data["videos"].items()}
        return FramesIndex(float(data["fps"]), float(data["start_second"]), videos)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: malformed frames index ({e!r})") from None


def select_at_fps(frames: Iterable[tuple[float, Payload]], start: float, fps: float,
                  first: int = 0, stop: int | None = None) -> Iterator[tuple[int, Payload]]:
    """Resample a stream of ``(time, payload)`` pairs to slots ``first..stop-1`` at ``fps``.

    Slot ``k`` shows the latest input frame with ``time < start + (k + 0.5) / fps`` (the first
    input frame if none is that early): ffmpeg's ``-r``/``fps`` filter rule (round to the nearest
    output slot, keep the last frame per slot), the identity for a source already at ``fps``.  After
    the last input frame, slots are emitted while their middle lies before that frame ends (it lasts as
    long as the gap before it): the same nearest-slot rule, so the millisecond timestamps of WebM/MKV
    (a 6 fps video ends at 1.334 s, not 8/6 s) do not add a slot.
    """
    k = first
    prev: tuple[float, Payload] | None = None
    frame_duration = 1.0 / fps
    for t, payload in frames:
        while (stop is None or k < stop) and start + (k + 0.5) / fps <= t:
            yield k, (prev if prev is not None else (t, payload))[1]
            k += 1
        if stop is not None and k >= stop:
            return
        if prev is not None and t > prev[0]:
            frame_duration = t - prev[0]
        prev = (t, payload)
    if prev is None:
        return
    while (stop is None or k < stop) and start + (k + 0.5) / fps < prev[0] + frame_duration:
        yield k, prev[1]
        k += 1


class JpegFrameSource:
    """Frames stored as one image per frame, located by a ``str.format`` pattern.

    ``pattern`` gets ``video_id`` and ``frame`` (= index + ``first_frame_number``), e.g. the
    standard ``"{video_id}/{video_id}_{frame:06d}.jpg"`` with 1-based numbers.  Without an index
    entry a video's frame count is found by a binary search over file existence (frames are
    contiguous) and its size from the first frame's header.
    """

    def __init__(self, root: str | Path, pattern: str = "{video_id}/{video_id}_{frame:06d}.jpg",
                 first_frame_number: int = 1, videos: dict[str, VideoInfo] | None = None) -> None:
        self.root = Path(root)
        self.pattern = pattern
        self.first_frame_number = first_frame_number
        self._info: dict[str, VideoInfo] = dict(videos or {})

    def frame_path(self, video_id: str, index: int) -> Path:
        return self.root / self.pattern.format(video_id=video_id, frame=index + self.first_frame_number)

    def info(self, video_id: str) -> VideoInfo:
        if video_id not in self._info:
            first = self.frame_path(video_id, 0)
            if not first.is_file():
                raise FrameReadError(f"no frames for video {video_id!r}: {first} does not exist")
            try:
                with Image.open(first) as img:
                    w, h = img.size
            except OSError as e:
                raise FrameReadError(f"cannot read {first} (frame 0 of video {video_id!r}): {e}") from None
            hi = 1
            while self.frame_path(video_id, hi).is_file():
                hi *= 2
            lo = hi // 2  # frame lo exists, frame hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if self.frame_path(video_id, mid).is_file() else (lo, mid)
            self._info[video_id] = VideoInfo(hi, h, w)
        return self._info[video_id]

    def read_frame(self, video_id: str, index: int, want_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Decode one frame to ``uint8 [H,W,3]``, DCT-downscaled (never below ``want_hw``) when possible."""
        path = self.frame_path(video_id, index)
        try:
            with Image.open(path) as img:
                if want_hw is not None and img.format == "JPEG":
                    img.draft("RGB", (want_hw[1], want_hw[0]))
                return np.asarray(img.convert("RGB"))
        except FileNotFoundError:
            raise FrameReadError(f"missing frame {index} of video {video_id!r}: {path}") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise FrameReadError(f"corrupt frame {index} of video {video_id!r}: {path} ({e})") from None


class VideoFileSource:
    """Decode clips straight from ``<video_dir>/<video_id>.<ext>`` with PyAV (seek + decode).

    Frame ``k`` is the picture at ``start_second + k/fps`` of the video (see :func:`select_at_fps`),
    matching what ``prepare ava`` extracts.  The frame count runs to the end of the video (or
    ``end_second``).  Slower than JPEGs (each clip decodes from the preceding keyframe) but needs
    no extraction step.
    """

    def __init__(self, video_dir: str | Path, fps: float, start_second: float,
                 end_second: float | None = None) -> None:
        self.video_dir = Path(video_dir)
        self.fps = fps
        self.start_second = start_second
        self.end_second = end_second
        self._paths: dict[str, Path] | None = None
        self._info: dict[str, VideoInfo] = {}

    def video_path(self, video_id: str) -> Path:
        if self._paths is None:
            self._paths = find_videos(self.video_dir)
        if video_id not in self._paths:
            raise FrameReadError(f"no video file for {video_id!r} in {self.video_dir}")
        return self._paths[video_id]

    def info(self, video_id: str) -> VideoInfo:
        if video_id not in self._info:
            import av

            path = self.video_path(video_id)
            try:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    duration = _container_duration(container, stream)
                    h, w = stream.codec_context.height, stream.codec_context.width
            except (av.FFmpegError, IndexError) as e:
                raise FrameReadError(f"cannot open video {path}: {e}") from None
            end = duration if self.end_second is None else min(duration, self.end_second)
            n = max(0, int(np.floor((end - self.start_second) * self.fps + 1e-6)))
            self._info[video_id] = VideoInfo(n, h, w)
        return self._info[video_id]

    def read_clip(self, video_id: str, indices: Sequence[int],
                  out_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Decode frames ``indices`` (any order, repeats allowed) to ``uint8 [T,H,W,3]``."""
        import av

        wanted = sorted(set(indices))
        path = self.video_path(video_id)
        got: dict[int, np.ndarray] = {}
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                offset = _container_start(container)
                seek_t = self.start_second + (wanted[0] - 0.5) / self.fps + offset
                container.seek(max(0, int(seek_t / stream.time_base)), stream=stream, backward=True)
                timed = ((f.time - offset, f) for f in container.decode(stream) if f.time is not None)
                for k, frame in select_at_fps(timed, self.start_second, self.fps, wanted[0], wanted[-1] + 1):
                    pos = bisect.bisect_left(wanted, k)
                    if pos < len(wanted) and wanted[pos] == k:
                        got[k] = to_rgb(frame, out_hw)
        except av.FFmpegError as e:
            raise FrameReadError(f"cannot decode {path} near frame {wanted[0]}: {e}") from None
        missing = [k for k in wanted if k not in got]
        if missing:
            raise FrameReadError(f"video {path} has no frame {missing[0]} "
                                 f"(t={self.start_second + missing[0] / self.fps:.3f}s at {self.fps} fps)")
        return np.stack([got[k] for k in indices])


def to_rgb(frame, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``av.VideoFrame`` -> ``uint8 [H,W,3]``, resized by swscale when ``out_hw`` is given."""
    if out_hw is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", height=out_hw[0], width=out_hw[1], interpolation="AREA")


def find_videos(video_dir: str | Path) -> dict[str, Path]:
    """Map video id (file stem) -> path for every video file directly in ``video_dir``."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(errno.ENOENT, "video folder does not exist", str(video_dir))  # CLI: error: <dir>: ...
    paths: dict[str, Path] = {}
    for p in sorted(video_dir.iterdir()):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            if p.stem in paths:
                raise ValueError(f"two videos for id {p.stem!r}: {paths[p.stem]} and {p}")
            paths[p.stem] = p
    return paths


def _container_start(container) -> float:
    return container.start_time / 1_000_000 if container.start_time is not None else 0.0


def _container_duration(container, stream) -> float:
    """Duration in seconds relative to the container start, from the stream or the container header."""
    if stream.duration is not None and stream.time_base is not None:
        stream_start = float((stream.start_time or 0) * stream.time_base)
        return stream_start - _container_start(container) + float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    raise FrameReadError("video has no duration in its header")
