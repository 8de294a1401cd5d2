"""Inputs the official evaluators accept silently are reported once, with counts; the numbers stay official."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
from seqformer.evaluation.ava_eval import evaluate_ava
from seqformer.evaluation.ytvis_eval import evaluate_ytvis


@pytest.fixture(scope="module")
def ava(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ava_warnings")
    return generate_synth_ava(root, SynthAvaConfig(num_train_videos=1, num_val_videos=2, seconds=4, height=48, width=80))


def _det_rows(gt_csv: Path) -> list[str]:
    return [",".join(line.split(",")[:7]) + ",0.9" for line in gt_csv.read_text().splitlines()]


def test_ava_notes_count_what_the_official_rules_drop(ava, tmp_path):
    rows = _det_rows(ava["val_csv"])
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(rows) + "\n")
    noisy = tmp_path / "noisy.csv"
    extra = ["synth_val_000,0061,0.5,0.1,0.5,0.2,1,0.95",  # x1 == x2: dropped
             "synth_val_000,0061,0.6,0.1,0.4,0.2,1,0.95",  # x1 > x2: dropped
             "synth_val_000,0061,0.1,0.1,0.2,0.2,77,0.99",  # action 77 not in the label map
             "synth_val_000,0061,0.1,0.1,0.2,0.2,1"]  # no score: counts as 1.0 (a false positive here)
    noisy.write_text("\n".join(rows[:1] + extra + rows[1:]) + "\n")
    base = evaluate_ava(ava["labelmap"], ava["val_csv"], clean, ava["exclusions"])
    result = evaluate_ava(ava["labelmap"], ava["val_csv"], noisy, ava["exclusions"])
    assert base["notes"] == []
    notes = "\n".join(result["notes"])
    # dropped detection rows are counted by fate (printed as one line by evaluate ava), not repeated as notes
    assert result["detections"]["invalid_box"] == base["detections"]["invalid_box"] + 2
    assert result["detections"]["not_in_labelmap"] == base["detections"]["not_in_labelmap"] + 1
    assert f"{noisy}: 1 of {len(rows) + 4} detection rows have no score column" in notes
    assert len(result["notes"]) == 1
    # official numbers: the unscored row is a score-1.0 false positive of class 1, nothing else changes
    changed = [k for k in base["per_class"] if base["per_class"][k] != result["per_class"][k]]
    assert changed == ["walk left"] and result["per_class"]["walk left"] < base["per_class"]["walk left"]


def test_ava_empty_files_are_reported_on_the_command_line(ava, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["evaluate", "ava", "--no-plot", "--labelmap", str(ava["labelmap"]), "--groundtruth",
                 str(ava["val_csv"]), "--detections", str(empty)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {empty}: the detection file is empty" in err
    assert main(["evaluate", "ava", "--no-plot", "--labelmap", str(ava["labelmap"]), "--groundtruth", str(empty),
                 "--detections", str(ava["val_csv"])]) == 0
    err = capsys.readouterr().err
    assert f"warning: {empty}: the ground truth is empty" in err and err.count("warning:") == 1


def test_ava_training_reports_unknown_action_ids(ava, tmp_path, capsys):
    from seqformer.data.ava_dataset import build_ava_dataset

    csv = tmp_path / "train.csv"
    csv.write_text(Path(ava["train_csv"]).read_text() + "synth_train_000,0061,0.1,0.1,0.2,0.2,42,7\n"
                   "synth_train_000,0061,0.1,0.1,0.2,0.2,43,7\n")
    cfg = load_config(None, ["model.task=ava", f"data.ava_frames={ava['frames']}", f"data.ava_train_csv={csv}",
                             f"data.ava_labelmap={ava['labelmap']}", "data.ava_fps=8", "data.ava_start_second=60",
                             "data.ava_exclusions=null"])
    dataset = build_ava_dataset(cfg, "train")
    err = capsys.readouterr().err
    assert dataset.stats["rows_outside_labelmap"] == 2
    assert f"warning: {csv}: 2 of {dataset.stats['rows']} rows have an action id outside" in err
    assert "1 boxes left without any action are dropped" in err


def test_ava_start_second_and_fps_accept_fractions():
    cfg = load_config(None, ["data.ava_start_second=900.5", "data.ava_fps=29.97"])
    assert cfg.data.ava_start_second == 900.5 and cfg.data.ava_fps == 29.97


def _valid_results(gt: dict) -> list[dict]:
    return [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.5 + 0.01 * i,
             "segmentations": a["segmentations"]} for i, a in enumerate(gt["annotations"])]


def test_vis_warnings_count_and_keep_the_official_numbers(synth_vis, tmp_path, caplog):
    gt = json.loads(Path(synth_vis["valid_ann"]).read_text())
    results = _valid_results(gt)
    base = evaluate_ytvis(gt, results, workers=1)
    caplog.set_level(logging.WARNING, logger="seqformer.evaluation.ytvis_eval")
    results[0]["score"] = float("inf")
    results[1]["score"] = float("-inf")
    gt["annotations"][0]["bboxes"][0] = None  # null bbox next to a present segmentation
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))  # json writes Infinity, which the official reader accepts
    stats = evaluate_ytvis(gt, path, workers=1)
    assert f"2 result(s) in {path} have score Infinity or -Infinity" in caplog.text
    assert "1 annotation frame(s) have 'bboxes' null" in caplog.text
    assert stats["AP"] <= base["AP"] and set(stats) == set(base)

    caplog.clear()
    empty = dict(gt, annotations=[])
    assert all(v == -1 for v in evaluate_ytvis(empty, [], workers=1).values())
    assert "has no annotations: every number is -1" in caplog.text and "is empty" in caplog.text


def test_vis_training_reports_null_bboxes(synth_vis, tmp_path, capsys):
    from seqformer.data.ytvis_dataset import YTVISDataset

    data = json.loads(Path(synth_vis["train_ann"]).read_text())
    present = [t for t, s in enumerate(data["annotations"][0]["segmentations"]) if s is not None]
    for t in present[:2]:
        data["annotations"][0]["bboxes"][t] = None
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps(data))
    YTVISDataset(synth_vis["train_images"], ann, num_frames=2)
    assert f"warning: {ann}: 2 annotation frame(s) have a null bbox" in capsys.readouterr().err
