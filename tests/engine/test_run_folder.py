"""One run per output folder (refuse / --resume / --overwrite), keep_checkpoints, and the console lines."""
from __future__ import annotations

import math

import pytest
import torch

from seqformer.engine.distributed import DistInfo
from seqformer.engine.logger import read_log
from seqformer.engine.run_folder import RunFolderError, prepare_run_folder
from seqformer.engine.trainer import EtaClock, Trainer, epoch_summary, format_duration

from engine_toy import ToyTask, toy_config

CPU = torch.device("cpu")


def fit(cfg, progress=False):
    return Trainer(cfg, ToyTask(), progress=progress, dist_info=DistInfo(), device=CPU).fit()


def test_a_folder_with_a_run_is_refused_resumed_or_overwritten(tmp_path):
    cfg = toy_config(str(tmp_path), val_freq=0)
    cfg.optim.epochs = 1
    fit(cfg)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="already holds a run .*--resume auto.*--overwrite"):
        fit(cfg)
    with pytest.raises(RunFolderError, match="contradict"):
        prepare_run_folder(tmp_path, "auto", True)
    # --resume auto continues: epoch 1 is appended, epoch 0 not retrained
    resumed = toy_config(str(tmp_path), val_freq=0, resume="auto")
    resumed.optim.epochs = 2
    fit(resumed)
    iters, epochs = read_log(tmp_path / "log.jsonl")
    assert [e["epoch"] for e in epochs] == [0, 1] and len(iters) == 8
    # --overwrite deletes the run's files (and only those) and starts clean
    again = toy_config(str(tmp_path), val_freq=0)
    again.optim.epochs, again.train.overwrite = 1, True
    fit(again)
    iters, epochs = read_log(tmp_path / "log.jsonl")
    assert [e["epoch"] for e in epochs] == [0] and len(iters) == 4
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert not (tmp_path / "checkpoint0001.pth").exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_auto_without_a_checkpoint_starts_clean(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"type": "iter", "epoch": 0, "iter": 0, "step": 0, "loss": 9.0}\n')
    assert prepare_run_folder(tmp_path, "auto", False, delete=False) == "clean"
    assert (tmp_path / "log.jsonl").exists()  # a non-main rank decides without deleting
    assert prepare_run_folder(tmp_path, "auto", False) == "clean" and not (tmp_path / "log.jsonl").exists()
    assert prepare_run_folder(tmp_path / "new", None, False) == "new"


@pytest.mark.parametrize("keep,expected", [(0, []), (1, ["checkpoint0002.pth"]), (None, ["checkpoint0000.pth",
                                           "checkpoint0001.pth", "checkpoint0002.pth"])])
def test_keep_checkpoints(tmp_path, keep, expected):
    cfg = toy_config(str(tmp_path), val_freq=1, keep_checkpoints=keep)
    cfg.optim.epochs = 3
    Trainer(cfg, ToyTask(scripted_scores=[0.2, 0.9, 0.5]), progress=False, dist_info=DistInfo(), device=CPU).fit()
    assert sorted(p.name for p in tmp_path.glob("checkpoint[0-9]*.pth")) == expected
    assert torch.load(tmp_path / "checkpoint_best.pth", weights_only=True)["epoch"] == 1
    assert torch.load(tmp_path / "checkpoint.pth", weights_only=True)["epoch"] == 2


def test_console_shows_device_threads_and_one_summary_line_per_epoch(tmp_path, capsys):
    cfg = toy_config(str(tmp_path), val_freq=1, num_threads=1)
    cfg.optim.epochs = 2
    Trainer(cfg, ToyTask(scripted_scores=[0.25, 0.75]), progress=False, dist_info=DistInfo(), device=CPU).fit()
    lines = capsys.readouterr().out.splitlines()
    assert "device cpu, 1 CPU thread (" in lines[0] and "epochs 1-2 of 2, 4 iterations each" in lines[0]
    first, second = lines[1:3]
    assert first.startswith("epoch 1/2: mean loss ") and "val score 0.2500" in first
    assert "best score 0.2500 (epoch 1)" in first and "ETA " in first and "clips/s" in first
    assert second.startswith("epoch 2/2: ") and "best score 0.7500 (epoch 2)" in second and second.endswith("done")
    _, epochs = read_log(tmp_path / "log.jsonl")
    assert f"mean loss {epochs[0]['train_loss']:.4f}" in first  # the mean over the epoch, not the last iteration


def test_summary_and_eta_helpers():
    assert [format_duration(s) for s in (5, 185, 3720, math.nan)] == ["5s", "3m05s", "1h02m", "?"]
    clock = EtaClock(total_iters=10)
    assert math.isnan(clock.remaining())
    clock.start -= 4.0  # 4 s for the first 2 iterations -> 16 s for the other 8
    clock.step(2)
    assert clock.remaining() == pytest.approx(16.0, rel=0.05)
    line = epoch_summary(0, 3, {"loss": 1.5}, 10.0, 40, {}, None, 20.0)
    assert line == "epoch 1/3: mean loss 1.5000 | 10s (4.00 clips/s) | ETA 20s"


def test_curves_show_final_metrics_instead_of_an_empty_panel(tmp_path):
    from seqformer.engine.logger import plot_training_curves

    cfg = toy_config(str(tmp_path), val_freq=0)
    cfg.optim.epochs = 1
    fit(cfg)
    fig = plot_training_curves(str(tmp_path / "log.jsonl"), str(tmp_path / "c.png"), final_metrics={"test AP": 0.42})
    panel = fig.axes[1]
    assert panel.get_title() == "final metrics"
    assert [t.get_text() for t in panel.texts] == [" 0.420"] and len(panel.patches) == 1
    cfg2 = toy_config(str(tmp_path / "v"), val_freq=1)
    cfg2.optim.epochs = 1
    Trainer(cfg2, ToyTask(scripted_scores=[0.3]), progress=False, dist_info=DistInfo(), device=CPU).fit()
    fig = plot_training_curves(str(tmp_path / "v" / "log.jsonl"), str(tmp_path / "d.png"), final_metrics={"test AP": 0.42})
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert labels == ["val score", "test AP 0.420"]
