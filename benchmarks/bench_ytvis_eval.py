"""Side-by-side timing of the fast YouTube-VIS evaluator against the official-style reference.

Generates a seeded YouTube-VIS-like case in a temporary directory (default: 300 videos of 15-36
frames at 720p/480p/360p, 1-4 objects each with uncompressed-RLE ground truth, 50-100 results per
video with compressed-RLE frames, about 20 MB of ground truth and 190 MB of results), then runs
each evaluator end to end from the JSON paths in its own fresh subprocess, checks that the 12
numbers agree to 1e-9 and prints a markdown table with the times and the speed-up.

    .venv/bin/python benchmarks/bench_ytvis_eval.py [--videos 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils

FRAME_SIZES = ((720, 1280), (480, 640), (360, 640), (720, 1280))


def ellipse_counts(height: int, width: int, cx: float, cy: float, rx: float, ry: float) -> list[int]:
    """Uncompressed column-major RLE counts of a filled ellipse clipped to the frame."""
    x0, x1 = max(int(np.ceil(cx - rx)), 0), min(int(np.floor(cx + rx)), width - 1)
    xs = np.arange(x0, x1 + 1)
    half = ry * np.sqrt(np.clip(1 - ((xs - cx) / rx) ** 2, 0, 1))
    top = np.clip(np.round(cy - half), 0, height).astype(np.int64)
    bottom = np.clip(np.round(cy + half), 0, height).astype(np.int64)
    keep = bottom > top
    if not keep.any():
        return [height * width]
    starts, ends = xs[keep] * height + top[keep], xs[keep] * height + bottom[keep]
    touching = starts[1:] == ends[:-1]  # full columns: merge the runs
    starts = np.concatenate([starts[:1], starts[1:][~touching]])
    ends = np.concatenate([ends[:-1][~touching], ends[-1:]])
    bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, height * width
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    return np.diff(bounds).tolist()


def _track(rng: np.random.Generator, height: int, width: int, length: int) -> dict:
    radius = rng.uniform(15, 0.3 * height)
    return {"center": np.array([rng.uniform(0, width), rng.uniform(0, height)]),
            "velocity": rng.normal(0, 4, 2), "radii": np.array([radius * rng.uniform(0.6, 1.4), radius]),
            "first": int(rng.integers(0, length // 3)), "last": int(rng.integers(2 * length // 3, length))}


def _frames(track: dict, height: int, width: int, length: int) -> list[list[int] | None]:
    out = []
    for t in range(length):
        if track["first"] <= t <= track["last"]:
            cx, cy = track["center"] + track["velocity"] * t
            out.append(ellipse_counts(height, width, cx, cy, *track["radii"]))
        else:
            out.append(None)
    return out


def make_case(seed: int, num_videos: int = 300, max_results: int = 100, num_categories: int = 40) -> tuple[dict, list]:
    """Ground truth dict and results list; 60% of results follow a ground-truth track (noisy)."""
    rng = np.random.default_rng(seed)
    videos, annotations, results = [], [], []
    for vid in range(1, num_videos + 1):
        height, width = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
        length = int(rng.integers(15, 37))
        videos.append({"id": vid, "height": height, "width": width, "length": length,
                       "file_names": [f"{vid:05d}/{t:05d}.jpg" for t in range(length)]})
        tracks = []
        for _ in range(int(rng.integers(1, 5))):
            track = _track(rng, height, width, length)
            track["category"] = int(rng.integers(1, num_categories + 1))
            tracks.append(track)
            counts = _frames(track, height, width, length)
            annotations.append({
                "id": len(annotations) + 1, "video_id": vid, "category_id": track["category"],
                "iscrowd": int(rng.random() < 0.03), "height": height, "width": width,
                "segmentations": [c and {"counts": c, "size": [height, width]} for c in counts],
                "areas": [c and (sum(c[1::2]) or None) for c in counts]})
        for _ in range(int(rng.integers(max_results // 2, max_results + 1))):
            if rng.random() < 0.6:
                base = tracks[rng.integers(len(tracks))]
                track = dict(base, center=base["center"] + rng.normal(0, 0.1, 2) * base["radii"],
                             velocity=base["velocity"] + rng.normal(0, 0.5, 2),
                             radii=base["radii"] * rng.uniform(0.8, 1.2, 2),
                             first=max(base["first"] - int(rng.integers(0, 3)), 0),
                             last=base["last"] + int(rng.integers(0, 3)))
                category = base["category"] if rng.random() < 0.8 else int(rng.integers(1, num_categories + 1))
            else:
                track = dict(_track(rng, height, width, length), first=0, last=length - 1)
                category = int(rng.integers(1, num_categories + 1))
            segs = [c and {"size": [height, width],
                           "counts": mask_utils.frPyObjects({"counts": c, "size": [height, width]},
                                                            height, width)["counts"].decode("ascii")}
                    for c in _frames(track, height, width, length)]
            results.append({"video_id": vid, "score": float(np.round(rng.random(), 3)),
                            "category_id": category, "segmentations": segs})
    categories = [{"id": c, "name": f"class{c}", "supercategory": "object"} for c in range(1, num_categories + 1)]
    return {"videos": videos, "categories": categories, "annotations": annotations}, results


def _worker(which: str, gt_path: str, results_path: str) -> None:
    if which == "ours":
        from seqformer.evaluation.ytvis_eval import evaluate_ytvis as evaluate
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from ytvis_reference import reference_evaluate as evaluate
    start = time.perf_counter()
    stats = evaluate(gt_path, results_path)
    print(json.dumps({"seconds": time.perf_counter() - start, "stats": stats}))


def _run(which: str, gt_path: Path, results_path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", which, str(gt_path), str(results_path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--max-results", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each evaluator (best time reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=3, metavar=("WHICH", "GT", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, results_path = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt, results = make_case(args.seed, args.videos, args.max_results)
        gt_path.write_text(json.dumps(gt))
        results_path.write_text(json.dumps(results))
        del gt, results
        runs: dict[str, list[dict]] = {"reference": [], "ours": []}
        for _ in range(args.repeats):  # interleaved so load changes hit both alike
            for which in runs:
                runs[which].append(_run(which, gt_path, results_path))
        sizes = (gt_path.stat().st_size / 1e6, results_path.stat().st_size / 1e6)
    best = {w: min(r["seconds"] for r in rs) for w, rs in runs.items()}
    ref_stats, our_stats = runs["reference"][0]["stats"], runs["ours"][0]["stats"]
    max_diff = max(abs(ref_stats[k] - our_stats[k]) for k in ref_stats)
    print(f"case: {args.videos} videos, up to {args.max_results} results/video, seed {args.seed}, "
          f"ground truth {sizes[0]:.1f} MB, results {sizes[1]:.1f} MB, {args.repeats} run(s) each\n")
    print("| evaluator | best end-to-end time (s) | all runs (s) |")
    print("|---|---|---|")
    for which, label in (("reference", "official-style reference (pycocotools loops)"), ("ours", "seqformer evaluate vis")):
        all_runs = ", ".join(f"{r['seconds']:.2f}" for r in runs[which])
        print(f"| {label} | {best[which]:.2f} | {all_runs} |")
    print(f"\nspeed-up: {best['reference'] / best['ours']:.1f}x; max |difference| over the 12 numbers: {max_diff:.2e}")
    print("\n| " + " | ".join(our_stats) + " |\n|" + "---|" * len(our_stats))
    print("| " + " | ".join(f"{v:.4f}" for v in our_stats.values()) + " |")
    return 0 if max_diff <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
