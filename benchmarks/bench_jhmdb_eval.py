"""JHMDB frame-mAP + video-mAP on the full split-1 test set: our evaluator, and MOC-Detector's side by side.

Case (seeded, ``tests/jhmdb_eval_cases.py`` on the shared ``JHMDB-GT.pkl``): the 268 test videos of
split 1 plus 2 training videos (skipped rows), ``--per-frame`` detections per frame (two 80%-frame
jittered copies of each GT tube, 70% with the true label, plus uniform random boxes of random labels),
and per video jittered copies of the GT tubes (cut/extended in time) plus ``--random-tubes`` random
tubes.  Our side is timed in-process (reading the files included) and as a whole
``seqformer evaluate jhmdb`` process; with ``--moc-src`` the reference runs on the same files through
``jhmdb_moc_reference.py`` (its own frameAP + 13 videoAP calls, as ``frameAP``, ``videoAP`` at 0.2 / 0.5
/ 0.75 and ``videpAP_050_095`` run them) and the largest per-class / mAP difference is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from seqformer.data.jhmdb_format import read_groundtruth_pickle  # noqa: E402
from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb  # noqa: E402

import jhmdb_eval_cases as cases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-frame", type=float, default=40.0)
    parser.add_argument("--random-tubes", type=int, default=30, help="random tubes per video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--moc-src", default=None, help="MOC-Detector src/ (see jhmdb_moc_reference.py)")
    args = parser.parse_args()
    if not cases.SHARED_JHMDB.is_file():
        sys.exit(f"shared JHMDB ground truth not found at {cases.SHARED_JHMDB}")
    gt = read_groundtruth_pickle(cases.SHARED_JHMDB)
    rows = cases.random_frame_rows(gt, 1, seed=0, per_frame=args.per_frame)
    tubes = cases.random_tubes(gt, 1, seed=1, random_per_video=args.random_tubes)
    with tempfile.TemporaryDirectory() as tmp:
        det_path, tube_path = Path(tmp) / "frames.csv", Path(tmp) / "tubes.json"
        det_path.write_text("\n".join([cases.HEADER] + [f"{v},{f},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{c},{s:.7f}"
                                                        for v, f, x1, y1, x2, y2, c, s in rows]) + "\n")
        tube_path.write_text(json.dumps(tubes))
        frames = sum(gt.frames(v) for v in gt.test_videos_of(1))
        print(f"split 1: {len(gt.test_videos_of(1))} test videos, {frames} frames; {len(rows)} detection rows "
              f"({len(rows) / frames:.1f} per test frame), {len(tubes)} tubes")
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ours = evaluate_jhmdb(cases.SHARED_JHMDB, 1, det_path, tube_path)
            times.append(time.perf_counter() - start)
        print(f"ours, in-process (read + frame-mAP + video-mAP): min {min(times):.2f} s, "
              f"max {max(times):.2f} s over {args.repeats}")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "seqformer.cli", "evaluate", "jhmdb", "--groundtruth",
                        str(cases.SHARED_JHMDB), "--detections", str(det_path), "--tubes", str(tube_path)],
                       check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        print(f"ours, whole `seqformer evaluate jhmdb` process: {time.perf_counter() - start:.2f} s")
        print(f"frame-mAP {ours['frame_mAP']:.6f}, video-mAP "
              + ", ".join(f"{k} {v:.6f}" for k, v in ours["video_mAP"].items()))
        if args.moc_src:
            import jhmdb_moc_reference as moc
            act, act_utils = moc._import_moc(args.moc_src)
            start = time.perf_counter()
            ref = moc.run_reference(act, act_utils, cases.SHARED_JHMDB, 1, det_path, tube_path)
            total = time.perf_counter() - start
            diff = max([abs(ours["frame_mAP"] - ref["frame"]["mAP"])]
                       + [abs(ours["frame_per_class"][n] - a) for n, a in zip(gt.labels, ref["frame"]["per_class"])]
                       + [abs(ours["video_mAP"][k] - r["mAP"]) for k, r in ref["video"].items()]
                       + [abs(ours["video_per_class"][k][n] - a) for k, r in ref["video"].items()
                          for n, a in zip(gt.labels, r["per_class"])])
            print(f"MOC reference: frameAP {ref['timing']['frameAP_s']:.2f} s, videoAP x13 "
                  f"{ref['timing']['videoAP_all_s']:.2f} s, with input conversion {total:.2f} s; "
                  f"ratio (reference functions / ours in-process) "
                  f"{(ref['timing']['frameAP_s'] + ref['timing']['videoAP_all_s']) / min(times):.1f}x; "
                  f"max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
