"""AVA frame-mAP: hand-computed cases and edge-case semantics of the default (ActivityNet) protocol.

The comparison with the reference evaluators themselves, for every protocol, is in
test_ava_eval_references.py."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from seqformer.data.ava_format import AvaFormatError
from seqformer.evaluation.ava_eval import evaluate_ava

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


def _evaluate(tmp_path, gt, det, protocol="activitynet", **kw) -> dict:
    return evaluate_ava(*_files(tmp_path, gt, det, **kw), protocol=protocol)


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


def test_keyframe_rule_of_each_protocol(tmp_path):
    # v: annotated with class 1; u: a 2-column row (annotated, no box); w: only a class outside the
    # label map; x: not in the GT file at all.
    gt = [f"v,0902,{FULL},1", "u,0902", f"w,0902,{FULL},7"]
    det = [f"v,0902,{FULL},1,0.5", f"u,0902,{FULL},1,0.9", f"w,0902,{FULL},1,0.8", f"x,0902,{FULL},1,0.95"]
    result = _evaluate(tmp_path, gt, det)
    assert result["per_class"]["c1"] == pytest.approx(1 / 3, abs=1e-12)  # FP 0.9, FP 0.8, TP 0.5
    assert result["detections"]["keyframe_not_scored"] == 1 and result["detections"]["scored"] == 3
    assert _evaluate(tmp_path, gt, det, "pyslowfast")["per_class"]["c1"] == pytest.approx(1 / 4, abs=1e-12)
    assert _evaluate(tmp_path, gt, det, "mmaction2")["per_class"]["c1"] == 1.0


def test_unknown_protocol_is_an_input_error(tmp_path):
    with pytest.raises(ValueError, match="--protocol 'slowfast': expected one of activitynet, pyslowfast, mmaction2"):
        _evaluate(tmp_path, [f"v,0902,{FULL},1"], [], protocol="slowfast")


def test_inverted_ground_truth_box_is_an_error_naming_its_line(tmp_path):
    with pytest.raises(AvaFormatError, match=r"gt\.csv:2: .*x1 > x2"):
        _evaluate(tmp_path, [f"v,0902,{FULL},1", "v,0903,0.6,0.0,0.4,1.0,1"], [f"v,0902,{FULL},1,0.9"])


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
    result = _evaluate(tmp_path, [f"v,0902,{FULL},1"], others + [f"v,0902,{FULL},1,0.1"])
    assert result["mAP"] == 1.0 and result["detections"]["not_in_labelmap"] == 60


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
    assert saved["mAP"] == 1.0 and saved["per_class"] == {"c1": 1.0, "c2": None, "c3": None}
    assert saved["protocol"] == "activitynet" and saved["detections"]["scored"] == 1
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
