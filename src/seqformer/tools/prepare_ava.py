"""``seqformer prepare ava``: cut AVA-format videos and extract their frames at a fixed fps.

Default parameters reproduce the official recipe (``ffmpeg -ss 900 -t 901 -r 30``): frames of
900 s .. 1801 s at 30 fps, i.e. 27,030 frames per video, written as
``<out>/<video_id>/<video_id>_%06d.jpg`` numbered from 1, so keyframe second ``S`` is frame
index ``(S - 900) * 30``.  ``--start-second/--duration/--fps`` make it usable for custom datasets,
``--short-side`` stores smaller frames (decoding is then cheap at training time).

Resumable: each video is written into ``<out>/<video_id>.partial/`` and renamed when complete, so
an interrupted run redoes only the half-written video.  Frame selection is the same function
the on-the-fly PyAV reader uses (:func:`seqformer.data.video_reader.select_at_fps`).  At the end
``<out>/frames_index.json`` lists every finished video's frame count and resolution.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from seqformer.data.video_reader import (
    FrameReadError,
    FramesIndex,
    VideoInfo,
    find_videos,
    select_at_fps,
    to_rgb,
    write_frames_index,
)
from seqformer.errors import SeqFormerError

DONE_MARKER = "_frames_info.json"
STANDARD_PATTERN = "{video_id}/{video_id}_{frame:06d}.jpg"


@dataclass(frozen=True)
class ExtractJob:
    video_id: str
    video_path: Path
    out_root: Path
    pattern: str
    start_second: float
    duration: float
    fps: float
    short_side: int
    quality: int


class PrepareError(SeqFormerError, ValueError):
    """Options or earlier output of ``prepare ava`` that cannot be honoured; the message names them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", required=True, help="folder of raw videos named <video_id>.<ext>")
    parser.add_argument("--out", required=True, help="frames root (one sub-folder per video)")
    parser.add_argument("--csv", nargs="*", default=[],
                        help="official annotation CSVs; only their video ids are extracted (default: every video)")
    parser.add_argument("--start-second", type=float, default=900.0, help="cut start (AVA: 900)")
    parser.add_argument("--duration", type=float, default=901.0, help="cut length in seconds (AVA: 901)")
    parser.add_argument("--fps", type=float, default=30.0, help="output frame rate (AVA: 30)")
    parser.add_argument("--short-side", type=int, default=0, help="resize frames to this short side (0 = keep)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--frame-pattern", default=STANDARD_PATTERN,
                        help="frame path pattern; must start with '{video_id}/'; frame numbers are 1-based")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="parallel videos")


def run(args: argparse.Namespace) -> int:
    if not args.frame_pattern.startswith("{video_id}/"):
        raise PrepareError(f"--frame-pattern must start with '{{video_id}}/', got {args.frame_pattern!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos = find_videos(args.videos)
    wanted = _video_ids_from_csvs(args.csv) if args.csv else sorted(videos)
    absent = [v for v in wanted if v not in videos]
    jobs = [ExtractJob(v, videos[v], out, args.frame_pattern, args.start_second, args.duration, args.fps,
                       args.short_side, args.quality) for v in wanted if v in videos]
    for job in jobs:
        _check_same_settings(job)
    jobs = [job for job in jobs if not (out / job.video_id / DONE_MARKER).is_file()]
    print(f"{len(wanted)} videos: {len(wanted) - len(absent) - len(jobs)} already done, {len(jobs)} to extract, "
          f"{len(absent)} without a video file")
    failures = _run_jobs(jobs, args.workers)
    index = collect_index(out, args.fps, args.start_second)
    expected = int(round(args.duration * args.fps))
    short = {v: info.num_frames for v, info in index.videos.items() if v in set(wanted) and info.num_frames < expected}
    for v in absent:
        print(f"missing video file: {v} (no {v}.<ext> in {args.videos})")
    for v, message in sorted(failures.items()):
        print(f"failed: {v}: {message}")
    for v, n in sorted(short.items()):
        print(f"short video: {v} has {n} frames, expected {expected}")
    print(f"wrote {out / 'frames_index.json'} ({len(index.videos)} videos)")
    return 1 if absent or failures else 0


def _settings(job: ExtractJob) -> dict[str, float]:
    return {"start_second": job.start_second, "duration": job.duration, "fps": job.fps, "short_side": job.short_side}


def _check_same_settings(job: ExtractJob) -> None:
    """Resuming with other cut/fps/size settings would mix two timelines in one frames root."""
    marker = job.out_root / job.video_id / DONE_MARKER
    if marker.is_file():
        done = json.loads(marker.read_text()).get("settings")
        if done != _settings(job):
            raise PrepareError(f"{marker.parent} was extracted with {done}, not {_settings(job)}; "
                             f"use another --out or delete that folder")


def _video_ids_from_csvs(paths: list[str]) -> list[str]:
    from seqformer.data.ava_format import read_ava_csv

    ids: set[str] = set()
    for path in paths:
        ids.update(str(v) for v in np.unique(read_ava_csv(path).video_ids))
    return sorted(ids)


def _run_jobs(jobs: list[ExtractJob], workers: int) -> dict[str, str]:
    failures: dict[str, str] = {}
    bar = tqdm(total=len(jobs), unit="video", desc="extracting")
    if workers <= 1 or len(jobs) <= 1:
        results = map(extract_video, jobs)
        for video_id, error in results:
            _record(bar, failures, video_id, error)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for video_id, error in pool.map(extract_video, jobs):
                _record(bar, failures, video_id, error)
    bar.close()
    return failures


def _record(bar: tqdm, failures: dict[str, str], video_id: str, error: str | None) -> None:
    if error is not None:
        failures[video_id] = error
    bar.update(1)


def extract_video(job: ExtractJob) -> tuple[str, str | None]:
    """Write one video's frames atomically; returns ``(video_id, error message or None)``."""
    import av

    final = job.out_root / job.video_id
    partial = job.out_root / f"{job.video_id}.partial"
    if partial.exists():  # left by an interrupted run
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    relative = job.pattern[len("{video_id}/"):]
    count, out_hw = 0, None
    try:
        with av.open(str(job.video_path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            offset = container.start_time / 1_000_000 if container.start_time is not None else 0.0
            container.seek(max(0, int((job.start_second - 1.0 + offset) / stream.time_base)), stream=stream,
                           backward=True)
            timed = ((f.time - offset, f) for f in container.decode(stream) if f.time is not None)
            stop = int(round(job.duration * job.fps))
            for k, frame in select_at_fps(timed, job.start_second, job.fps, 0, stop):
                if out_hw is None:
                    out_hw = _output_size(frame.height, frame.width, job.short_side)
                rgb = to_rgb(frame, out_hw)
                Image.fromarray(rgb).save(partial / relative.format(video_id=job.video_id, frame=k + 1),
                                          quality=job.quality)
                count = k + 1
    except (av.FFmpegError, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        return job.video_id, f"{job.video_path}: {e}"
    if count == 0 or out_hw is None:
        shutil.rmtree(partial, ignore_errors=True)
        return job.video_id, f"{job.video_path}: no frames in [{job.start_second}, +{job.duration}) s"
    (partial / DONE_MARKER).write_text(json.dumps({"num_frames": count, "height": out_hw[0], "width": out_hw[1],
                                                   "settings": _settings(job)}))
    if final.exists():  # an unfinished folder without marker from elsewhere: replace it
        shutil.rmtree(final)
    partial.rename(final)
    return job.video_id, None


def _output_size(h: int, w: int, short_side: int) -> tuple[int, int]:
    if short_side <= 0:
        return h, w
    scale = short_side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def collect_index(out: Path, fps: float, start_second: float) -> FramesIndex:
    """Index of every finished video folder under ``out`` (written to ``frames_index.json``)."""
    videos: dict[str, VideoInfo] = {}
    for marker in sorted(out.glob(f"*/{DONE_MARKER}")):
        try:
            data = json.loads(marker.read_text())
            videos[marker.parent.name] = VideoInfo(int(data["num_frames"]), int(data["height"]), int(data["width"]))
        except (ValueError, KeyError, TypeError) as e:
            raise FrameReadError(f"{marker}: unreadable done-marker ({e!r}); delete the folder to redo it") from None
    index = FramesIndex(fps, start_second, videos)
    write_frames_index(out, index)
    return index
