"""AVA frame-mAP: hand-computed cases, official edge-case semantics, agreement with the reference."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from seqformer.evaluation.ava_eval import evaluate_ava

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from ava_reference import evaluate as evaluate_reference  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "ava"
FULL = "0.0,0.0,1.0,1.0"
LEFT = "0.0,0.0,0.5,1.0"
RIGHT = "0.5,0.0,1.0,1.0"


def _files(tmp_path: Path, gt: list[str], det: list[str], classes=(1, 2, 3), exclusions=None):
    labelmap = tmp_path / "lm.pbtxt"
    labelmap.write_text("".join(f'item {{\n  name: "c{i}"\n  id: {i}\n}}\n' for i in classes))
    (tmp_path / "gt.csv").write_text("".join(r + "\n" for r in gt))
    (tmp_path / "det.csv").write_text("".join(r + "\n" for r in det))
    ex = None
    if exclusions is not None:
        ex = tmp_path / "ex.csv"
        ex.write_text("".join(r + "\n" for r in exclusions))
    return str(labelmap), str(tmp_path / "gt.csv"), str(tmp_path / "det.csv"), ex and str(ex)


def _evaluate(tmp_path, gt, det, **kw) -> dict:
    files = _files(tmp_path, gt, det, **kw)
    result = evaluate_ava(*files)
    reference = evaluate_reference(*files)
    _assert_same(result, reference)
    return result


def _assert_same(a: dict, b: dict, tol: float = 1e-9) -> None:
    assert list(a["per_class"]) == list(b["per_class"])
    for name in a["per_class"]:
        x, y = a["per_class"][name], b["per_class"][name]
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol, (name, x, y)
    assert (math.isnan(a["mAP"]) and math.isnan(b["mAP"])) or abs(a["mAP"] - b["mAP"]) <= tol


def test_hand_computed_greedy_matching_and_envelope(tmp_path):
    # Two GT of class 1; detections 0.9 -> left (TP), 0.8 -> left again (FP, taken), 0.7 -> right (TP).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1, 2/3, 2/3 -> AP = 1/2 + 1/2 * 2/3.
    gt = [f"v,0902,{LEFT},1", f"v,0902,{RIGHT},1"]
    det = [f"v,0902,{LEFT},1,0.9", f"v,0902,{LEFT},1,0.8", f"v,0902,{RIGHT},1,0.7"]
    result = _evaluate(tmp_path, gt, det)
    assert result["per_class"]["c1"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    assert math.isnan(result["per_class"]["c2"]) and math.isnan(result["per_class"]["c3"])
    assert result["mAP"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)


def test_iou_exactly_half_is_a_match_and_areas_have_no_plus_one(tmp_path):
    # IoU([0,0,1,1], [0,0,0.5,1]) = 0.5 exactly: >= threshold -> TP (AP 1). A +1 area convention would differ.
    assert _evaluate(tmp_path, [f"v,0902,{FULL},1"], [f"v,0902,{LEFT},1,0.9"])["mAP"] == 1.0
    assert _evaluate(tmp_path, [f"v,0902,{FULL},1"], ["v,0902,0.0,0.0,0.499,1.0,1,0.9"])["mAP"] == 0.0


def test_detection_only_tries_its_max_iou_gt(tmp_path):
    # GT a = [0,0,1,1], b = [0,0,0.8,1]. Det1 = a (takes a). Det2 = [0,0,0.9,1]: IoU 0.9 with a (taken),
    # 0.888.. with b -> official TF matching makes it a FP rather than matching b. AP = 1/2.
    gt = [f"v,0902,{FULL},1", "v,0902,0.0,0.0,0.8,1.0,1"]
    det = [f"v,0902,{FULL},1,0.9", "v,0902,0.0,0.0,0.9,1.0,1,0.8"]
    assert _evaluate(tmp_path, gt, det)["per_class"]["c1"] == pytest.approx(0.5, abs=1e-12)


def test_no_detections_gives_zero_ap_and_no_gt_gives_nan(tmp_path):
    result = _evaluate(tmp_path, [f"v,0902,{FULL},1"], [f"v,0902,{FULL},2,0.9"])
    assert result["per_class"]["c1"] == 0.0
    assert math.isnan(result["per_class"]["c2"])  # detections but no GT: not scored
    assert result["mAP"] == 0.0


def test_detections_on_keyframes_without_gt_are_false_positives(tmp_path):
    # Official evaluator matches them against an empty GT: the 0.95 FP ranks first -> precision 1/2.
    gt = [f"v,0902,{FULL},1"]
    det = [f"v,0902,{FULL},1,0.9", f"w,0902,{FULL},1,0.95"]
    assert _evaluate(tmp_path, gt, det)["per_class"]["c1"] == pytest.approx(0.5, abs=1e-12)


def test_opt_in_ignores_keyframes_without_gt(tmp_path):
    # Keyframe w has GT of another class only (still annotated): its c1 detection stays a FP;
    # keyframe x has no GT at all and is dropped with the option.
    gt = [f"v,0902,{FULL},1", f"w,0902,{FULL},2"]
    det = [f"v,0902,{FULL},1,0.5", f"w,0902,{FULL},1,0.9", f"x,0902,{FULL},1,0.95"]
    files = _files(tmp_path, gt, det)
    official = evaluate_ava(*files)["per_class"]["c1"]
    subset = evaluate_ava(*files, ignore_keyframes_without_gt=True)["per_class"]["c1"]
    assert official == pytest.approx(1 / 3, abs=1e-12)  # FP 0.95, FP 0.9, TP 0.5
    assert subset == pytest.approx(1 / 2, abs=1e-12)  # FP 0.9, TP 0.5


def test_exclusions_drop_gt_and_detections(tmp_path):
    gt = [f"v,0902,{FULL},1", f"v,0903,{FULL},1"]
    det = [f"v,0902,{FULL},1,0.9", f"v,0903,{FULL},1,0.2", "v,0903,0.0,0.0,0.1,0.1,1,0.95"]
    with_ex = _evaluate(tmp_path, gt, det, exclusions=["v,903"])
    assert with_ex["per_class"]["c1"] == 1.0
    without = _evaluate(tmp_path, gt, det)
    # order 0.95 FP, 0.9 TP, 0.2 TP: precision 0, 1/2, 2/3 -> AP = 1/2 * 2/3 + 1/2 * 2/3
    assert without["per_class"]["c1"] == pytest.approx(2 / 3, abs=1e-12)


def test_cap_keeps_50_highest_scoring_whitelisted_detections(tmp_path):
    # 50 FPs scored 0.5..0.99 then the only TP at 0.1: it is the 51st, so the cap drops it (AP 0).
    fps = [f"v,0902,0.0,0.0,0.1,0.1,1,{0.5 + i / 100:.2f}" for i in range(50)]
    assert _evaluate(tmp_path, [f"v,0902,{FULL},1"], fps + [f"v,0902,{FULL},1,0.1"])["mAP"] == 0.0
    # Rows of classes outside the label map are dropped before the cap, so they do not count.
    others = [f"v,0902,0.0,0.0,0.1,0.1,7,0.{i + 10}" for i in range(60)]
    assert _evaluate(tmp_path, [f"v,0902,{FULL},1"], others + [f"v,0902,{FULL},1,0.1"])["mAP"] == 1.0


def test_cap_with_a_tie_at_the_boundary_follows_the_heap(tmp_path):
    # 48 high FPs, then two rows tied at 0.3 (the TP first in the file), then a 0.9 FP. The 0.9 row
    # evicts the heap minimum, i.e. the lexicographically smallest (score, action, y1, x1, y2, x2)
    # tuple: the TP (y1=x1=0) rather than the tied FP (y1=0.5). "Top 50, ties by file order" would
    # keep the TP at rank 50 (AP 1/50); the official reader gives AP 0.
    fps = [f"v,0902,0.0,0.0,0.1,0.1,1,0.{i + 40}" for i in range(48)]
    det = fps + [f"v,0902,{LEFT},1,0.3", "v,0902,0.5,0.5,0.6,0.6,1,0.3", "v,0902,0.0,0.0,0.1,0.1,1,0.9"]
    assert _evaluate(tmp_path, [f"v,0902,{LEFT},1"], det)["mAP"] == 0.0
    # Without the late 0.9 row nothing is evicted: 48 FPs, then the TP among two tied rows.
    result = _evaluate(tmp_path, [f"v,0902,{LEFT},1"], det[:-1])["mAP"]
    assert result in (pytest.approx(1 / 49), pytest.approx(1 / 50))


def test_invalid_detection_boxes_are_removed_after_the_cap(tmp_path):
    gt = [f"v,0902,{FULL},1"]
    det = ["v,0902,0.5,0.0,0.5,1.0,1,0.99", f"v,0902,{FULL},1,0.5"]  # zero-width box: removed, not a FP
    assert _evaluate(tmp_path, gt, det)["mAP"] == 1.0


def test_tied_scores_in_one_class_use_the_official_list_order(tmp_path):
    # Two equal-score detections of one GT: which one is the TP depends on the heap layout; both
    # implementations must agree (checked inside _evaluate) on several layouts.
    for n in range(2, 8):
        det = [f"v,0902,0.0,0.0,{0.6 + i / 100:.2f},1.0,1,0.5" for i in range(n)]
        det += [f"w,0902,{FULL},1,0.5", f"v,0902,{LEFT},1,0.5"]
        _evaluate(tmp_path, [f"v,0902,{FULL},1", f"v,0902,{LEFT},1,4", f"w,0902,{RIGHT},1,2"], det)


def _random_case(seed: int, quantum: float) -> tuple[list[str], list[str], list[int], list[str]]:
    rng = np.random.default_rng(seed)
    keys = [(f"vid{rng.integers(3)}", int(rng.integers(900, 905))) for _ in range(rng.integers(1, 10))]
    classes = sorted(rng.choice(np.arange(1, 9), size=rng.integers(1, 6), replace=False).tolist())

    def box() -> np.ndarray:
        xy = rng.uniform(0, 0.7, 2)
        return np.round(np.concatenate([xy, np.minimum(xy + rng.uniform(0.05, 0.4, 2), 1)]), 3)

    gt_boxes, gt, det = [], [], []
    for _ in range(rng.integers(0, 40)):
        k = keys[rng.integers(len(keys))]
        b = gt_boxes[rng.integers(len(gt_boxes))] if gt_boxes and rng.random() < 0.3 else box()
        gt_boxes.append(b)
        person = f",{rng.integers(0, 4)}" if rng.random() < 0.5 else ""
        gt.append(f"{k[0]},{k[1]},{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f},{rng.integers(1, 10)}{person}")
    for _ in range(rng.integers(0, 300)):
        k = keys[rng.integers(len(keys))] if rng.random() > 0.1 else ("nogt", 901)
        if gt_boxes and rng.random() < 0.5:
            b = np.clip(gt_boxes[rng.integers(len(gt_boxes))] + np.round(rng.normal(0, 0.03, 4), 3), 0, 1)
        else:
            b = box()
        score = np.round(rng.random() / quantum) * quantum if quantum else rng.random()
        det.append(f"{k[0]},{k[1]},{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f},{rng.integers(1, 10)},{float(score)!r}")
    exclusions = [f"{k[0]},{k[1]}" for k in keys[: rng.integers(0, 2)]]
    return gt, det, classes, exclusions


@pytest.mark.parametrize("quantum", [0.0, 0.001, 0.1])
def test_agrees_with_reference_on_random_cases(tmp_path, quantum):
    for seed in range(25):
        gt, det, classes, exclusions = _random_case(seed, quantum)
        _evaluate(tmp_path, gt, det, classes=classes, exclusions=exclusions)


def test_real_val_gt_against_jittered_copy(tmp_path):
    val = SHARED / "ava_val_v2.1_labels1-14.csv"
    labelmap = SHARED / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
    if not (val.exists() and labelmap.exists()):
        pytest.skip(f"shared AVA files not found under {SHARED}")
    rng = np.random.default_rng(0)
    rows = val.read_text().splitlines()[:4000]
    det = []
    for row in rows:
        f = row.split(",")
        box = np.clip(np.array(f[2:6], dtype=float) + rng.normal(0, 0.03, 4), 0, 1)
        det.append(",".join(f[:2] + [f"{v:.3f}" for v in box] + [f[6], f"{rng.random():.4f}"]))
    (tmp_path / "gt.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "det.csv").write_text("\n".join(det) + "\n")
    files = (str(labelmap), str(tmp_path / "gt.csv"), str(tmp_path / "det.csv"))
    result = evaluate_ava(*files)
    _assert_same(result, evaluate_reference(*files))
    assert len(result["per_class"]) == 60
    assert 0.3 < result["mAP"] < 1.0


def test_cli_writes_table_json_and_plot(tmp_path, capsys):
    from seqformer.tools.evaluate_ava import add_arguments, run

    files = _files(tmp_path, [f"v,0902,{FULL},1"], [f"v,0902,{FULL},1,0.9"])
    out = tmp_path / "res" / "ava.json"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--labelmap", files[0], "--groundtruth", files[1], "--detections", files[2],
                              "--json", str(out)])
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "c1" in printed and "mAP" in printed
    saved = json.loads(out.read_text())
    assert saved == {"mAP": 1.0, "per_class": {"c1": 1.0, "c2": None, "c3": None}}
    png = tmp_path / "res" / "ava_per_class_ap.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vectorised_cap_equals_heap_replay_on_boundary_ties():
    # The closed-form kept set used for keyframes with a score tie at the 50th place must equal
    # what the official capped heap keeps (compared as multisets of tuples).
    import heapq

    from seqformer.evaluation.ava_eval import _apply_heap_cap

    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(150):
        n, quantum = int(rng.integers(51, 200)), rng.choice([0.05, 0.1, 0.2])
        score = np.round(rng.random(n) / quantum) * quantum
        cls, box = rng.integers(1, 4, n), np.round(rng.random((n, 4)), 1)
        order = np.argsort(-score, kind="stable")
        if score[order][49] != score[order][50]:
            continue
        keep = np.arange(n) < 50
        det = {"key": np.zeros(n, np.int64), "cls": cls, "score": score, "box": box}
        _apply_heap_cap(keep, order, np.zeros(n, np.int64), score[order], np.array([0]), np.array([0]), det)
        heap: list[tuple] = []
        for r in range(n):
            entry = (score[r], cls[r], *box[r])
            if len(heap) < 50:
                heapq.heappush(heap, entry)
            elif entry[0] > heap[0][0]:
                heapq.heapreplace(heap, entry)
        assert sorted((score[r], cls[r], *box[r]) for r in order[keep]) == sorted(heap)
        checked += 1
    assert checked > 100


def test_empty_detection_and_gt_files(tmp_path):
    result = _evaluate(tmp_path, [f"v,0902,{FULL},1"], [])
    assert result["per_class"]["c1"] == 0.0 and result["mAP"] == 0.0
    result = _evaluate(tmp_path, [], [f"v,0902,{FULL},1,0.9"])
    assert all(math.isnan(ap) for ap in result["per_class"].values()) and math.isnan(result["mAP"])


def test_exact_iou_tie_between_gt_boxes_uses_official_gt_order(tmp_path):
    # The full-frame detection has IoU exactly 0.5 with both halves; argmax takes the first GT in the
    # official list (descending person id, then heap layout). The later left-half detection is a TP
    # only if the right half was taken.
    det = [f"v,0902,{FULL},1,0.9", f"v,0902,{LEFT},1,0.8"]
    # No person ids: both "scores" are 1.0 and the heap puts the smaller tuple (left half) first.
    takes_left = _evaluate(tmp_path, [f"v,0902,{RIGHT},1", f"v,0902,{LEFT},1"], det)
    assert takes_left["per_class"]["c1"] == pytest.approx(0.5, abs=1e-12)
    # Person id 2 on the right half lists it first: the full-frame detection takes it.
    takes_right = _evaluate(tmp_path, [f"v,0902,{LEFT},1,1", f"v,0902,{RIGHT},1,2"], det)
    assert takes_right["per_class"]["c1"] == 1.0
