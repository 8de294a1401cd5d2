"""Seeded inputs for the JHMDB/UCF101-24 evaluator tests and for recording the reference numbers.

Every case is a ground truth (a dict in the pickle format, or the shared ``JHMDB-GT.pkl``), a split, a
detection CSV and a tube JSON.  ``write_case`` writes the files; the same files are fed to our evaluator
(tests) and to MOC-Detector's ``frameAP`` / ``videoAP`` (``benchmarks/jhmdb_moc_reference.py``), whose
numbers are stored under ``tests/fixtures/jhmdb_eval/``.  Only numbers are stored; the inputs are
regenerated here from the seeds, so changing this file means re-recording the fixtures.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqformer.data.jhmdb_format import (
    JhmdbGroundTruth,
    groundtruth_from_dict,
    read_groundtruth_pickle,
    write_groundtruth_pickle,
)

SHARED_JHMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "jhmdb" / "JHMDB-GT.pkl"
HEADER = "video,frame,x1,y1,x2,y2,label,score"


def _tube(start: int, end: int, box) -> np.ndarray:
    frames = np.arange(start, end + 1, dtype=np.float32)
    boxes = np.broadcast_to(np.asarray(box, dtype=np.float32), (len(frames), 4))
    return np.concatenate([frames[:, None], boxes], axis=1)


def _tube_json(video: str, label: int, score: float, start: int, end: int, box) -> dict:
    return {"video": video, "label": label, "score": score,
            "boxes": [[f, *map(float, box)] for f in range(start, end + 1)]}


# ------------------------------------------------------------------------------------------- hand cases

L, R = (20, 20, 59, 99), (100, 20, 139, 99)  # 40 x 80 boxes, no overlap
A_BOX = (10, 10, 49, 49)  # 40 x 40 = 1600 px
B_BOX = (30, 10, 69, 49)  # overlaps A_BOX: IoU 800 / 2400


def hand_groundtruth() -> dict:
    """4 labels (the 4th never has ground truth), 2 splits, UCF-like tubes starting/ending inside videos."""
    labels = ["alpha", "beta", "gamma", "delta"]
    tubes = {
        "alpha/f1": {0: [_tube(1, 10, A_BOX), _tube(3, 8, B_BOX)]},
        "alpha/f2": {0: [_tube(1, 5, A_BOX)]},
        "beta/f3": {1: [_tube(2, 9, (0, 0, 9, 9))]},
        "alpha/partial": {0: [_tube(5, 24, L)]},
        "alpha/exact": {0: [_tube(1, 20, L)]},
        "alpha/exact75": {0: [_tube(1, 20, L)]},
        "alpha/two_actors": {0: [_tube(1, 20, L), _tube(10, 30, R)]},
        "beta/nms_chain": {1: [_tube(1, 20, L)]},
        "beta/nms_exact": {1: [_tube(1, 4, (0, 0, 9, 9))]},
        "beta/nms_exact_mixed": {1: [_tube(1, 4, (0, 0, 9, 9))]},
        "gamma/ties": {2: [_tube(1, 10, L), _tube(1, 10, R)]},
        "gamma/duplicate": {2: [_tube(3, 12, L)]},
        "gamma/train_only": {2: [_tube(1, 10, L)]},
    }
    nframes = {v: 30 for v in tubes}
    nframes.update({"alpha/f1": 10, "alpha/f2": 6, "beta/f3": 12, "beta/nms_exact": 4,
                    "beta/nms_exact_mixed": 12})
    videos = list(tubes)
    test1 = [v for v in videos if v != "gamma/train_only"]
    test2 = ["gamma/train_only", "alpha/f2", "alpha/exact"]
    return {"labels": labels, "gttubes": tubes, "nframes": nframes,
            "train_videos": [["gamma/train_only"], [v for v in videos if v not in test2]],
            "test_videos": [test1, test2], "resolution": {v: (120, 160) for v in videos}}


def hand_frame_rows(with_unlabelled_detections: bool = False) -> list[tuple]:
    """Rows (video, frame, x1, y1, x2, y2, label, score); see the comments for what each exercises."""
    rows = [
        ("alpha/f1", 1, *A_BOX, 1, 0.9),  # exact: TP
        ("alpha/f1", 1, *A_BOX, 1, 0.85),  # duplicate: GT taken -> FP
        ("alpha/f1", 3, *A_BOX, 1, 0.8),  # takes actor 1
        ("alpha/f1", 3, 18, 10, 57, 49, 1, 0.7),  # best: actor 1 (0.667, taken) -> actor 2 (0.538): TP
        ("alpha/f1", 4, 10, 10, 49, 27, 1, 0.75),  # IoU 18/40 = 0.45: FP
        ("alpha/f1", 5, 10, 10, 49, 29, 1, 0.65),  # IoU exactly 0.5: TP
        ("alpha/f1", 6, 10.25, 10, 49, 29, 1, 0.65),  # just below 0.5 (fractional pixels, float32): FP
        ("alpha/f1", 7, 30.5, 10.5, 69.25, 49.125, 1, 0.6),  # actor 2, fractional: TP
        ("alpha/f1", 8, 20, 10, 59, 49, 1, 0.62),  # IoU 0.6 with both actors: the first (actor 1) ...
        ("alpha/f1", 8, *A_BOX, 1, 0.61),  # ... so this one only has actor 2 (0.333): FP
        ("alpha/f2", 2, 0, 0, 9, 9, 1, 0.5),  # ties at 0.5 within a frame: FP first (file order) ...
        ("alpha/f2", 2, *A_BOX, 1, 0.5),  # ... then TP
        ("alpha/f2", 1, *A_BOX, 1, 0.5),  # tie across frames: frame 1 comes first in the layout
        ("alpha/f2", 6, *A_BOX, 1, 0.55),  # frame without ground truth: FP
        ("beta/f3", 5, 0, 0, 9, 9, 1, 0.95),  # wrong label on a frame with label-2 GT: FP for label 1
        ("beta/f3", 5, 0, 0, 9, 9, 2, 0.4),  # TP for label 2
        ("beta/f3", 5, 0.0, 0.0, 9.0, 9.0, 2, 0.4),  # duplicate with the same score: FP
        ("beta/f3", 12, 0, 0, 9, 9, 2, 0.3),  # after the tube ended: FP
        ("gamma/train_only", 1, *L, 3, 0.99),  # not a split-1 test video: skipped (counted)
        ("gamma/ties", 1, *L, 3, 0.2), ("gamma/ties", 1, *R, 3, 0.2), ("gamma/ties", 1, 0, 0, 5, 5, 3, 0.2),
    ]
    if with_unlabelled_detections:
        rows.append(("gamma/ties", 2, *L, 4, 0.5))  # label "delta" has no ground truth
    return rows


def hand_tubes(with_unlabelled_detections: bool = False) -> list[dict]:
    t = _tube_json
    tubes = [
        # partial temporal overlap: 10/24 of the GT's frames overlap, boxes identical -> 0.4167
        t("alpha/partial", 1, 0.9, 1, 14, L),
        # exact thresholds: temporal 10/20 = 0.5 in one video, 15/20 = 0.75 in another
        t("alpha/exact", 1, 0.8, 1, 10, L),
        t("alpha/exact", 1, 0.3, 11, 20, R),  # no overlap with the first (kept), wrong place: FP
        t("alpha/exact75", 1, 0.4, 1, 15, L),  # 15/20 = 0.75 exactly
        # two actors: each tube takes its actor, the third is suppressed by the first (IoU 0.6)
        t("alpha/two_actors", 1, 0.9, 1, 20, L),
        t("alpha/two_actors", 1, 0.8, 10, 30, R),
        t("alpha/two_actors", 1, 0.7, 1, 12, L),
        # NMS chain: X suppresses Y (IoU 0.35); Y would suppress Z (0.43) but is gone; X-Z 0.15: kept
        t("beta/nms_chain", 2, 0.9, 1, 20, L),
        t("beta/nms_chain", 2, 0.8, 1, 7, L),
        t("beta/nms_chain", 2, 0.7, 1, 3, L),
        # IoU exactly float32(0.3): float32 comparison keeps the second tube ...
        t("beta/nms_exact", 2, 0.9, 1, 4, (0, 0, 9, 9)),
        t("beta/nms_exact", 2, 0.8, 1, 4, (0, 0, 2, 9)),
        # ... but a non-overlapping tube in the same round makes it a float64 comparison: suppressed
        t("beta/nms_exact_mixed", 2, 0.9, 1, 4, (0, 0, 9, 9)),
        t("beta/nms_exact_mixed", 2, 0.8, 1, 4, (0, 0, 2, 9)),
        t("beta/nms_exact_mixed", 2, 0.7, 9, 12, (0, 0, 9, 9)),
        # equal scores: the later tube is picked first by NMS; disjoint boxes so both survive
        t("gamma/ties", 3, 0.5, 1, 10, (0, 0, 30, 30)),
        t("gamma/ties", 3, 0.5, 1, 10, L),
        t("gamma/ties", 3, 0.5, 2, 9, R),
        # duplicates: the copy (equal score, picked first) survives, the original is suppressed
        t("gamma/duplicate", 3, 0.6, 3, 12, L),
        t("gamma/duplicate", 3, 0.6, 3, 12, L),
        t("gamma/duplicate", 3, 0.55, 1, 30, R),
        t("alpha/f2", 3, 0.95, 1, 5, A_BOX),  # wrong label: FP for label 3
        t("gamma/train_only", 3, 0.99, 1, 10, L),  # not a split-1 test video: skipped
    ]
    if with_unlabelled_detections:
        tubes.append(t("gamma/ties", 4, 0.5, 1, 10, L))
    return tubes


# ----------------------------------------------------------------------------------------- random cases

def random_groundtruth(seed: int, num_videos: int = 16, labels: int = 5) -> dict:
    """A small UCF-like ground truth: several actors per video, tubes start and end inside videos."""
    rng = np.random.default_rng(seed)
    names = [f"class{i}" for i in range(labels)]
    gttubes, nframes, resolution = {}, {}, {}
    for i in range(num_videos):
        video = f"{names[i % labels]}/video_{i:02d}"
        n = int(rng.integers(12, 40))
        height, width = 120, 160
        nframes[video], resolution[video] = n, (height, width)
        gttubes[video] = {}
        for _ in range(int(rng.integers(1, 4))):
            label = int(rng.integers(labels)) if rng.random() < 0.3 else i % labels
            start = int(rng.integers(1, n // 2 + 1))
            end = int(rng.integers(start, n + 1))
            gttubes[video].setdefault(label, []).append(_smooth_tube(rng, start, end, height, width))
    videos = list(nframes)
    test = [v for j, v in enumerate(videos) if j % 3 != 0]
    train = [v for v in videos if v not in test]
    return {"labels": names, "gttubes": gttubes, "nframes": nframes, "train_videos": [train],
            "test_videos": [test], "resolution": resolution}


def _smooth_tube(rng, start: int, end: int, height: int, width: int) -> np.ndarray:
    n = end - start + 1
    w, h = rng.uniform(0.2, 0.5) * width, rng.uniform(0.3, 0.7) * height
    x = np.clip(rng.uniform(0, width - w) + np.cumsum(rng.normal(0, 1.5, n)), 0, width - w)
    y = np.clip(rng.uniform(0, height - h) + np.cumsum(rng.normal(0, 1.0, n)), 0, height - h)
    boxes = np.stack([x, y, x + w, y + h], axis=1).round(1)
    return np.concatenate([np.arange(start, end + 1)[:, None], boxes], axis=1).astype(np.float32)


def random_frame_rows(gt: JhmdbGroundTruth, split: int, seed: int, per_frame: float = 10.0,
                      train_videos: int = 2) -> list[tuple]:
    """Jittered copies of GT boxes (70% true label) plus uniform random boxes, ~``per_frame`` per frame."""
    rng = np.random.default_rng(seed)
    rows = []
    for video in gt.test_videos_of(split) + gt.train_videos_of(split)[:train_videos]:
        height, width = gt.resolution[video]
        n = gt.frames(video)
        for label, tubes in gt.tubes(video).items():
            for tube in tubes:
                for _ in range(2):
                    keep = rng.random(len(tube)) < 0.8
                    boxes = _jitter(rng, tube[keep, 1:5], 0.12)
                    labels = np.where(rng.random(keep.sum()) < 0.7, label, rng.integers(0, gt.num_labels, keep.sum()))
                    scores = np.clip(rng.normal(0.6, 0.2, keep.sum()), 0.001, 0.999)
                    rows += [(video, int(f), *b, int(c) + 1, s)
                             for f, b, c, s in zip(tube[keep, 0], boxes, labels, scores)]
        count = rng.poisson(max(per_frame - 2.0, 0.0), n)
        for f in range(1, n + 1):
            k = int(count[f - 1])
            xy = rng.uniform(0, 1, (k, 2)) * [width - 2, height - 2]
            wh = rng.uniform(0.1, 0.6, (k, 2)) * [width, height]
            boxes = np.concatenate([xy, np.minimum(xy + wh, [width - 1, height - 1])], axis=1)
            rows += [(video, f, *b, int(c) + 1, s) for b, c, s in
                     zip(boxes, rng.integers(0, gt.num_labels, k), rng.uniform(0, 0.7, k))]
    return rows


def random_tubes(gt: JhmdbGroundTruth, split: int, seed: int, random_per_video: int = 4,
                 train_videos: int = 2) -> list[dict]:
    """Per GT tube: 0-3 jittered copies cut or extended in time (75% true label, some exact duplicates);
    per video: random smooth tubes of random labels."""
    rng = np.random.default_rng(seed)
    tubes = []
    for video in gt.test_videos_of(split) + gt.train_videos_of(split)[:train_videos]:
        height, width = gt.resolution[video]
        n = gt.frames(video)
        for label, gt_tubes in gt.tubes(video).items():
            for tube in gt_tubes:
                for _ in range(int(rng.integers(0, 4))):
                    s0, e0 = int(tube[0, 0]), int(tube[-1, 0])
                    start = int(np.clip(s0 + rng.integers(-4, 5), 1, n))
                    end = int(np.clip(e0 + rng.integers(-4, 5), start, n))
                    source = tube[np.clip(np.arange(start, end + 1) - s0, 0, len(tube) - 1), 1:5]
                    boxes = _jitter(rng, source, 0.04)
                    c = label if rng.random() < 0.75 else int(rng.integers(gt.num_labels))
                    entry = _entry(video, c, float(rng.uniform(0.3, 1.0)), start, boxes)
                    tubes.append(entry)
                    if rng.random() < 0.1:
                        tubes.append(dict(entry))
        for _ in range(random_per_video):
            start = int(rng.integers(1, n + 1))
            end = int(rng.integers(start, n + 1))
            boxes = _smooth_tube(rng, start, end, height, width)[:, 1:5]
            tubes.append(_entry(video, int(rng.integers(gt.num_labels)), float(rng.uniform(0, 0.6)), start, boxes))
    return tubes


def _jitter(rng, boxes: np.ndarray, scale: float) -> np.ndarray:
    size = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    out = boxes + rng.normal(0, scale, boxes.shape) * size
    out[:, 2:4] = np.maximum(out[:, 2:4], out[:, 0:2])
    return out


def _entry(video: str, label: int, score: float, start: int, boxes: np.ndarray) -> dict:
    return {"video": video, "label": label + 1, "score": round(score, 7),
            "boxes": [[start + i, *(round(float(x), 3) for x in b)] for i, b in enumerate(boxes)]}


# ------------------------------------------------------------------------------------------ case files

def cases() -> dict[str, dict]:
    """name -> {"gt": dict | path, "split", "frames": rows, "tubes": list}; built lazily by ``build``."""
    return {
        "hand": {"gt": "hand", "split": 1, "seed": None},
        "hand_split2": {"gt": "hand", "split": 2, "seed": None},
        "hand_unlabelled_detected": {"gt": "hand", "split": 1, "seed": None, "unlabelled": True},
        "empty": {"gt": "hand", "split": 1, "seed": None, "empty": True},
        "random_small": {"gt": "random", "split": 1, "seed": 7},
        "jhmdb_split1": {"gt": "shared", "split": 1, "seed": 11, "unique_scores": True},
        "jhmdb_split3": {"gt": "shared", "split": 3, "seed": 13, "per_frame": 4.0},
    }


def build(name: str) -> tuple[JhmdbGroundTruth | Path, int, list[tuple], list[dict]]:
    spec = cases()[name]
    if spec["gt"] == "shared":
        gt_source = SHARED_JHMDB
        gt = read_groundtruth_pickle(SHARED_JHMDB)
    else:
        gt = gt_source = groundtruth_from_dict(hand_groundtruth() if spec["gt"] == "hand"
                                               else random_groundtruth(spec["seed"]), source=name)
    split = spec["split"]
    if spec.get("empty"):
        return gt_source, split, [], []
    if spec["seed"] is None:
        unlabelled = spec.get("unlabelled", False)
        return gt_source, split, hand_frame_rows(unlabelled), hand_tubes(unlabelled)
    rows = random_frame_rows(gt, split, spec["seed"], spec.get("per_frame", 10.0))
    tubes = random_tubes(gt, split, spec["seed"] + 1)
    if spec.get("unique_scores"):
        rows, tubes = _unique_scores(rows, tubes)
    return gt_source, split, rows, tubes


def _unique_scores(rows: list[tuple], tubes: list[dict]) -> tuple[list[tuple], list[dict]]:
    """Same score order, no ties even in float32 (0.1 + 1e-6 * rank): the reference's unstable default
    sort then gives the same numbers as the stable one."""
    rank = np.argsort(np.argsort([r[-1] for r in rows], kind="stable"), kind="stable")
    rows = [(*r[:-1], 0.1 + 1e-6 * int(k)) for r, k in zip(rows, rank)]
    rank = np.argsort(np.argsort([t["score"] for t in tubes], kind="stable"), kind="stable")
    tubes = [dict(t, score=round(0.1 + 1e-6 * int(k), 7)) for t, k in zip(tubes, rank)]
    return rows, tubes


def write_case(name: str, directory: str | Path) -> dict:
    """Write ``gt.pkl`` (unless the shared file is used), ``frames.csv`` and ``tubes.json``; return paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    gt, split, rows, tubes = build(name)
    if isinstance(gt, JhmdbGroundTruth):
        write_groundtruth_pickle(gt, directory / "gt.pkl")
        gt = directory / "gt.pkl"
    lines = [HEADER] + [f"{v},{f},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{c},{s:.7f}"
                        for v, f, x1, y1, x2, y2, c, s in rows]
    (directory / "frames.csv").write_text("\n".join(lines) + "\n")
    (directory / "tubes.json").write_text(json.dumps(tubes))
    return {"groundtruth": str(gt), "split": split, "detections": str(directory / "frames.csv"),
            "tubes": str(directory / "tubes.json")}
