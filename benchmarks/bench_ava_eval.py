"""AVA frame-mAP: our evaluator vs the official ActivityNet script itself, side by side, end to end.

Default case (~160k GT rows, ~300k detection rows), built deterministically (seed 0) from the shared
``ava_val_v2.1_labels1-14.csv`` (93,400 rows, 50,029 keyframes):

* ground truth: every shared row with a person id added (8 columns, as the official v2.1 files),
  plus ~66.6k rows sampled from it, moved to renamed videos (``<video>_b``) with boxes jittered by
  N(0, 0.01), so that keyframe and class statistics stay those of real AVA;
* detections: for ~85% of the GT rows a jittered copy (N(0, 0.03)) labelled with the true class
  (70%) or a random label-map class, plus random boxes on random GT keyframes, random classes, until
  ~300k rows; scores are uniform (higher for true-class copies), written with 6 decimals by
  ``write_detections_csv``; 2% of the rows sit on keyframes absent from the ground truth.

Both sides run as separate processes on the same files and are timed end to end (Python start-up,
imports, reading, evaluation, printing): the official ``get_ava_performance.py`` exactly as its
docstring shows (``python -O get_ava_performance.py -l -g -d``, only numpy-2 aliases added, see
``ava_references.py``) from ``--reference-dir`` (default ``$SEQFORMER_AVA_REFERENCES`` or
``/work/scratch``; the column is skipped when the checkout is absent), and ours as
``seqformer evaluate ava --no-plot``. Per-class APs must agree to 1e-9. ``--all-protocols`` also
runs PySlowFast's and MMAction2's evaluators on the case and checks those modes.

``--full``: the realistic full-validation detection file, 50,029 keyframes x 5 boxes x 60 classes =
15,008,700 rows (~700 MB), evaluated against the shared GT by our evaluator only (the official
script would take hours); reports time and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqformer.data.ava_format import read_labelmap, write_detections_csv

from ava_references import activitynet_command, default_root, parse_printed_metrics, run_reference, write_shim

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


_TIMED_CLI = """
import sys, time
import seqformer.evaluation.ava_eval as module
untimed = module.evaluate_ava

def timed(*args, **kwargs):  # the CLI imports evaluate_ava when it runs: it gets this wrapper
    start = time.perf_counter()
    result = untimed(*args, **kwargs)
    print("evaluate_ava_seconds", time.perf_counter() - start)
    return result

module.evaluate_ava = timed
from seqformer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_ours(gt: Path, det: Path, protocol: str = "activitynet") -> tuple[dict, float, float, float]:
    """``seqformer evaluate ava`` in a child process: (result, evaluate_ava seconds as it reports,
    process wall seconds incl. Python start-up and imports, child peak RSS in MiB)."""
    out = Path(tempfile.mkdtemp()) / "result.json"
    argv = [sys.executable, "-c", _TIMED_CLI, "evaluate", "ava", "--labelmap", str(LABELMAP), "--groundtruth", str(gt),
            "--detections", str(det), "--protocol", protocol, "--json", str(out), "--no-plot"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    printed = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    process_seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = float(printed.split("evaluate_ava_seconds")[1].split()[0])
    result = json.loads(out.read_text())
    result["per_class"] = {k: float("nan") if v is None else v for k, v in result["per_class"].items()}
    return result, seconds, process_seconds, max(peak_kib, before) / 1024


def run_official(reference_dir: Path, gt: Path, det: Path) -> tuple[dict, float]:
    """The official script end to end in its own process: (printed metrics, wall seconds)."""
    with tempfile.TemporaryDirectory() as shim:
        argv, env, cwd = activitynet_command(reference_dir, LABELMAP, gt, det, write_shim(Path(shim)))
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"official script failed:\n{proc.stderr[-2000:]}")
    return parse_printed_metrics(proc.stdout), seconds


def max_difference(reference: dict, ours: dict) -> float:
    worst = 0.0
    for name, ap in reference["per_class"].items():
        ap = float("nan") if ap is None else ap
        other = ours["per_class"][name]
        if np.isnan(ap) != np.isnan(other):
            raise SystemExit(f"class {name}: NaN mismatch ({ap} vs {other})")
        if not np.isnan(ap):
            worst = max(worst, abs(ap - other))
    for name, other in ours["per_class"].items():  # MMAction2 lists only the classes it scored
        if name not in reference["per_class"] and not np.isnan(other):
            raise SystemExit(f"class {name}: {other} but the reference does not score it")
    if worst > 1e-9:
        raise SystemExit(f"per-class AP differs by up to {worst:.3e}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="15M-row case, ours only")
    parser.add_argument("--workdir", default="/tmp/seqformer_bench_ava")
    parser.add_argument("--reference-dir", type=Path, default=default_root(),
                        help="folder holding the ActivityNet (and SlowFast, mmaction2) checkouts")
    parser.add_argument("--all-protocols", action="store_true",
                        help="also check --protocol pyslowfast / mmaction2 against those evaluators")
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
        print(f"ours: {seconds:.1f} s in evaluate_ava, {process_seconds:.1f} s whole process, "
              f"peak RSS {rss:.0f} MiB, mAP {result['mAP']:.6f}")
        return 0

    gt, det = build_default_case(work)
    n_gt, n_det = sum(1 for _ in open(gt)), sum(1 for _ in open(det))
    print(f"case: {n_gt} GT rows, {n_det} detection rows")
    ours, our_seconds, process_seconds, rss = run_ours(gt, det)
    print(f"ours (seqformer evaluate ava): {process_seconds:.2f} s end to end (Python start-up, imports, "
          f"reading, printing), {our_seconds:.2f} s in evaluate_ava, peak RSS {rss:.0f} MiB; mAP {ours['mAP']:.6f}")
    script = args.reference_dir / "ActivityNet" / "Evaluation" / "get_ava_performance.py"
    if not script.exists():
        print(f"official script not found at {script}: reference column skipped")
        return 0
    official, official_seconds = run_official(args.reference_dir, gt, det)
    worst = max_difference(official, ours)
    print(f"official get_ava_performance.py: {official_seconds:.2f} s end to end; mAP {official['mAP']:.6f}")
    print(f"speed-up: {official_seconds / process_seconds:.1f}x end to end, "
          f"{official_seconds / our_seconds:.1f}x against evaluate_ava alone; max per-class |diff| {worst:.1e}")
    if args.all_protocols:
        for protocol in ("pyslowfast", "mmaction2"):
            start = time.perf_counter()
            reference = run_reference(protocol, LABELMAP, gt, det, root=args.reference_dir)
            reference_seconds = time.perf_counter() - start
            mine, _, mine_seconds, _ = run_ours(gt, det, protocol)
            print(f"{protocol}: reference {reference_seconds:.1f} s, ours {mine_seconds:.2f} s end to end, "
                  f"mAP {mine['mAP']:.6f}, max per-class |diff| {max_difference(reference, mine):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
