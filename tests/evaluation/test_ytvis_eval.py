"""YouTube-VIS evaluator: hand-computed cases, agreement with the official-style reference, errors, CLI."""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from seqformer.evaluation import ytvis_eval
from seqformer.evaluation.ytvis_eval import (
    YTVISEvalError,
    evaluate_ytvis,
    format_ytvis_table,
)
from seqformer.evaluation.ytvis_inputs import parse_json_span, split_json_array
from seqformer.tools import evaluate_vis

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from ytvis_reference import reference_evaluate  # noqa: E402

H, W = 8, 10


def rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """RLE of a binary mask; ``compressed=False`` gives the uncompressed (list counts) form."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": encoded["counts"].decode("ascii")}
    flat = mask.flatten(order="F").astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def gt_file(annotations: list[dict], num_frames: int = 2, categories=(1,), videos=(1,)) -> dict:
    return {"videos": [{"id": v, "height": H, "width": W, "length": num_frames} for v in videos],
            "categories": [{"id": c, "name": str(c)} for c in categories], "annotations": annotations}


def gt_ann(ann_id: int, frames: list, category: int = 1, video: int = 1, iscrowd: int = 0) -> dict:
    segs = [None if f is None else rle(f, compressed=False) for f in frames]
    areas = [None if f is None else int(f.sum()) for f in frames]
    return {"id": ann_id, "video_id": video, "category_id": category, "iscrowd": iscrowd,
            "segmentations": segs, "areas": areas}


def det(frames: list, score: float, category: int = 1, video: int = 1) -> dict:
    return {"video_id": video, "category_id": category, "score": score,
            "segmentations": [None if f is None else rle(f) for f in frames]}


# ---------------------------------------------------------------- hand-computed cases

def test_single_pair_iou_is_summed_over_frames():
    # GT: 2x2 box in both frames (areas 4, 4). Detection: the same box in frame 0 (I=4, U=4) and a
    # 2x2 box shifted by one column in frame 1 (I=2, U=6). Video IoU = (4+2)/(4+6) = 0.6, which
    # equals the third threshold exactly (np.linspace gives 0.6 exactly) -> matched at 0.50, 0.55,
    # 0.60 only: AP = AR = 3/10. Mean area 4 px -> "small"; medium/large have no GT -> -1.
    gt = gt_file([gt_ann(1, [box(0, 2, 0, 2), box(0, 2, 0, 2)])])
    stats = evaluate_ytvis(gt, [det([box(0, 2, 0, 2), box(0, 2, 1, 3)], 0.9)])
    assert stats["AP"] == pytest.approx(0.3, abs=1e-12)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(0.0)
    assert stats["APs"] == pytest.approx(0.3) and stats["APm"] == -1 and stats["APl"] == -1
    assert stats["AR1"] == pytest.approx(0.3) and stats["AR100"] == pytest.approx(0.3)
    assert stats["ARm"] == -1 and stats["ARl"] == -1


def test_null_frame_of_detection_still_counts_in_union():
    # GT present in both frames (4 + 4 px); detection only in frame 0, identical there.
    # IoU = 4 / (4 + 4) = 0.5 -> matched at threshold 0.50 only: AP = 1/10.
    gt = gt_file([gt_ann(1, [box(0, 2, 0, 2), box(4, 6, 4, 6)])])
    stats = evaluate_ytvis(gt, [det([box(0, 2, 0, 2), None], 0.5)])
    assert stats["AP"] == pytest.approx(0.1, abs=1e-12)
    assert stats["AR10"] == pytest.approx(0.1, abs=1e-12)


def test_false_positive_ranked_first_halves_precision():
    # Sorted by score: A (0.9, IoU 0) is a false positive, B (0.8, IoU 1) a true positive.
    # tp=[0,1], fp=[1,1] -> recall [0,1], precision [0,0.5], envelope [0.5,0.5]; every recall
    # threshold maps to 0.5 -> AP = 0.5 at every IoU threshold. AR1 only sees A -> 0; AR10 = 1.
    gt = gt_file([gt_ann(1, [box(0, 2, 0, 2), box(0, 2, 0, 2)])])
    results = [det([box(5, 7, 5, 7), box(5, 7, 5, 7)], 0.9), det([box(0, 2, 0, 2), box(0, 2, 0, 2)], 0.8)]
    stats = evaluate_ytvis(gt, results)
    assert stats["AP"] == pytest.approx(0.5, abs=1e-12)
    assert stats["AR1"] == pytest.approx(0.0) and stats["AR10"] == pytest.approx(1.0)


def test_category_without_groundtruth_is_left_out_and_unknown_category_skipped():
    # Category 2 exists but has no GT: its perfect-looking detection neither helps nor hurts;
    # category 7 is not in the GT categories at all and is skipped. Category 1 alone: AP = 1.
    gt = gt_file([gt_ann(1, [box(0, 2, 0, 2), box(0, 2, 0, 2)])], categories=(1, 2))
    perfect = [box(0, 2, 0, 2), box(0, 2, 0, 2)]
    stats = evaluate_ytvis(gt, [det(perfect, 0.9), det(perfect, 0.95, category=2), det(perfect, 0.99, category=7)])
    assert stats["AP"] == pytest.approx(1.0) and stats["AR1"] == pytest.approx(1.0)


def test_area_ranges_use_groundtruth_areas_field():
    # The masks are 4 px, but the annotation's 'areas' say 20000 and 0 (0 = not counted): the mean
    # non-zero area 20000 lies in the medium range (128^2, 256^2], so only APm is defined; the
    # unmatched-detection-outside-range rule does not apply because the detection is matched.
    ann = gt_ann(1, [box(0, 2, 0, 2), box(0, 2, 0, 2)])
    ann["areas"] = [20000, 0]
    stats = evaluate_ytvis(gt_file([ann]), [det([box(0, 2, 0, 2), box(0, 2, 0, 2)], 0.9)])
    assert stats["APs"] == -1 and stats["APl"] == -1
    assert stats["APm"] == pytest.approx(1.0) and stats["AP"] == pytest.approx(1.0)


# ---------------------------------------------------------------- agreement with the reference

def _random_mask(rng: np.random.Generator) -> np.ndarray:
    y0, x0 = rng.integers(0, H - 2), rng.integers(0, W - 2)
    return box(y0, y0 + rng.integers(2, H - y0 + 1), x0, x0 + rng.integers(2, W - x0 + 1))


def _polygon(mask_box: tuple[int, int, int, int]) -> list[list[float]]:
    y0, y1, x0, x1 = mask_box
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def random_case(seed: int, num_videos: int = 4, num_frames: int = 5, crowded_group: bool = False) -> tuple[dict, list]:
    """Mixed GT formats (uncompressed / compressed RLE / polygon), null frames, crowd, id 0, ties."""
    rng = np.random.default_rng(seed)
    categories = (1, 2, 3, 4)  # category 4 never gets GT
    annotations, results = [], []
    for vid in range(1, num_videos + 1):
        tracks = []
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.integers(1, 4))
            frames, segs, areas = [], [], []
            for t in range(num_frames):
                if rng.random() < 0.2:
                    frames.append(None)
                    segs.append(None)
                    areas.append(None)
                    continue
                y0, x0 = int(rng.integers(0, H - 2)), int(rng.integers(0, W - 2))
                bb = (y0, int(rng.integers(y0 + 2, H + 1)), x0, int(rng.integers(x0 + 2, W + 1)))
                mask = box(*bb)
                kind = rng.integers(3)
                segs.append(_polygon(bb) if kind == 0 else rle(mask, compressed=bool(kind == 1)))
                frames.append(mask)
                areas.append(float(mask.sum()) * float(rng.choice([1, 1000, 5000])))
            ann_id = len(annotations) + (0 if seed % 2 else 1)  # odd seeds contain GT id 0
            annotations.append({"id": ann_id, "video_id": vid, "category_id": cat,
                                "iscrowd": int(rng.random() < 0.15), "segmentations": segs, "areas": areas})
            tracks.append((cat, frames))
        num_results = 130 if crowded_group and vid == 1 else int(rng.integers(0, 25))
        for _ in range(num_results):
            if tracks and rng.random() < 0.7:
                cat, frames = tracks[rng.integers(len(tracks))]
                frames = [None if f is None or rng.random() < 0.1 else
                          (f if rng.random() < 0.5 else _random_mask(rng)) for f in frames]
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, 5))
            else:
                cat, frames = int(rng.integers(1, 6)), [_random_mask(rng) for _ in range(num_frames)]
            if rng.random() < 0.05:
                frames = [None] * num_frames
            score = float(rng.choice([0.1, 0.5, 0.9])) if rng.random() < 0.5 else float(rng.random())
            results.append(det(frames, score, category=cat, video=vid))
    gt = gt_file(annotations, num_frames=num_frames, categories=categories, videos=range(1, num_videos + 1))
    return gt, results


def assert_agrees(gt: dict, results: list) -> dict:
    ours = evaluate_ytvis(gt, results)
    reference = reference_evaluate(copy.deepcopy(gt), copy.deepcopy(results))
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key
    return ours


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_reference_on_random_cases(seed):
    stats = assert_agrees(*random_case(seed))
    assert any(v > 0 for v in stats.values())  # the case exercises real matches


def test_agrees_with_reference_beyond_100_results_per_group():
    gt, results = random_case(11, num_videos=2, crowded_group=True)
    assert sum(r["video_id"] == 1 for r in results) == 130
    assert_agrees(gt, results)


def test_empty_and_all_null_results():
    gt, results = random_case(3)
    stats = assert_agrees(gt, [])
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0
    for r in results:
        r["segmentations"] = [None] * len(r["segmentations"])
    assert_agrees(gt, results)


def test_inputs_are_not_modified():
    gt, results = random_case(5)
    gt_before, results_before = json.dumps(gt), json.dumps(results)
    evaluate_ytvis(gt, results)
    assert json.dumps(gt) == gt_before and json.dumps(results) == results_before


# ---------------------------------------------------------------- errors

def _simple() -> tuple[dict, list]:
    gt = gt_file([gt_ann(7, [box(0, 2, 0, 2), box(0, 2, 0, 2)])])
    return gt, [det([box(0, 2, 0, 2), None], 0.9)]


def test_bad_json_file_names_the_file(tmp_path):
    bad = tmp_path / "gt.json"
    bad.write_text("{not json")
    with pytest.raises(YTVISEvalError, match="gt.json.*not valid JSON"):
        evaluate_ytvis(bad, [])


@pytest.mark.parametrize("mutate, message", [
    (lambda gt, res: gt.pop("videos"), "missing list 'videos'"),
    (lambda gt, res: res[0].pop("score"), r"result \[0\] needs"),
    (lambda gt, res: res[0].update(video_id=99), r"result \[0\] \(video 99\).*not in the groundtruth"),
    (lambda gt, res: res[0]["segmentations"].append(None), "3 segmentations but video 1 has 2 frames"),
    (lambda gt, res: gt["annotations"][0]["segmentations"].pop(), "annotation id 7.*1 segmentations"),
    (lambda gt, res: gt["annotations"][0]["segmentations"][1].update(counts=[1, 2]),
     "annotation id 7.*frame 1.*sum to 3"),
    (lambda gt, res: gt["annotations"][0]["segmentations"][1].update(counts=[-1, 2, 2, 1]),
     "annotation id 7.*frame 1.*non-negative"),
    (lambda gt, res: gt["annotations"][0]["segmentations"][0].update(counts=[1.5, 2.5]),
     "annotation id 7.*frame 0.*non-negative integers"),
    (lambda gt, res: gt["annotations"][0]["segmentations"].__setitem__(0, {"size": [H, W], "counts": "a b"}),
     "annotation id 7.*frame 0.*alphabet"),
    (lambda gt, res: gt["annotations"][0]["segmentations"].__setitem__(0, [[1, 2, 3]]),
     "annotation id 7.*frame 0.*polygon"),
    (lambda gt, res: res[0]["segmentations"][0].update(size=[4, 4]), r"result \[0\].*frame 0.*size"),
    (lambda gt, res: res[0]["segmentations"].__setitem__(0, [[0, 0, 2, 0, 2, 2]]), r"result \[0\].*frame 0"),
    (lambda gt, res: res[0]["segmentations"][0].update(counts=3.5), r"result \[0\].*frame 0.*counts"),
])
def test_malformed_input_is_reported_with_context(mutate, message):
    gt, results = _simple()
    mutate(gt, results)
    with pytest.raises(YTVISEvalError, match=message):
        evaluate_ytvis(gt, results)


# ---------------------------------------------------------------- CLI

def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    gt, results = random_case(2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    parser = argparse.ArgumentParser()
    evaluate_vis.add_arguments(parser)
    args = parser.parse_args(["--groundtruth", str(tmp_path / "gt.json"), "--results", str(tmp_path / "res.json"),
                              "--json", str(tmp_path / "out" / "stats.json")])
    assert evaluate_vis.run(args) == 0
    written = json.loads((tmp_path / "out" / "stats.json").read_text())
    expected = reference_evaluate(gt, results)
    assert list(written) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    assert all(written[k] == pytest.approx(expected[k], abs=1e-9) for k in expected)
    out = capsys.readouterr().out
    assert out.rstrip("\n") == format_ytvis_table(written)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out


def test_cli_reports_errors_with_exit_code(tmp_path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps(_simple()[0]))
    (tmp_path / "res.json").write_text(json.dumps([{"video_id": 5}]))
    parser = argparse.ArgumentParser()
    evaluate_vis.add_arguments(parser)
    args = parser.parse_args(["--groundtruth", str(tmp_path / "gt.json"), "--results", str(tmp_path / "res.json")])
    assert evaluate_vis.run(args) == 1
    assert "result [0] needs" in capsys.readouterr().err


# ---------------------------------------------------------------- forked workers

@pytest.fixture
def always_parallel(monkeypatch):
    """Use the worker processes even for tiny inputs."""
    monkeypatch.setattr(ytvis_eval, "MIN_RESULTS_PER_WORKER", 0)
    monkeypatch.setattr(ytvis_eval, "MIN_BYTES_PER_WORKER", 0)


def _write_case(tmp_path: Path, gt: dict, results: list, **dump_kwargs) -> tuple[Path, Path]:
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results, **dump_kwargs))
    return tmp_path / "gt.json", tmp_path / "res.json"


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_on_files_agree_with_reference(tmp_path, always_parallel, workers):
    gt, results = random_case(4, num_videos=6)
    gt_path, res_path = _write_case(tmp_path, gt, results, indent=1)  # whitespace around the cuts
    expected = reference_evaluate(copy.deepcopy(gt), copy.deepcopy(results))
    stats = evaluate_ytvis(gt_path, res_path, workers=workers)
    assert all(stats[k] == pytest.approx(expected[k], abs=1e-9) for k in expected)
    assert multiprocessing.active_children() == []


def test_workers_on_in_memory_results_agree_with_reference(always_parallel):
    gt, results = random_case(6, num_videos=6)
    expected = reference_evaluate(copy.deepcopy(gt), copy.deepcopy(results))
    stats = evaluate_ytvis(gt, results, workers=2)
    assert all(stats[k] == pytest.approx(expected[k], abs=1e-9) for k in expected)


def test_results_file_with_misleading_cuts_is_parsed_whole(tmp_path, always_parallel):
    # Each result carries a nested list whose second object starts with "video_id": the guessed
    # cut lands inside a result, the first span then fails to parse, and the file is parsed whole.
    gt, results = random_case(7, num_videos=5)
    decoys = [{"extra": [{"a": 1}, {"video_id": 0}], **r} for r in results]
    gt_path, res_path = _write_case(tmp_path, gt, decoys)
    raw = res_path.read_bytes()
    (start, stop), _ = split_json_array(res_path, 2)
    with pytest.raises(ValueError):
        parse_json_span(raw[start:stop])
    expected = reference_evaluate(copy.deepcopy(gt), copy.deepcopy(results))
    stats = evaluate_ytvis(gt_path, res_path, workers=2)
    assert all(stats[k] == pytest.approx(expected[k], abs=1e-9) for k in expected)


def test_json_spans_concatenate_to_the_whole_array(tmp_path):
    values = [{"video_id": i, "x": [{"y": "}, {"}, None, 1.5e3]} for i in range(40)]
    path = tmp_path / "a.json"
    path.write_text(" \n" + json.dumps(values, indent=2) + "\n")
    raw = path.read_bytes()
    for parts in (2, 3, 7):
        spans = split_json_array(path, parts)
        assert spans is not None and len(spans) == parts
        assert [v for start, stop in spans for v in parse_json_span(raw[start:stop])] == values
    path.write_text(json.dumps({"video_id": 1}))
    assert split_json_array(path, 2) is None


def test_worker_errors_name_the_position_in_the_whole_file(tmp_path, always_parallel):
    gt, results = random_case(8, num_videos=6)
    bad = len(results) - 2  # in the second worker's half
    results[bad]["score"] = "high"
    gt_path, res_path = _write_case(tmp_path, gt, results)
    with pytest.raises(YTVISEvalError, match=rf"result \[{bad}\] .*'score' must be a number"):
        evaluate_ytvis(gt_path, res_path, workers=2)
    assert multiprocessing.active_children() == []


def test_invalid_json_in_second_half_gives_the_whole_file_error(tmp_path, always_parallel):
    gt, results = random_case(9, num_videos=6)
    gt_path, res_path = _write_case(tmp_path, gt, results)
    text = res_path.read_text()
    assert text.endswith("}]")
    res_path.write_text(text[:-1] + ",]")  # a trailing comma: only the last span sees it
    with pytest.raises(YTVISEvalError, match="res.json is not valid JSON"):
        evaluate_ytvis(gt_path, res_path, workers=2)


def test_video_length_inferred_differently_by_two_workers(always_parallel):
    # The video has no 'length' and no annotation: its length comes from its first result, so a
    # later result with another length is an error even when another worker evaluates it.
    gt = gt_file([gt_ann(1, [box(0, 2, 0, 2), box(0, 2, 0, 2)])], videos=(1, 2))
    del gt["videos"][1]["length"]
    results = [det([box(0, 2, 0, 2)] * 2, 0.5) for _ in range(4)]
    results[1] = det([box(0, 2, 0, 2)] * 2, 0.5, video=2)
    results[3] = det([box(0, 2, 0, 2)] * 3, 0.5, video=2)
    with pytest.raises(YTVISEvalError, match=r"result \[3\] \(video 2\): 3 segmentations but video 2 has 2 frames"):
        evaluate_ytvis(gt, results, workers=2)
    results[3] = det([box(0, 2, 0, 2)] * 2, 0.5, video=2)
    assert evaluate_ytvis(gt, results, workers=2) == evaluate_ytvis(gt, results, workers=1)
