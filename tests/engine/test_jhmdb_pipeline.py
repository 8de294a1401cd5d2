"""The JHMDB pipeline end to end on a tiny synthetic set: synth -> train -> predict -> evaluate (the demo's path)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.data.jhmdb_format import read_groundtruth_pickle
from seqformer.data.jhmdb_synth import SynthJhmdbConfig, generate_synth_jhmdb
from seqformer.engine.task import get_task
from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb
from seqformer.evaluation.jhmdb_inputs import read_frame_detections, read_tubes
from seqformer.inference.jhmdb import VideoPrediction, write_predictions
from seqformer.inference.tube_linking import Tube
from seqformer.weight_files import load_model_weights


def test_ground_truth_written_as_predictions_scores_one(tmp_path):
    """The writers' conventions (1-based frames and labels, pixels) are the evaluator's: GT as tubes gives mAP 1."""
    paths = generate_synth_jhmdb(tmp_path / "d", SynthJhmdbConfig(num_videos=6, min_frames=10, max_frames=12,
                                                                  height=32, width=64))
    gt = read_groundtruth_pickle(paths["groundtruth"])
    predictions = []
    for video in gt.test_videos_of(2):
        tubes = [Tube(label, 0.9 - 0.1 * i, t[:, 0].astype(np.int64), t[:, 1:].astype(np.float64), np.ones(len(t)))
                 for label, ts in gt.tubes(video).items() for i, t in enumerate(ts)]
        predictions.append(VideoPrediction(video, tubes))
    rows, n_tubes = write_predictions(predictions, tmp_path / "f.csv", tmp_path / "t.json")
    assert rows == sum(len(t.frames) for p in predictions for t in p.tubes) and n_tubes == len(read_tubes(tmp_path / "t.json"))
    assert read_frame_detections(tmp_path / "f.csv").frames.min() == 1
    result = evaluate_jhmdb(gt, 2, tmp_path / "f.csv", tmp_path / "t.json")
    labelled = [name for k, name in enumerate(gt.labels) if any(k in gt.tubes(v) for v in gt.test_videos_of(2))]
    for name in labelled:
        assert result["frame_per_class"][name] == pytest.approx(1.0)
        assert result["video_per_class"]["0.5"][name] == pytest.approx(1.0)


def test_demo_runs_the_whole_pipeline_on_a_tiny_set(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "jhmdb", "--out", str(out), "--videos", "3", "--no-progress", "model.num_queries=4",
                 "optim.epochs=1", "train.max_iters_per_epoch=2", "data.jhmdb_centre_stride=8", "optim.batch_size=2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "frame-mAP@0.5" in printed and "video-mAP@0.5" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["frame_mAP"] <= 1 and set(metrics["video_mAP"]) == {"0.2", "0.5", "0.75", "0.5:0.95"}
    gt = read_groundtruth_pickle(out / "data" / "JHMDB-GT.pkl")
    dets = read_frame_detections(out / "frame_detections.csv")
    assert set(dets.video_names) <= set(gt.test_videos_of(1)) and len(dets) > 0
    assert dets.labels.min() >= 1 and dets.labels.max() <= len(gt.labels)
    tubes = read_tubes(out / "tubes.json")
    assert metrics["counts"]["tubes"] == len(tubes) and metrics["counts"]["frame_detections"] == len(dets)

    # the trained checkpoint through `predict jhmdb` + `evaluate jhmdb` gives the demo's numbers again
    frames_csv, tubes_json, again = tmp_path / "f.csv", tmp_path / "t.json", tmp_path / "m.json"
    assert main(["predict", "jhmdb", "--config", str(out / "config.yaml"), "--weights", str(out / "train" / "checkpoint.pth"),
                 "--frames-csv", str(frames_csv), "--tubes", str(tubes_json), "--device", "cpu", "--no-progress"]) == 0
    assert main(["evaluate", "jhmdb", "--groundtruth", str(out / "data" / "JHMDB-GT.pkl"), "--detections",
                 str(frames_csv), "--tubes", str(tubes_json), "--json", str(again)]) == 0
    repeated = json.loads(again.read_text())
    assert repeated["frame_mAP"] == pytest.approx(metrics["frame_mAP"], abs=1e-9)
    assert repeated["video_mAP"] == pytest.approx(metrics["video_mAP"], abs=1e-9)
    # and the task's validation (what the trainer calls every val_freq epochs) reports the same
    cfg = load_config(out / "config.yaml")
    task = get_task("jhmdb")
    model = task.build_model(cfg)
    load_model_weights(model, out / "train" / "checkpoint.pth")
    validation = task.evaluate(model.eval(), cfg, torch.device("cpu"), str(tmp_path / "val"), epoch=0)
    assert validation == pytest.approx({"frame_mAP": metrics["frame_mAP"], "video_mAP@0.5": metrics["video_mAP"]["0.5"]})
    assert (tmp_path / "val" / "tubes_epoch0000.json").is_file()
