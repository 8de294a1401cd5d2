"""JHMDB/UCF101-24 frame-mAP and video-mAP: MOC-Detector reference numbers, hand cases, input errors, CLI."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from seqformer.cli import main as cli_main
from seqformer.data.jhmdb_format import (
    JhmdbFormatError,
    groundtruth_from_dict,
    write_groundtruth_pickle,
)
from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb
from seqformer.evaluation.jhmdb_inputs import (
    JhmdbInputError,
    read_frame_detections,
    read_tubes,
)
from seqformer.evaluation.jhmdb_tubes import TubeSet, tube_iou, tube_nms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jhmdb_eval_cases as cases  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jhmdb_eval"
TOLERANCE = 1e-6
VIDEO_KEYS = ("0.2", "0.5", "0.75", "0.5:0.95")


def _compare(result: dict, reference: dict) -> float:
    labels = reference["labels"]
    diffs = [abs(result["frame_mAP"] - reference["frame"]["mAP"])]
    frame = reference["frame"]["per_class"]
    diffs += [abs(result["frame_per_class"][n] - a) for n, a in zip(labels, frame, strict=True)]
    for key in VIDEO_KEYS:
        ref = reference["video"][key]
        diffs.append(abs(result["video_mAP"][key] - ref["mAP"]))
        diffs += [abs(result["video_per_class"][key][n] - a) for n, a in zip(labels, ref["per_class"], strict=True)]
    return max(diffs)


@pytest.mark.parametrize("name", list(cases.cases()))
def test_equals_moc_reference(name, tmp_path):
    reference = json.loads((FIXTURES / f"{name}.json").read_text())
    assert reference["reference"].startswith("MCG-NJU/MOC-Detector@45c3fd0c5e4ca455e7e739f3ad80b2c91813df35")
    if cases.cases()[name]["gt"] == "shared" and not cases.SHARED_JHMDB.is_file():
        pytest.skip(f"shared JHMDB ground truth not found at {cases.SHARED_JHMDB}")
    files = cases.write_case(name, tmp_path)
    result = evaluate_jhmdb(files["groundtruth"], files["split"], files["detections"], files["tubes"])
    assert list(result["frame_per_class"]) == reference["labels"]
    assert _compare(result, reference) <= TOLERANCE


def test_split_must_exist(tmp_path):
    files = cases.write_case("hand", tmp_path)
    with pytest.raises(JhmdbFormatError, match=r"gt.pkl: split 3 does not exist \(the file has splits 1\.\.2\)"):
        evaluate_jhmdb(files["groundtruth"], 3, files["detections"])


def test_label_without_ground_truth_scores_zero_and_counts_in_the_mean(tmp_path):
    files = cases.write_case("hand_unlabelled_detected", tmp_path)
    result = evaluate_jhmdb(files["groundtruth"], 1, files["detections"], files["tubes"])
    assert result["frame_per_class"]["delta"] == 0.0 and result["video_per_class"]["0.5"]["delta"] == 0.0
    assert result["frame_mAP"] == pytest.approx(np.mean(list(result["frame_per_class"].values())), abs=1e-12)


# ------------------------------------------------------------------------------------ hand semantics

def _write(tmp_path, gt: dict, rows: list[str], tubes: list | None = None) -> dict:
    write_groundtruth_pickle(groundtruth_from_dict(gt), tmp_path / "gt.pkl")
    (tmp_path / "d.csv").write_text("\n".join([cases.HEADER] + rows) + "\n")
    (tmp_path / "t.json").write_text(json.dumps(tubes or []))
    return {"groundtruth": tmp_path / "gt.pkl", "detections": tmp_path / "d.csv", "tubes": tmp_path / "t.json"}


def _gt(tubes: dict, nframes: int = 10) -> dict:
    videos = list(tubes)
    return {"labels": ["a", "b"], "gttubes": tubes, "nframes": {v: nframes for v in videos},
            "train_videos": [[]], "test_videos": [videos], "resolution": {v: (100, 100) for v in videos}}


def test_trapezoidal_ap_from_recall_zero_precision_one(tmp_path):
    gt = _gt({"v": {0: [cases._tube(1, 2, (0, 0, 9, 9))]}})
    rows = ["v,1,0,0,9,9,1,0.9", "v,1,0,0,9,9,1,0.8", "v,2,0,0,9,9,1,0.7"]  # TP, FP (duplicate), TP
    result = evaluate_jhmdb(**_write(tmp_path, gt, rows))
    # points (r, p): (0, 1) (1/2, 1) (1/2, 1/2) (1, 2/3): 1/2 * 1 + 0 + 1/2 * (1/2 + 2/3) / 2; the VOC
    # envelope would give 1/2 + 1/2 * 2/3.
    assert result["frame_per_class"]["a"] == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2, abs=1e-7)
    assert result["frame_per_class"]["b"] == 0.0
    assert result["frame_mAP"] == pytest.approx(result["frame_per_class"]["a"] / 2, abs=1e-12)


def test_detection_takes_best_unmatched_ground_truth(tmp_path):
    gt = _gt({"v": {0: [cases._tube(1, 1, (10, 10, 49, 49)), cases._tube(1, 1, (30, 10, 69, 49))]}})
    # second row: IoU 0.667 with the first GT (taken by the first row), 0.538 with the second -> TP
    rows = ["v,1,10,10,49,49,1,0.9", "v,1,18,10,57,49,1,0.8"]
    assert evaluate_jhmdb(**_write(tmp_path, gt, rows))["frame_per_class"]["a"] == pytest.approx(1.0)


def test_inclusive_pixel_iou_at_the_threshold(tmp_path):
    gt = _gt({"v": {0: [cases._tube(1, 2, (0, 0, 9, 9))]}})
    # 10x5 inside 10x10 (inclusive pixels): IoU exactly 0.5 -> TP; 10x4.9: below -> FP
    rows = ["v,1,0,0,9,4,1,0.9", "v,2,0,0,9,3.9,1,0.8"]
    assert evaluate_jhmdb(**_write(tmp_path, gt, rows))["frame_per_class"]["a"] == pytest.approx(0.5)


def test_tube_iou_is_temporal_iou_times_mean_frame_iou():
    box = (20.0, 20.0, 59.0, 99.0)
    tubes = TubeSet.from_arrays([cases._tube(5, 24, box), cases._tube(1, 14, box), cases._tube(30, 31, box),
                                 cases._tube(1, 4, (0, 0, 9, 9)), cases._tube(1, 4, (0, 0, 2, 9))])
    iou, overlaps = tube_iou(tubes, [0, 0, 3], tubes, [1, 2, 4])
    assert iou.dtype == np.float32 and overlaps.tolist() == [True, False, True]
    assert iou[0] == np.float32(10) / np.float32(24) and iou[1] == 0
    assert iou[2] == np.float32(0.3)  # 30 / 100 inclusive pixels on each of 4 frames


def test_tube_nms_float32_and_float64_comparisons():
    a, b = cases._tube(1, 4, (0, 0, 9, 9)), cases._tube(1, 4, (0, 0, 2, 9))  # IoU float32(0.3)
    far = cases._tube(9, 12, (0, 0, 9, 9))
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    kept = tube_nms(TubeSet.from_arrays([a, b]), np.zeros(2), scores[:2])
    assert kept.tolist() == [0, 1]  # 0.3000000119 <= float32(0.3): kept
    kept = tube_nms(TubeSet.from_arrays([a, b, far]), np.zeros(3), scores)
    assert kept.tolist() == [0, 2]  # a Python 0.0 in the round: float64 comparison, 0.3000000119 > 0.3
    kept = tube_nms(TubeSet.from_arrays([a, a, far]), np.array([0, 0, 1]), np.full(3, 0.5, np.float32))
    assert kept.tolist() == [1, 2]  # equal scores: the later tube is picked, its duplicate suppressed


def test_file_order_across_frames_does_not_matter(tmp_path):
    gt, split, rows, tubes = cases.build("random_small")
    rows, tubes = cases._unique_scores(rows, tubes)
    write_groundtruth_pickle(gt, tmp_path / "gt.pkl")
    results = []
    for seed in (0, 1):
        random.Random(seed).shuffle(rows)
        random.Random(seed).shuffle(tubes)
        csv_path, json_path = tmp_path / f"d{seed}.csv", tmp_path / f"t{seed}.json"
        csv_path.write_text("\n".join([cases.HEADER] + [",".join(map(str, r)) for r in rows]) + "\n")
        json_path.write_text(json.dumps(tubes))
        results.append(evaluate_jhmdb(tmp_path / "gt.pkl", split, csv_path, json_path))
    assert results[0] == results[1] and results[0]["frame_mAP"] > 0.1


# ------------------------------------------------------------------------------------------ input errors

@pytest.mark.parametrize("text, message", [
    ("", ": empty file; expected the header"),
    ("video,frame,x1,y1,x2,y2,score,label\n", r":1: header must be video,frame,x1,y1,x2,y2,label,score"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,1\n", ":2: expected 8 columns, got 7"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,1,0.5\nv,1.5,0,0,9,9,1,0.5\n", ":3: frame '1.5' is not an integer"),
    (f"{cases.HEADER}\nv,1,0,0,9,abc,1,0.5\n", ":2: y2 'abc' is not a number"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,1,nan\n", ":2: score is NaN"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,1,0.5\nv,0,0,0,9,9,1,0.5\n", ":3: frame must be >= 1"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,0,0.5\n", ":2: label must be >= 1"),
    (f"{cases.HEADER}\nv,1,5,0,4,9,1,0.5\n", ":2: x2 < x1"),
    (f"{cases.HEADER}\nv,1,0,0,9,9,1,inf\n", ":2: non-finite score"),
])
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(JhmdbInputError, match=f"d.csv{message}"):
        read_frame_detections(path)


@pytest.mark.parametrize("row, message", [
    ("w,1,0,0,9,9,1,0.5", ":3: video 'w' is not in"),
    ("v,11,0,0,9,9,1,0.5", ":3: frame 11 beyond the 10 frames of 'v'"),
    ("v,1,0,0,9,9,3,0.5", r":3: label 3 outside 1\.\.2"),
])
def test_csv_rows_checked_against_ground_truth(tmp_path, row, message):
    files = _write(tmp_path, _gt({"v": {0: [cases._tube(1, 2, (0, 0, 9, 9))]}}), ["v,1,0,0,9,9,1,0.5", row])
    with pytest.raises(JhmdbInputError, match=f"d.csv{message}"):
        evaluate_jhmdb(files["groundtruth"], 1, files["detections"])


def _tube_entry(**change):
    entry = {"video": "v", "label": 1, "score": 0.5, "boxes": [[1, 0, 0, 9, 9], [2, 0, 0, 9, 9]]}
    entry.update(change)
    return entry


@pytest.mark.parametrize("entries, message", [
    ('[{"video": "v",\n "label": 1,,}]', r"t.json:2:13: invalid JSON"),
    ('{"video": "v"}', "expected a JSON list of tubes"),
    ([_tube_entry(), {"video": "v", "label": 1}], r"entry 1: missing key\(s\) score, boxes"),
    ([_tube_entry(label=True)], r"entry 0 \(video 'v'\): label must be an integer >= 1"),
    ([_tube_entry(score="high")], "score must be a finite number"),
    ([_tube_entry(boxes=[[1, 0, 0, 9, 9], [3, 0, 0, 9, 9]])], r"boxes\[1\] frames must be consecutive .*\(1 then 3\)"),
    ([_tube_entry(boxes=[[1, 0, 0, 9]])], r"boxes\[0\] must be \[frame, x1, y1, x2, y2\]"),
    ([_tube_entry(boxes=[[1.5, 0, 0, 9, 9]])], r"boxes\[0\] frame 1.5 is not an integer >= 1"),
    ([_tube_entry(boxes=[[1, 9, 0, 0, 9]])], r"boxes\[0\] has x2 < x1 or y2 < y1"),
    ([_tube_entry(boxes=[])], "boxes must be a non-empty list"),
    ('[{"video": "v", "label": 1, "score": 1, "boxes": [[1, 0, 0, NaN, 9]]}]', r"boxes\[0\] has a non-finite value"),
    ([_tube_entry(boxes=[[1, 0, 0, 9, 9], [2, 0, True, 9, 9]])], r"boxes\[1\] value must be a finite number, got True"),
])
def test_tube_json_errors_name_the_entry(tmp_path, entries, message):
    path = tmp_path / "t.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    with pytest.raises(JhmdbInputError, match=message):
        read_tubes(path)


@pytest.mark.parametrize("entry, message", [
    (_tube_entry(video="w"), r"entry 0 \(video 'w'\): video is not in"),
    (_tube_entry(label=3), r"entry 0 \(video 'v'\): label 3 outside 1\.\.2"),
    (_tube_entry(boxes=[[10, 0, 0, 9, 9], [11, 0, 0, 9, 9]]), "frame 11 beyond the 10 frames"),
])
def test_tubes_checked_against_ground_truth(tmp_path, entry, message):
    files = _write(tmp_path, _gt({"v": {0: [cases._tube(1, 2, (0, 0, 9, 9))]}}), [], [entry])
    with pytest.raises(JhmdbInputError, match=message):
        evaluate_jhmdb(files["groundtruth"], 1, files["detections"], files["tubes"])


# ------------------------------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("dataset, title", [("jhmdb", "JHMDB-21"), ("ucf24", "UCF101-24")])
def test_cli_prints_tables_and_writes_json(tmp_path, capsys, dataset, title):
    files = cases.write_case("hand", tmp_path)
    out = tmp_path / "res" / "metrics.json"
    args = ["evaluate", dataset, "--groundtruth", files["groundtruth"], "--split", "1",
            "--detections", files["detections"], "--tubes", files["tubes"], "--json", str(out)]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    expected = evaluate_jhmdb(files["groundtruth"], 1, files["detections"], files["tubes"])
    assert written == json.loads(json.dumps(expected))
    assert list(written)[:4] == ["frame_mAP", "frame_per_class", "video_mAP", "video_per_class"]
    assert printed.startswith(f"{title}, split 1")
    mean_line = next(line for line in printed.splitlines() if line.startswith("mAP"))
    assert [float(x) for x in mean_line.split()[1:]] == pytest.approx(
        [expected["frame_mAP"]] + [expected["video_mAP"][k] for k in VIDEO_KEYS], abs=5e-5)
    assert "1 skipped (videos outside the split's test list)" in printed


def test_cli_without_tubes_reports_frame_map_only(tmp_path, capsys):
    files = cases.write_case("hand", tmp_path)
    out = tmp_path / "m.json"
    assert cli_main(["evaluate", "jhmdb", "--groundtruth", files["groundtruth"], "--detections",
                     files["detections"], "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert "video_mAP" not in written and "tubes" not in written["counts"]
    assert "video@" not in capsys.readouterr().out
