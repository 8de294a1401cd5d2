"""Peak memory of ``seqformer predict vis`` on long videos: whole-video (original) vs linked clips.

Generates synthetic YouTube-VIS-format videos of several lengths at 360x640, then runs
``seqformer predict vis`` in a fresh subprocess per (length, mode) and reports the child's peak RSS.
With clips (``eval.max_frames_per_clip``) the peak should not grow with the video length; the
original whole-video path grows linearly.  The model is the tiny config with random weights
(memory, not accuracy, is measured); ``--config`` selects another (e.g. the R50 config, slowly).

Usage: python benchmarks/bench_long_video.py [--lengths 100 300] [--clip 32] [--overlap 8]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# runs the CLI in the child and prints the child's own peak RSS (KiB) last
CHILD = ("import resource, sys\nfrom seqformer.cli import main\nrc = main(sys.argv[1:])\n"
         "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--clip", type=int, default=32)
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument("--config", default=str(ROOT / "configs" / "ytvis" / "tiny_synth.yaml"))
    args = parser.parse_args()
    from seqformer.config import load_config
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.engine.task import get_task

    tmp = Path(tempfile.mkdtemp(prefix="seqformer_longvideo_"))
    overrides = ["data.val_short_side=360"]
    torch.manual_seed(0)
    torch.save({"model": get_task("vis").build_model(load_config(args.config)).state_dict()}, tmp / "w.pth")
    print("| frames | mode | peak RSS (GB) | time (s) |\n|---|---|---|---|")
    for length in args.lengths:
        data = tmp / f"v{length}"
        paths = generate_synth_vis(data, SynthVisConfig(num_train_videos=0, num_val_videos=1, num_frames=length, height=360, width=640))
        for mode, clip in (("linked clips", args.clip), ("whole video", 0)):
            cmd = [sys.executable, "-c", CHILD,
                   "predict", "vis", "--config", args.config, "--weights", str(tmp / "w.pth"),
                   "--images", str(paths["valid_images"]), "--annotations", str(paths["valid_ann"]),
                   "--out", str(tmp / "r.json"), "--device", "cpu", *overrides,
                   f"eval.max_frames_per_clip={clip}", f"eval.clip_overlap={args.overlap}"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            peak_kb = int(proc.stdout.strip().splitlines()[-1].split()[-1])
            results = json.loads((tmp / "r.json").read_text())
            assert all(len(r["segmentations"]) == length for r in results)
            print(f"| {length} | {mode} | {peak_kb / 1024**2:.2f} | {time.perf_counter() - t0:.1f} |")


if __name__ == "__main__":
    main()
