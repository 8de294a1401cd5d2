"""Training engine: optimiser groups, schedule, atomic checkpoints, pretrain loading, exact resume."""
from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seqformer.config import OptimConfig, load_config
from seqformer.engine import checkpoint as ckpt_io
from seqformer.engine import task as task_registry
from seqformer.engine.distributed import DistInfo, detect_launch
from seqformer.engine.loader import EpochLoader
from seqformer.engine.logger import plot_training_curves, read_log
from seqformer.engine.optim import build_lr_scheduler, build_optimizer
from seqformer.engine.trainer import NonFiniteLossError, Trainer
from seqformer.weight_files import CheckpointError

from engine_toy import ToyModel, ToyTask, toy_config

CPU = torch.device("cpu")


def train(cfg, task: ToyTask | None = None) -> tuple[Trainer, dict]:
    trainer = Trainer(cfg, task or ToyTask(), progress=False, dist_info=DistInfo(), device=CPU)
    return trainer, trainer.fit()


def iter_losses(output_dir: str | Path, epoch: int) -> list[float]:
    iters, _ = read_log(Path(output_dir) / "log.jsonl")
    return [r["loss"] for r in iters if r["epoch"] == epoch]


# ---------------------------------------------------------------------------- optimiser and schedule
class Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))  # backbone.0.* and backbone.1.*
        self.encoder = nn.Module()
        self.encoder.sampling_offsets = nn.Linear(2, 2)
        self.reference_points = nn.Linear(2, 2)
        self.head = nn.Linear(2, 2)
        self.head.bias.requires_grad_(False)


def test_param_groups_exact_lrs_and_membership():
    model = Named()
    cfg = OptimConfig(lr=1e-3, lr_backbone=3e-5, lr_linear_proj_mult=0.25, weight_decay=0.05)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: g for g in opt.param_groups}
    assert {n: sorted(names[id(p)] for p in g["params"]) for n, g in groups.items()} == {
        "default": ["backbone.1.bias", "backbone.1.weight", "head.weight"],  # substring "backbone.0" only
        "backbone": ["backbone.0.bias", "backbone.0.weight"],
        "linear_proj": ["encoder.sampling_offsets.bias", "encoder.sampling_offsets.weight",
                        "reference_points.bias", "reference_points.weight"],
    }
    assert groups["default"]["lr"] == 1e-3
    assert groups["backbone"]["lr"] == 3e-5
    assert groups["linear_proj"]["lr"] == pytest.approx(2.5e-4, rel=1e-12)
    assert all(g["weight_decay"] == 0.05 for g in opt.param_groups)

    sgd = build_optimizer(model, OptimConfig(sgd=True))
    assert isinstance(sgd, torch.optim.SGD) and all(g["momentum"] == 0.9 for g in sgd.param_groups)


def test_multistep_schedule_drops_once_per_epoch():
    model = nn.Linear(2, 2)
    cfg = OptimConfig(lr=1e-3, lr_drop=[2, 4], lr_gamma=0.5)
    opt = build_optimizer(model, cfg)
    sched = build_lr_scheduler(opt, cfg)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4], rel=1e-12)
    with pytest.raises(ValueError, match="lr_drop"):
        build_lr_scheduler(opt, OptimConfig(lr_drop=[0]))


# ---------------------------------------------------------------------------- checkpoint files
def test_atomic_save_crash_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    ckpt_io.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def crashing_save(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_io.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt_io.atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]  # no temp file left behind


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.random(), np.random.randn(), torch.rand(1)  # advance away from the seeded state
    state = ckpt_io.capture_rng_state()
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3))
    ckpt_io.atomic_save({"rng": [state]}, tmp_path / "rng.pth")
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    ckpt_io.restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True)["rng"][0])
    assert (random.random(), np.random.randn(3).tolist()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


def test_training_checkpoints_load_weights_only_and_keep_best(tmp_path):
    cfg = toy_config(str(tmp_path), val_freq=2)
    cfg.optim.epochs = 3
    task = ToyTask(scripted_scores=[0.7, 0.4])
    train(cfg, task)
    assert task.evaluated_epochs == [1, 2]  # every val_freq epochs and at the last epoch
    names = sorted(p.name for p in tmp_path.glob("*.pth"))
    assert names == ["checkpoint.pth", "checkpoint0000.pth", "checkpoint0001.pth", "checkpoint0002.pth",
                     "checkpoint_best.pth"]
    last = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    assert last["epoch"] == 2 and last["config"] == cfg.to_dict()
    assert set(last) >= {"model", "optimizer", "lr_scheduler", "rng", "best"}
    assert last["best"] == {"metric": "score", "value": 0.7, "epoch": 1}
    assert last["lr_scheduler"]["last_epoch"] == 3
    assert torch.load(tmp_path / "checkpoint_best.pth", weights_only=True)["epoch"] == 1
    assert load_config(tmp_path / "config.yaml").to_dict() == cfg.to_dict()
    iters, epochs = read_log(tmp_path / "log.jsonl")
    assert len(iters) == 3 * 4 and [e["epoch"] for e in epochs] == [0, 1, 2]
    assert epochs[1]["val_score"] == 0.7 and "val_score" not in epochs[0]
    assert epochs[0]["lr_default"] == 1e-2 and epochs[1]["lr_default"] == 5e-3
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    plot_training_curves(str(tmp_path / "log.jsonl"), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- pretrained weights
class Wrapped(nn.Module):
    """SeqFormer-style naming: the detector lives under ``detr.``."""

    def __init__(self):
        super().__init__()
        self.detr = ToyModel(0.0)


def test_pretrain_drops_class_embed_and_fixes_detr_prefix(tmp_path):
    torch.manual_seed(0)
    source = Wrapped()
    torch.save({"model": source.state_dict()}, tmp_path / "seqformer.pth")
    target = ToyModel(0.0)
    before = target.class_embed.weight.clone()
    report = ckpt_io.load_pretrained(target, tmp_path / "seqformer.pth")
    assert report.prefix_fix == "strip 'detr.'"
    assert report.dropped == ["detr.class_embed.bias", "detr.class_embed.weight"]
    assert report.loaded == 4 and sorted(report.missing) == ["class_embed.bias", "class_embed.weight"]
    assert torch.equal(target.backbone[0].weight, source.detr.backbone[0].weight)
    assert torch.equal(target.class_embed.weight, before)

    # the other direction: un-prefixed file into a detr.-prefixed model, strict with jointfinetune
    torch.save({"model": ToyModel(0.0).state_dict()}, tmp_path / "plain.pth")
    report = ckpt_io.load_pretrained(Wrapped(), tmp_path / "plain.pth", jointfinetune=True)
    assert report.prefix_fix == "add 'detr.'" and report.loaded == 6 and not report.missing and not report.dropped


def test_pretrain_matching_nothing_is_an_error(tmp_path):
    torch.save({"model": {"transformer.foo.weight": torch.zeros(2), "mask_head.bar": torch.zeros(1)}},
               tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="none of its 2 weights match"):
        ckpt_io.load_pretrained(ToyModel(0.0), tmp_path / "other.pth")
    bad_shape = ToyModel(0.0).state_dict()
    bad_shape["backbone.0.weight"] = torch.zeros(3, 3)
    torch.save({"model": bad_shape}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="backbone.0.weight.*shape"):
        ckpt_io.load_pretrained(ToyModel(0.0), tmp_path / "shape.pth")


def test_pretrain_weights_used_by_trainer(tmp_path):
    torch.manual_seed(7)
    source = Wrapped()
    torch.save({"model": source.state_dict()}, tmp_path / "w.pth")
    cfg = toy_config(str(tmp_path / "run"), pretrain_weights=str(tmp_path / "w.pth"))
    trainer = Trainer(cfg, ToyTask(), progress=False, dist_info=DistInfo(), device=CPU)
    assert torch.equal(trainer.model.sampling_offsets.weight, source.detr.sampling_offsets.weight)


# ---------------------------------------------------------------------------- resume
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_repeats_the_uninterrupted_run(tmp_path, workers):
    straight = toy_config(str(tmp_path / "straight"))
    straight.data.num_workers = workers
    trainer, _ = train(straight)
    # resume from the epoch-0 checkpoint (what a 1-epoch run leaves) into a fresh directory
    resumed = toy_config(str(tmp_path / "resumed"), resume=str(tmp_path / "straight" / "checkpoint0000.pth"))
    resumed.data.num_workers = workers
    trainer2, _ = train(resumed)

    epoch1 = iter_losses(tmp_path / "straight", 1)
    assert len(epoch1) == 4 and epoch1 != iter_losses(tmp_path / "straight", 0)
    assert iter_losses(tmp_path / "resumed", 1) == epoch1
    assert iter_losses(tmp_path / "resumed", 0) == []  # nothing retrained
    for a, b in zip(trainer.model.parameters(), trainer2.model.parameters()):
        assert torch.equal(a, b)
    iters, _ = read_log(tmp_path / "resumed" / "log.jsonl")
    assert all(r["lr"] == 5e-3 for r in iters)  # schedule continues (dropped at epoch 1), not restarted


def test_training_does_not_depend_on_num_workers(tmp_path):
    """Augmentation is seeded per sample and the loader leaves the model's RNG (dropout) alone."""
    runs = {}
    for workers in (0, 2):
        cfg = toy_config(str(tmp_path / f"workers{workers}"))
        cfg.data.num_workers = workers
        trainer, _ = train(cfg)
        losses = iter_losses(tmp_path / f"workers{workers}", 0) + iter_losses(tmp_path / f"workers{workers}", 1)
        runs[workers] = (losses, [p.detach().clone() for p in trainer.model.parameters()])
    assert len(runs[0][0]) == 8 and runs[0][0] == runs[2][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[2][1]))
    # and a run interrupted with 0 workers resumes with 2 as if nothing had changed
    resumed = toy_config(str(tmp_path / "resumed"), resume=str(tmp_path / "workers0" / "checkpoint0000.pth"))
    resumed.data.num_workers = 2
    trainer, _ = train(resumed)
    assert iter_losses(tmp_path / "resumed", 1) == iter_losses(tmp_path / "workers0", 1)
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), runs[0][1]))


def test_samples_do_not_depend_on_the_number_of_processes():
    task = ToyTask(n_train=10)
    dataset = task.build_dataset(toy_config("unused"), "train")

    def samples(info: DistInfo, epoch: int) -> dict[int, torch.Tensor]:
        loader = EpochLoader(dataset, lambda batch: batch[0], 1, 0, seed=7, info=info)
        return {i: x for x, _, i in loader.epoch(epoch)}

    for epoch in (0, 1):
        single = samples(DistInfo(), epoch)
        ranks = [samples(DistInfo(rank=r, world_size=2), epoch) for r in (0, 1)]
        assert sorted(single) == list(range(10)) and len(ranks[0]) == len(ranks[1]) == 5
        assert sorted({**ranks[0], **ranks[1]}) == list(range(10))  # the ranks split the epoch
        assert all(torch.equal(x, single[i]) for rank in ranks for i, x in rank.items())
        assert not torch.equal(single[0], dataset.x[0])  # augmented
    assert not torch.equal(samples(DistInfo(), 0)[3], samples(DistInfo(), 1)[3])  # new draw each epoch


def test_resume_rejects_a_changed_schedule_and_weight_only_files(tmp_path):
    cfg = toy_config(str(tmp_path), resume=None)
    cfg.optim.epochs = 1
    train(cfg)
    changed = toy_config(str(tmp_path / "b"), resume=str(tmp_path / "checkpoint.pth"))
    changed.optim.lr_drop = [5]
    with pytest.raises(CheckpointError, match="lr_drop"):
        Trainer(changed, ToyTask(), progress=False, dist_info=DistInfo(), device=CPU)
    torch.save({"model": ToyModel(0.3).state_dict()}, tmp_path / "weights.pth")
    weights_only = toy_config(str(tmp_path / "c"), resume=str(tmp_path / "weights.pth"))
    with pytest.raises(CheckpointError, match="pretrain-weights"):
        Trainer(weights_only, ToyTask(), progress=False, dist_info=DistInfo(), device=CPU)


def test_non_finite_loss_names_epoch_iteration_and_key(tmp_path):
    cfg = toy_config(str(tmp_path))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, iteration 2: loss_l1=nan"):
        train(cfg, ToyTask(nan_at=6))  # 4 iterations per epoch -> call 6 is epoch 1, iteration 2


def test_max_iters_per_epoch_caps_training(tmp_path):
    cfg = toy_config(str(tmp_path), max_iters_per_epoch=2, val_freq=0)
    cfg.optim.epochs = 1
    task = ToyTask()
    train(cfg, task)
    iters, _ = read_log(tmp_path / "log.jsonl")
    assert [r["iter"] for r in iters] == [0, 1] and task.evaluated_epochs == []


# ---------------------------------------------------------------------------- CLI, registry, launch detection
def test_cli_trains_registered_task(tmp_path, monkeypatch):
    from seqformer.tools import train as train_tool

    monkeypatch.setitem(task_registry.TASK_REGISTRY, "vis", "engine_toy:ToyTask")
    config = tmp_path / "toy.yaml"
    config.write_text("optim: {epochs: 1, batch_size: 4, lr_drop: [5]}\ntrain: {device: cpu, log_every: 1}\n")
    parser = argparse.ArgumentParser()
    train_tool.add_arguments(parser)
    args = parser.parse_args(["--config", str(config), "optim.lr=0.003", "--output-dir", str(tmp_path / "out"),
                              "--no-progress"])
    assert train_tool.build_config(args).optim.lr == 0.003
    assert train_tool.run(args) == 0
    assert (tmp_path / "out" / "checkpoint0000.pth").is_file()
    assert read_log(tmp_path / "out" / "log.jsonl")[0][0]["lr"] == 0.003


def test_get_task_unknown_name():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        task_registry.get_task("nope")


def test_launch_detection_from_environment(monkeypatch):
    monkeypatch.setattr(os, "environ", {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert detect_launch() == DistInfo(3, 8, 1)
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "5", "SLURM_NODELIST": "n[1-2]",
           "MASTER_ADDR": "10.1.2.3"}
    monkeypatch.setattr(os, "environ", dict(env))
    assert detect_launch() == DistInfo(5, 16, 5)
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("5", "16", "5")
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("10.1.2.3", "29500")
    monkeypatch.setattr(os, "environ", {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})
    assert detect_launch() == DistInfo()


class _SkippingTask(ToyTask):
    """Samples whose id is a multiple of 4 are unreadable (returned as None, as AVA does with skipping on)."""

    def build_dataset(self, cfg, split):
        base = super().build_dataset(cfg, split)
        if split != "train":
            return base

        class Skipping(torch.utils.data.Dataset):
            def __init__(self):
                self.skipped = 0

            def __len__(self):
                return len(base)

            def __getitem__(self, i):
                if i % 4 == 0:
                    self.skipped += 1
                    return None
                return base[i]

            def skip_counts(self):
                return {"skipped_samples": self.skipped}

        return Skipping()

    def collate_fn(self, batch):
        kept = [b for b in batch if b is not None]
        return super().collate_fn(kept) if kept else (None, [])


def test_skipped_samples_are_counted_and_empty_batches_skipped(tmp_path):
    cfg = toy_config(str(tmp_path))
    cfg.optim.batch_size = 1
    cfg.optim.epochs = 1
    trainer = Trainer(cfg, _SkippingTask(n_train=8, augment=False, dropout=0.0), progress=False)
    trainer.fit()
    epoch_stats = read_log(tmp_path / "log.jsonl")[1][0]
    assert epoch_stats["train_skipped_batches"] == 2  # ids 0 and 4, batch size 1
    assert epoch_stats["train_skipped_skipped_samples"] == 2
    assert epoch_stats["train_loss"] > 0
