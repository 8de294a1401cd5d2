"""Peak memory and speed of ``seqformer infer vis`` on long 720p videos: does memory grow with length?

Writes synthetic 720p H.264 videos of two lengths (default 1 and 10 minutes, 24 fps; moving shapes on a
gradient) with PyAV, then runs ``seqformer infer vis`` on each in a fresh process with the tiny config and
random weights, and prints wall time, timeline frames/s, source frames decoded/s and the peak RSS of
each run's process (its own, from ``os.wait4``) side by side.  ``--fps`` sets the rate inference runs at
(every pass still decodes every source frame); the rendered video is written at that rate, at 720p.

    PYTHONPATH=src python benchmarks/bench_infer_video.py --minutes 1 10 --fps 0.5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_video(path: Path, seconds: int, fps: int = 24, height: int = 720, width: int = 1280) -> None:
    import av

    if path.is_file():
        return
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], -1).astype(np.uint8)
    tmp = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        for k in range(seconds * fps):
            frame = background.copy()
            x = int((k * 7) % (width - 200))
            frame[200:400, x:x + 200] = (230, 40, 40)
            y = int(abs(((k * 5) % (2 * (height - 160))) - (height - 160)))
            frame[y:y + 160, 900:1060] = (40, 200, 60)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)


def run_infer(video: Path, out: Path, weights: Path, fps: float, short_side: int) -> dict:
    cmd = [sys.executable, "-m", "seqformer.cli", "infer", "vis", "--config", str(ROOT / "configs/ytvis/tiny_synth.yaml"),
           "--weights", str(weights), "--input", str(video), "--out", str(out), "--fps", str(fps),
           "--short-side", str(short_side), "--device", "cpu", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage: its peak RSS alone
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    entry = json.loads((out / f"{video.stem}_video.json").read_text())["videos"][0]
    return {"wall_s": wall, "frames": entry["length"], "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--fps", type=float, default=0.5, help="inference/render rate (source is 24 fps)")
    parser.add_argument("--short-side", type=int, default=128)
    parser.add_argument("--work", default="/tmp/seqformer_bench_infer")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from seqformer.config import load_config
    from seqformer.engine.task import get_task

    torch.manual_seed(0)
    weights = work / "tiny_random.pth"
    model = get_task("vis").build_model(load_config(ROOT / "configs/ytvis/tiny_synth.yaml"))
    torch.save({"model": model.state_dict()}, weights)
    print(f"torch threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}")
    print(f"{'video':>12} {'source frames':>13} {'timeline frames':>15} {'wall s':>8} {'timeline f/s':>12} "
          f"{'source f/s':>10} {'peak RSS MiB':>12}")
    for minutes in sorted(args.minutes):
        seconds = int(minutes * 60)
        video = work / f"synthetic_720p_{seconds}s.mp4"
        t = time.perf_counter()
        make_video(video, seconds)
        made = time.perf_counter() - t
        r = run_infer(video, work / f"out_{seconds}s", weights, args.fps, args.short_side)
        src = seconds * 24
        print(f"{minutes:>9g}min {src:>13} {r['frames']:>15} {r['wall_s']:>8.1f} {r['frames'] / r['wall_s']:>12.2f} "
              f"{2 * src / r['wall_s']:>10.1f} {r['peak_rss_mib']:>12.0f}  (video written in {made:.0f} s)")


if __name__ == "__main__":
    main()
