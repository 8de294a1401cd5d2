"""Run MOC-Detector's own frameAP / videoAP / videpAP_050_095 on the JHMDB evaluator's cases.

Records the numbers stored in ``tests/fixtures/jhmdb_eval/`` (and times the reference for
``bench_jhmdb_eval.py``).  MOC-Detector is not part of this project: check it out outside the
repository at commit ``45c3fd0c5e4ca455e7e739f3ad80b2c91813df35`` and apply the one numpy-2 fix --
in ``src/ACT_utils/ACT_utils.py`` ``iou3dt``, ``int(np.where(b[:, 0] == t)[0])`` becomes
``int(np.where(b[:, 0] == t)[0][0])`` (4 places; numpy >= 2.3 refuses ``int()`` of a 1-element array)::

    python benchmarks/jhmdb_moc_reference.py --moc-src /path/to/MOC-Detector/src [--cases hand ...]

The case files (tests/jhmdb_eval_cases.py) are converted into what MOC's functions read --
``frame_detections.pkl`` (float32 array [video index, frame, label0, score, x1, y1, x2, y2], rows by
test-video position then frame, file order within) and ``<video>_tubes.pkl``
(``{label0: [[float32 (n, 5) tube, np.float32 score], ...]}`` in file order) -- and the functions of
``src/ACT.py`` are called unchanged.  Adapters, no edit of MOC files:

* ``datasets.init_dataset.get_dataset`` returns a class that loads the GT pickle as MOC's BaseDataset
  does (``pickle.load(encoding='iso-8859-1')``, attributes ``labels`` and ``_<key>``) without its
  training index and augmentation settings (they need torch + cv2 and the evaluation does not use them);
* ``progress.bar`` is stubbed (used only by MOC's detection loader / tube builder, not called here);
* ``pr_to_ap`` is wrapped to record the per-class APs (called once per label, in label order);
* ``np.argsort`` in ACT.py / ACT_utils.py is forced to ``kind='stable'``: the default sort leaves the
  order of equal scores to the numpy build (SIMD sorts are not stable); each fixture also records the
  largest difference to a run with the default sort (0 for cases without ties).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import pickle
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

MOC_COMMIT = "45c3fd0c5e4ca455e7e739f3ad80b2c91813df35"
_GT_PATH = {"path": None}


def _import_moc(moc_src: str):
    sys.path.insert(0, moc_src)
    progress = types.ModuleType("progress")
    bar = types.ModuleType("progress.bar")
    bar.Bar = object
    progress.bar = bar
    sys.modules.setdefault("progress", progress)
    sys.modules.setdefault("progress.bar", bar)

    class PickleDataset:
        def __init__(self, opt, mode):
            with open(_GT_PATH["path"], "rb") as fid:
                pkl = pickle.load(fid, encoding="iso-8859-1")
            for k in pkl:
                setattr(self, ("_" if k != "labels" else "") + k, pkl[k])
            self.split = opt.split
            self.mode = mode

    datasets = types.ModuleType("datasets")
    init_dataset = types.ModuleType("datasets.init_dataset")
    init_dataset.get_dataset = lambda name: PickleDataset
    datasets.init_dataset = init_dataset
    sys.modules["datasets"] = datasets
    sys.modules["datasets.init_dataset"] = init_dataset
    import ACT  # noqa: E402
    return ACT, sys.modules["ACT_utils.ACT_utils"]


class _StableNumpy(types.ModuleType):
    def __init__(self):
        super().__init__("numpy")

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def argsort(a, *args, **kwargs):
        kwargs.setdefault("kind", "stable")
        return np.argsort(a, *args, **kwargs)


def convert_inputs(gt_path, split, frames_csv, tubes_json, inference_dir: Path, drop_labels=()):
    with open(gt_path, "rb") as f:
        gt = pickle.load(f, encoding="iso-8859-1")
    vlist = gt["test_videos"][split - 1]
    pos = {v: i for i, v in enumerate(vlist)}
    rows = []
    with open(frames_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r["video"] in pos and int(r["label"]) - 1 not in drop_labels:
                rows.append([pos[r["video"]], int(r["frame"]), int(r["label"]) - 1, float(r["score"]),
                             float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])])
    alldets = np.array(rows, dtype=np.float32).reshape(-1, 8)
    alldets = alldets[np.lexsort((alldets[:, 1], alldets[:, 0]))]
    inference_dir.mkdir(parents=True, exist_ok=True)
    with open(inference_dir / "frame_detections.pkl", "wb") as f:
        pickle.dump(alldets, f, protocol=4)
    res = {v: {il: [] for il in range(len(gt["labels"]))} for v in vlist}
    with open(tubes_json) as f:
        for t in json.load(f):
            if t["video"] in pos and t["label"] - 1 not in drop_labels:
                res[t["video"]][t["label"] - 1].append([np.array(t["boxes"], dtype=np.float32),
                                                         np.float32(t["score"])])
    for v in vlist:
        out = inference_dir / (v + "_tubes.pkl")
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as f:
            pickle.dump(res[v], f)
    return gt


def run_reference(ACT, ACT_utils, gt_path, split, frames_csv, tubes_json, stable=True, drop_labels=()):
    _GT_PATH["path"] = str(gt_path)
    ACT.np = _StableNumpy() if stable else np
    ACT_utils.np = ACT.np
    original_pr_to_ap, original_video_ap = ACT.pr_to_ap, ACT.videoAP
    recorded: list = []

    def pr_to_ap(pr):
        ap = original_pr_to_ap(pr)
        recorded.append(float(ap))
        return ap

    video_calls: list = []

    def video_ap(opt, print_info=True):
        del recorded[:]
        value = original_video_ap(opt, print_info)
        video_calls.append((opt.th, value, list(recorded)))
        return value

    ACT.pr_to_ap, ACT.videoAP = pr_to_ap, video_ap
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            gt = convert_inputs(gt_path, split, frames_csv, tubes_json, tmp / "inference", drop_labels)
            (tmp / "result").mkdir()
            opt = argparse.Namespace(th=0.5, redo=False, model_name="driver", dataset="hmdb",
                                     inference_dir=str(tmp / "inference"), split=split, K=7,
                                     root_dir=str(tmp), exp_id="driver")
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink):
                t0 = time.perf_counter()
                del recorded[:]
                frame_map = ACT.frameAP(opt, print_info=False)
                frame = {"mAP": float(frame_map) / 100, "per_class": [x for x in recorded]}
                t1 = time.perf_counter()
                video = {}
                for key, th in (("0.2", 0.2), ("0.5", 0.5), ("0.75", 0.75)):
                    opt.th = th
                    value = ACT.videoAP(opt, print_info=False)
                    video[key] = {"mAP": float(value) / 100, "per_class": list(video_calls[-1][2])}
                del video_calls[:]
                ACT.videpAP_050_095(opt)
                t2 = time.perf_counter()
            assert len(video_calls) == 10
            ap = 0
            for _, value, _ in video_calls:
                ap += value
            ap = ap / 10.0
            per_class = np.mean([c[2] for c in video_calls], axis=0)
            video["0.5:0.95"] = {"mAP": float(ap) / 100, "per_class": [float(x) for x in per_class],
                                 "thresholds": [float(c[0]) for c in video_calls]}
            timing = {"frameAP_s": t1 - t0, "videoAP_all_s": t2 - t1}
            return {"labels": list(gt["labels"]), "frame": frame, "video": video, "timing": timing}
    finally:
        ACT.pr_to_ap, ACT.videoAP = original_pr_to_ap, original_video_ap


def labels_without_gt(gt_path, split):
    with open(gt_path, "rb") as f:
        gt = pickle.load(f, encoding="iso-8859-1")
    present = {il for v in gt["test_videos"][split - 1] for il, tubes in gt["gttubes"][v].items() if tubes}
    return [il for il in range(len(gt["labels"])) if il not in present]


def _same(a, b):
    def flat(r):
        vals = [r["frame"]["mAP"]] + r["frame"]["per_class"]
        for k in ("0.2", "0.5", "0.75", "0.5:0.95"):
            vals += [r["video"][k]["mAP"]] + r["video"][k]["per_class"]
        return np.array(vals)
    return float(np.max(np.abs(flat(a) - flat(b))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moc-src", required=True, help="MOC-Detector src/ directory (patched as above)")
    parser.add_argument("--worktree", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--cases", nargs="*", default=None)
    parser.add_argument("--out", default=None,
                        help="fixtures directory (default: <worktree>/tests/fixtures/jhmdb_eval)")
    args = parser.parse_args()
    sys.path[:0] = [str(Path(args.worktree) / "src"), str(Path(args.worktree) / "tests")]
    import jhmdb_eval_cases as cases_module
    ACT, ACT_utils = _import_moc(args.moc_src)
    out_dir = Path(args.out or Path(args.worktree) / "tests" / "fixtures" / "jhmdb_eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.cases or list(cases_module.cases()):
        with tempfile.TemporaryDirectory() as tmp:
            files = cases_module.write_case(name, tmp)
            gt_path, split = files["groundtruth"], files["split"]
            call = (ACT, ACT_utils, gt_path, split, files["detections"], files["tubes"])
            note = None
            missing = labels_without_gt(gt_path, split)
            try:
                result = run_reference(*call)
            except ZeroDivisionError as exc:
                note = (f"the reference raised ZeroDivisionError ({exc}) on detections of label(s) "
                        f"{[m + 1 for m in missing]} that have no ground truth in the split; numbers from "
                        f"its run without those detections (labels are evaluated independently)")
                result = run_reference(*call, drop_labels=missing)
            unstable = run_reference(*call, stable=False, drop_labels=missing if note else ())
            fixture = {
                "reference": f"MCG-NJU/MOC-Detector@{MOC_COMMIT} src/ACT.py frameAP, videoAP, videpAP_050_095",
                "reference_patch": "src/ACT_utils/ACT_utils.py iou3dt: int(np.where(...)[0]) -> "
                                   "int(np.where(...)[0][0]) (numpy >= 2.3 refuses int() of a 1-element array)",
                "reference_sort": "np.argsort forced to kind='stable' in ACT.py and ACT_utils.py (tie order)",
                "numpy": np.__version__,
                "case": name, "split": split, "labels": result["labels"],
                "frame": result["frame"], "video": result["video"],
                "note": note,
                "max_diff_with_default_argsort": _same(result, unstable),
            }
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(fixture, indent=1) + "\n")
            print(f"{name}: frame mAP {result['frame']['mAP']:.6f}, video mAP "
                  + ", ".join(f"{k} {v['mAP']:.6f}" for k, v in result["video"].items())
                  + f"; default-argsort diff {fixture['max_diff_with_default_argsort']:.3g}; "
                  + f"time {result['timing']}; note={bool(note)}")


if __name__ == "__main__":
    main()
