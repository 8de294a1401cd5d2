"""AVA frame-mAP: vectorised evaluator vs the official-style reference, side by side.

Default case (~160k GT rows, ~300k detection rows), built deterministically (seed 0) from the shared
``ava_val_v2.1_labels1-14.csv`` (93,400 rows, 50,029 keyframes):

* ground truth: every shared row with a person id added (8 columns, as the official v2.1 files),
  plus ~66.6k rows sampled from it, moved to renamed videos (``<video>_b``) with boxes jittered by
  N(0, 0.01), so that keyframe and class statistics stay those of real AVA;
* detections: for ~85% of the GT rows a jittered copy (N(0, 0.03)) labelled with the true class
  (70%) or a random label-map class, plus random boxes on random GT keyframes, random classes, until
  ~300k rows; scores are uniform (higher for true-class copies), written with 6 decimals by
  ``write_detections_csv``; 2% of the rows sit on keyframes absent from the ground truth.

Both evaluators run on the same files; per-class APs must agree to 1e-9. Wall times include
reading the files. Our side runs in a child process so its peak RSS is measured alone.

``--full``: the realistic full-validation detection file, 50,029 keyframes x 5 boxes x 60 classes =
15,008,700 rows (~700 MB), evaluated against the shared GT by our evaluator only (the reference
would take hours); reports time and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqformer.data.ava_format import read_labelmap, write_detections_csv

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "ava"
LABELMAP = SHARED / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
VAL_CSV = SHARED / "ava_val_v2.1_labels1-14.csv"


def _jitter(boxes: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    out = np.clip(boxes + rng.normal(0.0, sigma, boxes.shape), 0.0, 1.0)
    lo, hi = np.minimum(out[:, :2], out[:, 2:]), np.maximum(out[:, :2], out[:, 2:])
    return np.round(np.concatenate([lo, hi], axis=1), 3)


def build_default_case(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    val = pd.read_csv(VAL_CSV, header=None)
    val[7] = val.groupby([0, 1]).cumcount()  # a person id per row of each keyframe
    extra = val.sample(n=66_600, random_state=seed).copy()
    extra[0] = extra[0] + "_b"
    extra[[2, 3, 4, 5]] = _jitter(extra[[2, 3, 4, 5]].to_numpy(), 0.01, rng)
    gt = pd.concat([val, extra], ignore_index=True)
    gt_path = out_dir / "gt.csv"
    gt.to_csv(gt_path, header=False, index=False, float_format="%.3f")

    class_ids = np.array([c for c, _ in read_labelmap(LABELMAP)])
    copies = gt[rng.random(len(gt)) < 0.85]
    true_class = rng.random(len(copies)) < 0.7
    copy_cls = np.where(true_class, copies[6].to_numpy(), rng.choice(class_ids, len(copies)))
    copy_scores = np.where(true_class, 0.3 + 0.7 * rng.random(len(copies)), rng.random(len(copies)))
    keys = gt[[0, 1]].drop_duplicates().to_numpy()
    n_random = 300_000 - len(copies)
    picked = keys[rng.integers(0, len(keys), n_random)]
    off_gt = rng.random(n_random) < 0.02
    picked[off_gt, 0] = "nogt_video"
    xy = rng.uniform(0, 0.7, (n_random, 2))
    wh = rng.uniform(0.05, 0.3, (n_random, 2))
    random_boxes = np.round(np.concatenate([xy, np.minimum(xy + wh, 1.0)], axis=1), 3)
    det_path = out_dir / "det.csv"
    write_detections_csv(
        det_path,
        np.concatenate([copies[0].to_numpy(), picked[:, 0]]),
        np.concatenate([copies[1].to_numpy(), picked[:, 1].astype(np.int64)]),
        np.concatenate([_jitter(copies[[2, 3, 4, 5]].to_numpy(), 0.03, rng), random_boxes]),
        np.concatenate([copy_cls, rng.choice(class_ids, n_random)]),
        np.concatenate([copy_scores, rng.random(n_random)]),
    )
    return gt_path, det_path


def build_full_case(out_dir: Path, seed: int = 0) -> Path:
    """50,029 keyframes x 5 boxes x 60 classes, written in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    val = pd.read_csv(VAL_CSV, header=None)
    class_ids = np.array([c for c, _ in read_labelmap(LABELMAP)])
    first = val.drop_duplicates([0, 1])
    keys, boxes = first[[0, 1]].to_numpy(), first[[2, 3, 4, 5]].to_numpy()
    det_path = out_dir / "det_full.csv"
    with open(det_path, "w") as f:
        for chunk in np.array_split(np.arange(len(keys)), 20):
            n = len(chunk) * 5
            base = np.repeat(boxes[chunk], 5, axis=0)
            person_boxes = _jitter(base, 0.05, rng)
            rows = pd.DataFrame({
                "video": np.repeat(keys[chunk, 0], 5 * len(class_ids)),
                "second": [f"{s:04d}" for s in np.repeat(keys[chunk, 1].astype(int), 5 * len(class_ids))],
            })
            rep = np.repeat(person_boxes, len(class_ids), axis=0)
            for j, name in enumerate(("x1", "y1", "x2", "y2")):
                rows[name] = rep[:, j]
            rows["action"] = np.tile(class_ids, n)
            rows["score"] = rng.random(n * len(class_ids))
            rows.to_csv(f, header=False, index=False, float_format="%.3f")
    return det_path


def run_ours(gt: Path, det: Path) -> tuple[dict, float, float, float]:
    """Evaluate in a child process: (result, evaluate_ava seconds, process seconds incl. Python
    start-up and imports, child peak RSS in MiB)."""
    code = ("import json,sys,time;from seqformer.evaluation.ava_eval import evaluate_ava;"
            "t=time.perf_counter();r=evaluate_ava(*sys.argv[1:4]);"
            "print(json.dumps({'r':r,'t':time.perf_counter()-t}))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(LABELMAP), str(gt), str(det)],
                         check=True, capture_output=True, text=True).stdout
    process_seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    payload = json.loads(out)
    return payload["r"], payload["t"], process_seconds, max(peak_kib, before) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="15M-row case, ours only")
    parser.add_argument("--workdir", default="/tmp/seqformer_bench_ava")
    args = parser.parse_args()
    if not VAL_CSV.exists():
        print(f"shared AVA data not found at {SHARED}")
        return 1
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    if args.full:
        det = work / "det_full.csv"
        if not det.exists():
            t = time.perf_counter()
            build_full_case(work)
            print(f"built {det} in {time.perf_counter() - t:.1f} s")
        size_mb = os.path.getsize(det) / 1e6
        result, seconds, process_seconds, rss = run_ours(VAL_CSV, det)
        print(f"full case: 15,008,700 detection rows ({size_mb:.0f} MB), 93,400 GT rows")
        print(f"ours: {seconds:.1f} s in evaluate_ava, {process_seconds:.1f} s whole process, peak RSS {rss:.0f} MiB, mAP {result['mAP']:.6f}")
        return 0

    gt, det = build_default_case(work)
    n_gt, n_det = sum(1 for _ in open(gt)), sum(1 for _ in open(det))
    print(f"case: {n_gt} GT rows, {n_det} detection rows")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ava_reference import evaluate as evaluate_reference

    t = time.perf_counter()
    reference = evaluate_reference(str(LABELMAP), str(gt), str(det))
    ref_seconds = time.perf_counter() - t
    ours, our_seconds, process_seconds, rss = run_ours(gt, det)
    worst = 0.0
    for name, ap in reference["per_class"].items():
        other = ours["per_class"][name]
        if np.isnan(ap) != (other is None or np.isnan(other)):
            raise SystemExit(f"class {name}: NaN mismatch ({ap} vs {other})")
        if not np.isnan(ap):
            worst = max(worst, abs(ap - other))
    if worst > 1e-9 or abs(reference["mAP"] - ours["mAP"]) > 1e-9:
        raise SystemExit(f"per-class AP differs by up to {worst:.3e}")
    print(f"reference (official-style): {ref_seconds:.2f} s")
    print(f"ours (vectorised): {our_seconds:.2f} s in evaluate_ava, {process_seconds:.2f} s whole "
          f"process incl. Python start-up and imports, peak RSS {rss:.0f} MiB")
    print(f"speed-up: {ref_seconds / our_seconds:.1f}x (evaluate_ava), "
          f"{ref_seconds / process_seconds:.1f}x (whole process); mAP {ours['mAP']:.6f}; "
          f"max per-class |diff| {worst:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
