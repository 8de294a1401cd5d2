"""User inputs for ``seqformer infer``: any video file PyAV opens, or a folder of frames, as a timeline.

A :class:`VideoInput` is read lazily, frame by frame, as a *constant-rate timeline*: slot ``k`` shows
the picture at ``start + k / fps`` (:func:`seqformer.data.video_reader.select_at_fps`, ffmpeg's
``fps`` filter rule).  With the video's own rate and a constant-frame-rate file this is the identity;
a variable-frame-rate file (or ``--fps``) is resampled, and the duplicated/dropped frames are counted.
Frames come out as ``uint8 [H,W,3]`` RGB in display orientation (rotation metadata applied),
whatever the pixel format (grayscale and alpha are converted; alpha is dropped and counted).
Iterating again decodes again: nothing is kept, so memory does not depend on the video's length.

A frame that fails to decode is skipped and counted (``on_decode_error="skip"``; the timeline holds
the previous picture in its slot) or stops reading with the frame number (``"stop"``).
"""
from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from seqformer.data.video_reader import VIDEO_EXTENSIONS, select_at_fps
from seqformer.errors import SeqFormerError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
FOLDER_DEFAULT_FPS = 30.0  # a folder of frames has no rate: --fps sets it


class InputVideoError(SeqFormerError, ValueError):
    """An input that cannot be read as a video (the message names the file and frame)."""


@dataclass
class ReadCounts:
    """What reading a timeline had to change; printed as one warning line when any is non-zero."""
    decode_errors: int = 0  # packets/frames that failed to decode (skipped)
    frames_in: int = 0  # source pictures inside [start, end)
    frames_out: int = 0  # timeline slots emitted
    alpha_dropped: int = 0  # frames whose alpha channel was dropped

    def warnings(self, fps: float) -> list[str]:
        notes = []
        if self.decode_errors:
            notes.append(f"{self.decode_errors} frame(s) failed to decode and were skipped")
        if self.frames_in and self.frames_in != self.frames_out:
            notes.append(f"resampled {self.frames_in} source frames to {self.frames_out} at a constant "
                         f"{fps:g} fps (frames repeated or dropped)")
        if self.alpha_dropped:
            notes.append(f"alpha channel dropped in {self.alpha_dropped} frame(s)")
        return notes


@dataclass
class VideoInput:
    """One input (video file or frame folder) read at ``fps`` from ``start`` to ``end`` seconds."""
    path: Path
    fps: float
    width: int  # display size (after rotation)
    height: int
    start: float = 0.0
    end: float | None = None
    rotation: int = 0  # counter-clockwise degrees applied to decoded pictures
    variable_rate: bool = False
    duration: float | None = None  # seconds of the source (None: unknown)
    on_decode_error: str = "skip"
    frame_files: list[Path] = field(default_factory=list)  # frame folders only
    counts: ReadCounts = field(default_factory=ReadCounts)

    @property
    def stem(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def estimated_frames(self) -> int | None:
        """Timeline length from the header (exact for frame folders), for progress bars only."""
        if self.frame_files:
            return len(self.frame_files)
        end = self.duration if self.end is None or self.duration is None else min(self.end, self.duration)
        return None if end is None else max(0, int(np.floor((end - self.start) * self.fps + 1e-6)))

    def time_of(self, k: int) -> float:
        """Seconds from the start of the source of timeline slot ``k``."""
        return self.start + k / self.fps

    def frames(self) -> Iterator[np.ndarray]:
        """Decode the timeline from its start (a fresh pass each call)."""
        self.counts = ReadCounts()
        stop = None if self.end is None else max(0, int(np.floor((self.end - self.start) * self.fps + 1e-6)))
        source = self._folder_frames() if self.frame_files else self._video_frames()
        for _, frame in select_at_fps(source, self.start, self.fps, 0, stop):
            self.counts.frames_out += 1
            yield frame

    def _folder_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        first = int(np.floor(self.start * self.fps))
        for i, path in enumerate(self.frame_files[first:], start=first):
            if self.end is not None and i / self.fps >= self.end:
                return
            try:
                with Image.open(path) as im:
                    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                        self.counts.alpha_dropped += 1
                    rgb = np.array(im.convert("RGB"))
            except (OSError, SyntaxError, ValueError) as e:
                if self.on_decode_error == "stop":
                    raise InputVideoError(f"{path}: cannot read frame {i}: {e}") from None
                self.counts.decode_errors += 1
                continue
            if rgb.shape[:2] != (self.height, self.width):
                raise InputVideoError(f"{path}: frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                      f"earlier frames {self.width}x{self.height}")
            if i / self.fps >= self.start:
                self.counts.frames_in += 1
            yield i / self.fps, rgb

    def _video_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        import av

        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            offset = container.start_time / 1_000_000 if container.start_time is not None else 0.0
            if self.start > 0:
                container.seek(max(0, int((self.start + offset) / stream.time_base)), stream=stream, backward=True)
            n = 0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    return
                except av.FFmpegError as e:  # a broken container after this point: nothing more to read
                    self._decode_error(n, e)
                    return
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    self._decode_error(n, e)
                    continue
                for frame in decoded:
                    n += 1
                    if frame.time is None:
                        continue
                    t = frame.time - offset
                    if self.end is not None and t >= self.end + 1.0 / self.fps:
                        return
                    if t >= self.start:
                        self.counts.frames_in += 1
                    yield t, self._to_rgb(frame)

    def _decode_error(self, n: int, error: Exception) -> None:
        if self.on_decode_error == "stop":
            raise InputVideoError(f"{self.path}: decode error after frame {n}: {error} "
                                  f"(--on-decode-error skip to skip broken frames)") from None
        self.counts.decode_errors += 1

    def _to_rgb(self, frame) -> np.ndarray:
        if frame.format.name.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya")):
            self.counts.alpha_dropped += 1
        rgb = frame.to_ndarray(format="rgb24")
        if self.rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=self.rotation // 90))
        return rgb


def open_input(path: str | Path, fps: float | None = None, start: float = 0.0, end: float | None = None,
               on_decode_error: str = "skip") -> VideoInput:
    """Probe ``path`` (a video file or a folder of frames) and describe it; raises :class:`InputVideoError`."""
    path = Path(path)
    if on_decode_error not in ("skip", "stop"):
        raise InputVideoError(f"--on-decode-error must be skip or stop, got {on_decode_error!r}")
    if fps is not None and not fps > 0:
        raise InputVideoError(f"--fps must be positive, got {fps}")
    if start < 0 or (end is not None and end <= start):
        raise InputVideoError(f"{path}: --start {start} / --end {end} select no time")
    if path.is_dir():
        return _open_folder(path, fps, start, end, on_decode_error)
    if not path.exists():
        raise InputVideoError(f"{path}: no such file or folder")
    return _open_video(path, fps, start, end, on_decode_error)


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def _open_folder(path: Path, fps, start, end, on_decode_error) -> VideoInput:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=_natural_key)
    if not files:
        raise InputVideoError(f"{path}: folder holds no frames ({', '.join(IMAGE_EXTENSIONS)})")
    try:
        with Image.open(files[0]) as im:
            width, height = im.size
    except OSError as e:
        raise InputVideoError(f"{files[0]}: cannot read frame 0: {e}") from None
    rate = fps or FOLDER_DEFAULT_FPS
    return VideoInput(path, rate, width, height, start, end, duration=len(files) / rate,
                      on_decode_error=on_decode_error, frame_files=files)


def _open_video(path: Path, fps, start, end, on_decode_error) -> VideoInput:
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise InputVideoError(f"{path}: not a video PyAV can open ({e})") from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise InputVideoError(f"{path}: no video stream (streams: {kinds})")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = _duration(container, stream)
        first, times = None, []
        try:  # the first pictures: real size, rotation, and whether the rate is constant
            for frame in container.decode(stream):
                first = first or frame
                if frame.time is not None:
                    times.append(frame.time)
                if len(times) >= 48:
                    break
        except av.FFmpegError:
            pass  # a broken start is reported by the decode pass itself (skip/stop)
    if first is None:
        raise InputVideoError(f"{path}: zero-length video stream (no frame decodes)")
    if rate is None or not float(rate) > 0:
        if len(times) < 2:
            raise InputVideoError(f"{path}: the video has no frame rate; pass --fps")
        rate = (len(times) - 1) / (times[-1] - times[0])
    deltas = np.diff(sorted(times))
    variable = len(deltas) > 1 and float(deltas.max() - deltas.min()) > 0.5 / float(rate)
    rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
    if rotation % 90:
        raise InputVideoError(f"{path}: rotation {rotation} degrees is not a multiple of 90")
    h, w = first.height, first.width
    if rotation in (90, 270):
        h, w = w, h
    return VideoInput(path, float(fps or rate), w, h, start, end, rotation=rotation, variable_rate=variable,
                      duration=duration, on_decode_error=on_decode_error)


def _duration(container, stream) -> float | None:
    offset = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return float((stream.start_time or 0) * stream.time_base) - offset + float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration is not None else None


def expand_inputs(specs: Sequence[str]) -> list[Path]:
    """Paths named by ``--input`` values: files, folders, globs (``'clips/*.mp4'``) and ``@list.txt`` files.

    A folder of videos stands for the videos in it; a folder of images is one input.  Stems must be
    unique (they name the outputs).
    """
    paths: list[Path] = []
    for spec in specs:
        if spec.startswith("@"):
            listed = Path(spec[1:])
            if not listed.is_file():
                raise InputVideoError(f"{listed}: list file not found")
            lines = [ln.strip() for ln in listed.read_text().splitlines()]
            paths.extend(expand_inputs([ln for ln in lines if ln and not ln.startswith("#")]))
        elif any(c in spec for c in "*?["):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise InputVideoError(f"--input {spec!r}: the pattern matches nothing")
            paths.extend(Path(m) for m in matches)
        else:
            p = Path(spec)
            videos = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS) if p.is_dir() else []
            paths.extend(videos or [p])
    stems: dict[str, Path] = {}
    for p in paths:
        stem = p.stem if p.suffix else p.name
        if stem in stems and stems[stem] != p:
            raise InputVideoError(f"inputs {stems[stem]} and {p} would write the same outputs ({stem}.*)")
        stems[stem] = p
    return list(dict.fromkeys(paths))
