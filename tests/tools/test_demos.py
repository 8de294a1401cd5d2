"""The demos end to end (shrunk): train with validation on one split, report another, never mix runs."""
from __future__ import annotations

import json

import pytest

from seqformer.cli import main
from seqformer.utils.demo_data import STAMP, stamped_settings

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=6", "model.dropout=0.0"]
VIS_SMALL = [*TINY, "model.num_frames=2", "data.train_scales=[64]", "data.crop_scales=[64]", "data.crop_size=[48,64]",
             "data.val_short_side=64", "optim.epochs=2", "train.max_iters_per_epoch=2", "data.num_workers=0"]


def test_demo_vis_selects_on_valid_reports_test_and_keeps_last_and_best(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "vis", "--out", str(out), "--train-videos", "2", "--val-videos", "1", "--test-videos", "2",
            "--no-progress", "--threads", "1", "--gif-scale", "2", *VIS_SMALL]
    assert main(args) == 0
    console = capsys.readouterr().out
    assert "device cpu, 1 CPU thread" in console
    # one summary line per epoch, n/N, validation metric, best so far
    summaries = [line for line in console.splitlines() if line.startswith("epoch ")]
    assert [s.split(":")[0] for s in summaries] == ["epoch 1/2", "epoch 2/2"]
    assert all("mean loss" in s and "clips/s" in s and "val AP" in s and "best AP" in s for s in summaries)
    assert "\r" not in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["checkpoint"].startswith("epoch ")
    assert all(-1.0 <= metrics[k] <= 1.0 for k in ("AP", "AP50", "AR10"))
    # reported on the 2 test videos, while training validated on the 1 valid video
    assert {r["video_id"] for r in json.loads((out / "results_test.json").read_text())} <= {1, 2}
    assert json.loads((out / "data" / "annotations" / "instances_test_sub.json").read_text())["videos"][1]["id"] == 2
    assert len(list((out / "train").glob("results_val_epoch*.json"))) == 2
    assert sorted(p.name for p in (out / "train").glob("*.pth")) == ["checkpoint.pth", "checkpoint_best.pth"]
    assert (out / "predictions_test_1.gif").stat().st_size > 0 and (out / "training_curves.png").stat().st_size > 0

    # a second run into the same folder is refused with one line, before generating or training anything
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--resume" in err and "--overwrite" in err and "\n" not in err
    # other counts regenerate the data (never silently reused); --overwrite starts the training over
    assert main([*args[:9], "3", *args[10:], "--overwrite", "optim.epochs=1"]) == 0
    assert stamped_settings(out / "data")["num_test_videos"] == 3
    log = [json.loads(line) for line in (out / "train" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["type"] == "epoch"] == [0]  # the old run's epochs are gone
    assert len(list((out / "train" / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_demo_data_folder_is_reused_only_with_the_same_settings(tmp_path):
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.utils.demo_data import prepare_synthetic_data

    said = []
    small = SynthVisConfig(num_train_videos=1, num_val_videos=1, num_frames=2, height=32, width=32)
    assert prepare_synthetic_data(tmp_path / "d", small, generate_synth_vis, said.append) is True
    assert prepare_synthetic_data(tmp_path / "d", small, generate_synth_vis, said.append) is False
    other = SynthVisConfig(num_train_videos=1, num_val_videos=2, num_frames=2, height=32, width=32)
    assert prepare_synthetic_data(tmp_path / "d", other, generate_synth_vis, said.append) is True
    assert "num_val_videos (1 -> 2)" in said[-2]
    assert len(json.loads((tmp_path / "d" / "annotations" / "instances_valid_sub.json").read_text())["videos"]) == 2
    (tmp_path / "d" / STAMP).unlink()  # an interrupted generation has no stamp: generated again
    assert prepare_synthetic_data(tmp_path / "d", other, generate_synth_vis, said.append) is True
    (tmp_path / "d" / "notes.txt").write_text("mine")  # a folder holding someone else's files is never deleted
    with pytest.raises(Exception, match="notes.txt"):
        prepare_synthetic_data(tmp_path / "d", small, generate_synth_vis, said.append)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


def test_demo_ava_reports_test_split_and_draws_keyframes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "ava", "--out", str(out), "--train-videos", "1", "--val-videos", "1", "--test-videos", "1",
                 "--no-progress", "--threads", "1", "optim.epochs=1", "train.max_iters_per_epoch=2",
                 "model.num_frames=4"]) == 0
    console = capsys.readouterr().out
    assert "epoch 1/1: mean loss" in console and "val mAP" in console and "test frame-mAP@0.5" in console
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["mAP"] <= 1.0
    videos = {line.split(",")[0] for line in (out / "detections_test.csv").read_text().splitlines()}
    assert videos == {"synth_test_000"}
    assert (out / "detections_test.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "train").glob("*.pth")) == ["checkpoint.pth", "checkpoint_best.pth"]
