"""Inputs of the AVA evaluator's reference comparison (tests/test_ava_eval_references.py).

Hand cases (one per rule the protocols treat differently) are literal rows; small random cases and
large cases are built deterministically from seeds, the large ones from
../shared/data/ava/ava_val_v2.1_labels1-14.csv. The reference outputs live in
tests/fixtures/ava_eval/reference_aps.json: numbers produced by running the reference evaluators
themselves (benchmarks/ava_references.py) on these inputs. Regenerate them with

    python tests/ava_eval_cases.py --reference-root /work/scratch

where each reference checkout holds a ``COMMIT`` file with its commit hash (``git archive`` does not
keep it). Every case runs under each numpy sort dispatch level of this machine (see
:func:`argsort_fingerprint`): the references rank tied scores with ``np.argsort``, whose tie order
differs between AVX-512, AVX2 and baseline x86-64 builds, and so do their APs.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_VAL = ROOT.parent / "shared" / "data" / "ava" / "ava_val_v2.1_labels1-14.csv"
SHARED_LABELMAP = ROOT.parent / "shared" / "data" / "ava" / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
FIXTURE = ROOT / "tests" / "fixtures" / "ava_eval" / "reference_aps.json"
PROTOCOLS = ("activitynet", "pyslowfast", "mmaction2")

FULL, LEFT, RIGHT, SMALL = "0.0,0.0,1.0,1.0", "0.0,0.0,0.5,1.0", "0.5,0.0,1.0,1.0", "0.0,0.0,0.1,0.1"


def _cap_rows(tie_tail: bool) -> list[str]:
    # 48 FPs above a TP tied with a FP at 0.3; with tie_tail a late 0.9 FP evicts the smallest tuple
    rows = [f"v,0902,{SMALL},1,0.{i + 40}" for i in range(48)]
    rows += [f"v,0902,{LEFT},1,0.3", "v,0902,0.5,0.5,0.6,0.6,1,0.3"]
    return rows + ([f"v,0902,{SMALL},1,0.9"] if tie_tail else [])


HAND_CASES: dict[str, dict] = {
    "unknown_keyframe": dict(  # detections on keyframes absent from the GT file
        gt=[f"v,0902,{FULL},1"],
        det=[f"v,902,{FULL},1,0.9", f"w,0902,{FULL},1,0.95", f"v,0905,{FULL},1,0.97"]),
    "two_column_keyframe": dict(  # annotated keyframes without a box (official format since 2020)
        gt=[f"v,0902,{FULL},1", "v,0903", "v,904"],
        det=[f"v,0902,{FULL},1,0.9", f"v,0903,{FULL},1,0.95", f"v,0904,{LEFT},2,0.8", f"x,0001,{FULL},1,0.99"]),
    "non_evaluated_class_keyframe": dict(  # w: only a class outside the label map; u: only class 2
        gt=[f"v,0902,{FULL},1", f"w,0902,{FULL},7", f"u,0902,{LEFT},2"],
        det=[f"v,0902,{FULL},1,0.5", f"w,0902,{FULL},1,0.9", f"u,0902,{FULL},1,0.8", f"u,0902,{LEFT},2,0.7",
             f"z,0902,{FULL},1,0.95", f"w,0902,{FULL},7,0.6"]),
    "exclusions": dict(
        gt=[f"v,0902,{FULL},1", f"v,0903,{FULL},1", f"v,0904,{FULL},1"],
        det=[f"v,0902,{FULL},1,0.9", f"v,0903,{FULL},1,0.2", f"v,0903,{SMALL},1,0.95", f"v,0904,{FULL},1,0.3",
             f"w,0905,{FULL},1,0.99"],
        exclusions=["v,903", "w,0905"]),
    "cap_50": dict(  # the TP is the 51st detection of its keyframe
        gt=[f"v,0902,{FULL},1"],
        det=[f"v,0902,{SMALL},1,{0.5 + i / 100:.2f}" for i in range(50)] + [f"v,0902,{FULL},1,0.1"]),
    "not_in_labelmap_before_cap": dict(
        gt=[f"v,0902,{FULL},1"],
        det=[f"v,0902,{SMALL},7,0.{i + 10}" for i in range(60)] + [f"v,0902,{FULL},1,0.1"]),
    "cap_tie_with_eviction": dict(gt=[f"v,0902,{LEFT},1"], det=_cap_rows(tie_tail=True)),
    "cap_tie_without_eviction": dict(gt=[f"v,0902,{LEFT},1"], det=_cap_rows(tie_tail=False)),
    "degenerate_boxes": dict(  # x1 == x2 / y1 == y2
        gt=[f"v,0902,{FULL},1"],
        det=["v,0902,0.5,0.0,0.5,1.0,1,0.99", "v,0902,0.0,0.3,1.0,0.3,1,0.98", f"v,0902,{FULL},1,0.5"]),
    "inverted_box": dict(
        gt=[f"v,0902,{FULL},1"],
        det=["v,0902,0.6,0.0,0.4,1.0,1,0.99", f"v,0902,{FULL},1,0.5"]),
    "inverted_box_on_unscored_keyframe": dict(
        gt=[f"v,0902,{FULL},1"],
        det=["w,0902,0.6,0.0,0.4,1.0,1,0.99", f"v,0902,{FULL},1,0.5"]),
    "seven_column_detection": dict(  # no score: 1.0 in the readers that accept it
        gt=[f"v,0902,{LEFT},1", f"v,0902,{RIGHT},1"],
        det=[f"v,0902,{FULL},1", f"v,0902,{LEFT},1,0.5", f"v,0902,{RIGHT},1,0.7"]),
    "greedy_matching_and_envelope": dict(
        gt=[f"v,0902,{LEFT},1", f"v,0902,{RIGHT},1"],
        det=[f"v,0902,{LEFT},1,0.9", f"v,0902,{LEFT},1,0.8", f"v,0902,{RIGHT},1,0.7"]),
    "max_iou_tie_gt_order": dict(  # IoU 0.5 with both halves: the first GT in list order is taken
        gt=[f"v,0902,{RIGHT},1", f"v,0902,{LEFT},1"],
        det=[f"v,0902,{FULL},1,0.9", f"v,0902,{LEFT},1,0.8"]),
    "max_iou_tie_gt_person_ids": dict(
        gt=[f"v,0902,{LEFT},1,1", f"v,0902,{RIGHT},1,2"],
        det=[f"v,0902,{FULL},1,0.9", f"v,0902,{LEFT},1,0.8"]),
    "file_order_vs_score_order": dict(  # the lower-scored detection comes first in the file
        gt=[f"v,0902,{FULL},1"],
        det=["v,0902,0.0,0.0,0.9,1.0,1,0.3", f"v,0902,{FULL},1,0.9"]),
    "classes_without_detections_or_gt": dict(
        gt=[f"v,0902,{FULL},1", f"v,0902,{FULL},2"],
        det=[f"v,0902,{FULL},1,0.9", f"v,0902,{FULL},3,0.8"]),
    "tied_scores_in_one_class": dict(
        gt=[f"v,0902,{FULL},1", f"v,0902,{LEFT},1,4", f"w,0902,{RIGHT},1,2"],
        det=[f"v,0902,0.0,0.0,{0.6 + i / 100:.2f},1.0,1,0.5" for i in range(5)]
        + [f"w,0902,{FULL},1,0.5", f"v,0902,{LEFT},1,0.5"]),
    "float32_iou": dict(  # IoU 0.5 exactly in float64, just below in MMAction2's float32; and reverse
        gt=["a,0001,0.048,0.21,0.806,0.692,1", "b,0001,0.308,0.123,0.627,0.513,2"],
        det=["a,0001,0.016,0.159,0.98,0.917,1,0.9", "b,0001,0.242,0.138,0.572,0.661,2,0.9"]),
    "float32_score_tie": dict(  # distinct in float64, equal in float32
        gt=[f"v,0902,{FULL},1", f"w,0902,{FULL},1"],
        det=[f"v,0902,{FULL},1,0.5000000001", f"w,0902,{SMALL},1,0.5", f"w,0902,{FULL},1,0.2"]),
    "no_detections": dict(gt=[f"v,0902,{FULL},1"], det=[]),
}

LARGE_CASES = {
    # 6-decimal scores, detections grouped by keyframe as a predictor writes them
    "val_grouped": dict(seed=11, videos=8, decimals=6, shuffle=False, exclusions=False),
    # 2-decimal scores (ties everywhere, also at the 50 cap), shuffled rows, an exclusions file
    "val_shuffled_ties": dict(seed=12, videos=8, decimals=2, shuffle=True, exclusions=True),
}
# small random cases: few keyframes, many collisions (shared boxes, ties, NaN-free degenerate cases)
RANDOM_CASES = {f"random_q{quantum}_{seed}": dict(seed=seed, quantum=quantum)
                for quantum in (0.0, 0.001, 0.1) for seed in range(12)}
NOT_IN_LABELMAP = [2, 16, 18, 19, 21, 23, 25, 31, 32, 33, 35, 39, 40, 42, 44, 50, 53, 55, 71, 75]


def write_labelmap(path: Path, classes=(1, 2, 3)) -> Path:
    path.write_text("".join(f'item {{\n  name: "c{i}"\n  id: {i}\n}}\n' for i in classes))
    return path


def write_hand_case(name: str, folder: Path) -> tuple[Path, Path, Path, Path | None]:
    """(labelmap, groundtruth, detections, exclusions or None) of a hand case, written to ``folder``."""
    case = HAND_CASES[name]
    folder.mkdir(parents=True, exist_ok=True)
    labelmap = write_labelmap(folder / "labelmap.pbtxt")
    (folder / "gt.csv").write_text("".join(row + "\n" for row in case["gt"]))
    (folder / "det.csv").write_text("".join(row + "\n" for row in case["det"]))
    exclusions = None
    if case.get("exclusions"):
        exclusions = folder / "exclusions.csv"
        exclusions.write_text("".join(row + "\n" for row in case["exclusions"]))
    return labelmap, folder / "gt.csv", folder / "det.csv", exclusions


def write_random_case(name: str, folder: Path) -> tuple[Path, Path, Path, Path | None]:
    """A small random case; scores quantised to ``quantum`` (0: continuous) to make ties."""
    spec = RANDOM_CASES[name]
    rng = np.random.default_rng(spec["seed"])
    quantum = spec["quantum"]
    keys = [(f"vid{rng.integers(3)}", int(rng.integers(900, 905))) for _ in range(rng.integers(1, 10))]
    classes = sorted(rng.choice(np.arange(1, 9), size=rng.integers(1, 6), replace=False).tolist())

    def box() -> np.ndarray:
        xy = rng.uniform(0, 0.7, 2)
        return np.round(np.concatenate([xy, np.minimum(xy + rng.uniform(0.05, 0.4, 2), 1)]), 3)

    def action() -> int:  # mostly evaluated classes, some outside the label map
        return int(rng.choice(classes)) if rng.random() < 0.8 else int(rng.integers(1, 10))

    gt_boxes, gt, det = [], [], []
    for _ in range(rng.integers(0, 40)):
        k = keys[rng.integers(len(keys))]
        if rng.random() < 0.05:
            gt.append(f"{k[0]},{k[1]}")
            continue
        b = gt_boxes[rng.integers(len(gt_boxes))] if gt_boxes and rng.random() < 0.3 else box()
        gt_boxes.append(b)
        person = f",{rng.integers(0, 4)}" if rng.random() < 0.5 else ""
        gt.append(f"{k[0]},{k[1]},{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f},{action()}{person}")
    for _ in range(rng.integers(0, 300)):
        k = keys[rng.integers(len(keys))] if rng.random() > 0.1 else ("nogt", 901)
        if gt_boxes and rng.random() < 0.5:  # sorted after jitter: never inverted
            b = np.sort(np.clip(gt_boxes[rng.integers(len(gt_boxes))] + np.round(rng.normal(0, 0.03, 4), 3), 0, 1)
                        .reshape(2, 2), axis=0).ravel()
        else:
            b = box()
        score = np.round(rng.random() / quantum) * quantum if quantum else rng.random()
        det.append(f"{k[0]},{k[1]},{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f},{action()},{float(score)!r}")
    folder.mkdir(parents=True, exist_ok=True)
    labelmap = write_labelmap(folder / "labelmap.pbtxt", classes)
    (folder / "gt.csv").write_text("".join(row + "\n" for row in gt))
    (folder / "det.csv").write_text("".join(row + "\n" for row in det))
    exclusions = None
    if rng.random() < 0.5:
        exclusions = folder / "exclusions.csv"
        exclusions.write_text("".join(f"{v},{s}\n" for v, s in keys[: rng.integers(0, 3)]))
    return labelmap, folder / "gt.csv", folder / "det.csv", exclusions


def _box_text(boxes: np.ndarray) -> list[str]:
    return [f"{a:.3f},{b:.3f},{c:.3f},{d:.3f}" for a, b, c, d in boxes]


def _jitter(boxes: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    out = np.clip(boxes + rng.normal(0.0, sigma, boxes.shape), 0.0, 1.0)
    return np.round(np.concatenate([np.minimum(out[:, :2], out[:, 2:]), np.maximum(out[:, :2], out[:, 2:])], 1), 3)


def write_large_case(name: str, folder: Path, val_csv: Path = SHARED_VAL,
                     labelmap: Path = SHARED_LABELMAP) -> tuple[Path, Path, Path, Path | None]:
    """A realistic case from the shared AVA val CSV: some videos' real keyframes and boxes, with
    person ids, duplicates, classes outside the label map, 2-column keyframes, keyframes known only
    through non-evaluated classes; detections as jittered copies and random boxes, crowded keyframes
    beyond the cap, degenerate boxes, rows on unknown keyframes and of non-evaluated classes."""
    spec = LARGE_CASES[name]
    rng = np.random.default_rng(spec["seed"])
    folder.mkdir(parents=True, exist_ok=True)
    val = pd.read_csv(val_csv, header=None, dtype={0: str})
    videos = rng.choice(np.unique(val[0]), spec["videos"], replace=False)
    val = val[val[0].isin(videos)].reset_index(drop=True)
    box_text = _box_text(val[[2, 3, 4, 5]].to_numpy())
    rows = [f"{v},{s:04d},{b},{c}" for v, s, b, c in zip(val[0], val[1], box_text, val[6])]
    keys = val[[0, 1]].drop_duplicates().to_numpy()
    key_of = {tuple(k): i for i, k in enumerate(map(tuple, keys))}
    with_pid = rng.random(len(keys)) < 0.6
    for i, (v, s) in enumerate(zip(val[0], val[1])):
        if with_pid[key_of[(v, s)]]:
            rows[i] += f",{rng.integers(0, 6)}"
    boxes = val[[2, 3, 4, 5]].to_numpy()
    extra = []  # (position to insert at, row)
    for i in np.flatnonzero(rng.random(len(rows)) < 0.02):  # duplicated GT rows
        extra.append((i, rows[i]))
    for i in np.flatnonzero(rng.random(len(rows)) < 0.03):  # classes outside the label map
        extra.append((i, f"{val[0][i]},{val[1][i]:04d},{_box_text(boxes[i:i + 1])[0]},{rng.choice(NOT_IN_LABELMAP)}"))
    unannotated = [(v, int(s) + 10_000) for v, s in keys[rng.choice(len(keys), 300, replace=False)]]
    for v, s in unannotated[:150]:  # 2-column keyframes
        extra.append((int(rng.integers(len(rows))), f"{v},{s}"))
    for v, s in unannotated[150:]:  # keyframes known only through non-evaluated classes
        position = int(rng.integers(len(rows)))
        box = _box_text(_jitter(boxes[:1], 0.2, rng))[0]
        extra.append((position, f"{v},{s},{box},{rng.choice(NOT_IN_LABELMAP)}"))
    for position, row in sorted(extra, key=lambda e: e[0], reverse=True):
        rows.insert(position, row)
    (folder / "gt.csv").write_text("\n".join(rows) + "\n")

    class_ids = np.array([int(line.split(":")[1]) for line in labelmap.read_text().splitlines()
                          if line.strip().startswith("id:")])
    copies = np.flatnonzero(rng.random(len(val)) < 0.85)
    true_class = rng.random(len(copies)) < 0.7
    det_keys = [keys[key_of[(val[0][i], val[1][i])]] for i in copies]
    det_boxes = [_jitter(boxes[copies], 0.03, rng)]
    det_cls = [np.where(true_class, val[6].to_numpy()[copies], rng.choice(class_ids, len(copies)))]
    det_score = [np.where(true_class, 0.3 + 0.7 * rng.random(len(copies)), rng.random(len(copies)))]
    all_keys = np.concatenate([keys, np.array(unannotated, dtype=object),
                               np.array([("zz_unknown", s) for s in range(900, 960)], dtype=object),
                               np.array([(v, int(s) + 20_000) for v, s in keys[:40]], dtype=object)])
    n_random = len(copies)
    picked = all_keys[rng.integers(0, len(all_keys), n_random)]
    crowded = keys[rng.choice(len(keys), max(1, len(keys) // 100), replace=False)]
    picked = np.concatenate([picked, np.repeat(crowded, rng.integers(55, 90, len(crowded)), axis=0)])
    det_keys += list(picked)
    xy = rng.uniform(0, 0.7, (len(picked), 2))
    random_boxes = np.round(np.concatenate([xy, np.minimum(xy + rng.uniform(0.05, 0.3, (len(picked), 2)), 1)], 1), 3)
    degenerate = rng.random(len(picked)) < 0.01
    random_boxes[degenerate, 2] = random_boxes[degenerate, 0]
    det_boxes.append(random_boxes)
    det_cls.append(np.where(rng.random(len(picked)) < 0.03, rng.choice(NOT_IN_LABELMAP, len(picked)),
                            rng.choice(class_ids, len(picked))))
    det_score.append(rng.random(len(picked)))
    det_keys = np.array(det_keys, dtype=object)
    det_boxes, det_cls, det_score = np.concatenate(det_boxes), np.concatenate(det_cls), np.concatenate(det_score)
    order = rng.permutation(len(det_keys)) if spec["shuffle"] else np.lexsort(
        (rng.random(len(det_keys)), det_keys[:, 1].astype(np.int64), det_keys[:, 0].astype(str)))
    decimals = spec["decimals"]
    (folder / "det.csv").write_text("".join(
        f"{det_keys[i, 0]},{int(det_keys[i, 1]):04d},{b},{det_cls[i]},{det_score[i]:.{decimals}f}\n"
        for i, b in zip(order, _box_text(det_boxes[order]))))

    exclusions = None
    if spec["exclusions"]:
        excluded = list(map(tuple, keys[rng.choice(len(keys), len(keys) // 100, replace=False)]))
        excluded += [("zz_unknown", 901), unannotated[0], unannotated[200]]
        exclusions = folder / "exclusions.csv"
        exclusions.write_text("".join(f"{v},{int(s)}\n" for v, s in excluded))
    return labelmap, folder / "gt.csv", folder / "det.csv", exclusions


def argsort_fingerprint() -> str:
    """Digest of ``np.argsort`` on tie-heavy float64/float32 arrays of many sizes.

    Equal digests mean equal tie orders, hence equal APs from the same inputs."""
    rng = np.random.default_rng(0)
    digest = hashlib.sha256()
    for n in (2, 3, 5, 8, 16, 17, 33, 64, 100, 129, 257, 1000, 5000, 40000):
        for dtype in (np.float64, np.float32):
            digest.update(np.argsort((np.round(rng.random(n) * 20) / 20).astype(dtype)).tobytes())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# numpy's run-time CPU dispatch levels on x86-64, from the most capable down (NPY_DISABLE_CPU_FEATURES)
DISPATCH_LEVELS = {"x86-64-v4 (AVX-512)": "", "x86-64-v3 (AVX2)": "X86_V4 AVX512_ICL AVX512_SPR",
                   "x86-64-v2 (baseline)": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}


def _reference_commits(root: Path) -> dict:
    info = {"activitynet": ("activitynet/ActivityNet", "ActivityNet", "Evaluation/get_ava_performance.py"),
            "pyslowfast": ("facebookresearch/SlowFast", "SlowFast", "slowfast/utils/ava_eval_helper.py"),
            "mmaction2": ("open-mmlab/mmaction2", "mmaction2", "mmaction/evaluation/functional/ava_utils.py")}
    out = {}
    for protocol, (repo, folder, path) in info.items():
        commit_file = root / folder / "COMMIT"
        commit = commit_file.read_text().strip() if commit_file.exists() else None
        out[protocol] = {"repository": repo, "commit": commit, "file": path}
    return out


def regenerate(reference_root: Path, work: Path) -> None:
    """Run the references on every case under every dispatch level and write FIXTURE."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ava_references import run_reference

    inputs = {name: write_hand_case(name, work / name) for name in HAND_CASES}
    inputs.update({name: write_random_case(name, work / name) for name in RANDOM_CASES})
    inputs.update({name: write_large_case(name, work / name) for name in LARGE_CASES})
    cases: dict = {name: {} for name in inputs}
    fingerprints = {}
    for level, disabled in DISPATCH_LEVELS.items():
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=disabled)
        fingerprint = subprocess.run([sys.executable, __file__, "--fingerprint"], env=env, check=True,
                                     capture_output=True, text=True).stdout.strip()
        fingerprints[level] = fingerprint
        for name, files in inputs.items():
            for protocol in PROTOCOLS:
                result = run_reference(protocol, *files, root=reference_root, env=env)
                cases[name].setdefault(protocol, {})[fingerprint] = result
                print(level, name, protocol, result.get("mAP", result.get("error")), flush=True)
    for name in cases:  # one entry when the tie order does not matter
        for protocol, by_sort in cases[name].items():
            distinct = {json.dumps(r, sort_keys=True) for r in by_sort.values()}
            cases[name][protocol] = by_sort[next(iter(by_sort))] if len(distinct) == 1 else {"by_argsort": by_sort}
    fixture = {
        "about": "Per-class APs printed by the reference AVA evaluators themselves on the inputs of "
                 "tests/ava_eval_cases.py (null = NaN). 'by_argsort' maps argsort_fingerprint() to the "
                 "result where np.argsort's tie order (CPU dispatch level) changes it.",
        "references": _reference_commits(reference_root),
        "numpy": np.__version__,
        "argsort_fingerprints": fingerprints,
        "shared_val_csv_sha256_16": file_digest(SHARED_VAL),
        "cases": cases,
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1, sort_keys=False) + "\n")


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="regenerate the AVA reference fixtures")
    parser.add_argument("--reference-root", type=Path, default=Path("/work/scratch"))
    parser.add_argument("--fingerprint", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fingerprint:
        print(argsort_fingerprint())
        return
    with tempfile.TemporaryDirectory() as tmp:
        regenerate(args.reference_root, Path(tmp))


if __name__ == "__main__":
    main()
