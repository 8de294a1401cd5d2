"""Learning on synthetic data: the VIS and AVA models overfit one clip; the train CLI runs end to end
(the demos: tests/tools/test_demos.py)."""
from __future__ import annotations

import json

import torch

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.engine.trainer import weighted_total
from seqformer.tasks.ava import AVATask
from seqformer.tasks.vis import VISTask

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=6", "model.dropout=0.0"]


def _overfit(task, cfg, sample_batch, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model, criterion = task.build_model(cfg).train(), task.build_criterion(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs, targets = sample_batch
    losses = []
    for _ in range(steps):
        loss = weighted_total(criterion(model(inputs, targets), targets), criterion.weight_dict)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses[0], sum(losses[-5:]) / 5


def test_vis_model_overfits_one_synthetic_clip(synth_vis):
    cfg = load_config("configs/ytvis/tiny_synth.yaml", TINY + [f"data.ytvis_path={synth_vis['root']}", "model.num_frames=2",
                                                                 "data.train_scales=[64]", "data.crop_scales=[64]",
                                                                 "data.crop_size=[48,64]", "data.photometric=false"])
    task = VISTask()
    dataset = task.build_dataset(cfg, "train")
    batch = task.collate_fn([dataset[0]])
    first, last = _overfit(task, cfg, batch, steps=60)
    assert last < 0.5 * first, (first, last)


def test_ava_model_overfits_one_synthetic_clip(tmp_path):
    import yaml

    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava

    generate_synth_ava(tmp_path, SynthAvaConfig(num_train_videos=1, num_val_videos=1, seconds=4, height=64, width=96))
    data = yaml.safe_load((tmp_path / "dataset.yaml").read_text())["data"]
    overrides = [f"data.{k}={json.dumps(v)}" for k, v in data.items()]
    cfg = load_config("configs/ava/tiny_synth.yaml", TINY + overrides + ["model.num_frames=4"])
    task = AVATask()
    dataset = task.build_dataset(cfg, "train")
    batch = task.collate_fn([dataset[0], dataset[1]])
    first, last = _overfit(task, cfg, batch, steps=60)
    assert last < 0.5 * first, (first, last)


def test_train_cli_runs_and_evaluates(synth_vis, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--config", "configs/ytvis/tiny_synth.yaml", *TINY, f"data.ytvis_path={synth_vis['root']}",
               "model.num_frames=2", "data.train_scales=[64]", "data.crop_scales=[64]", "data.crop_size=[48,64]",
               "data.val_short_side=64", "optim.epochs=1", "train.max_iters_per_epoch=3", "data.num_workers=0",
               f"train.output_dir={out}", "--no-progress"])
    assert rc == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epoch = [r for r in records if r["type"] == "epoch"][-1]
    assert "val_AP" in epoch and 0.0 <= epoch["val_AP"] <= 1.0
    assert (out / "checkpoint.pth").is_file() and (out / "checkpoint_best.pth").is_file()
    results = json.loads(next(out.glob("results_val_epoch*.json")).read_text())
    assert results and all(len(r["segmentations"]) == 8 for r in results)  # the shared set has 8-frame videos
