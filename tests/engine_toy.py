"""A tiny regression task implementing the engine's Task contract, shared by the engine tests.

Randomness that resume must reproduce: dataset augmentation drawing from ``torch``, ``numpy`` and
``random`` (``augment=True``) and dropout in the model (``dropout > 0``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from seqformer.config import Config

FEATURES = 4


@dataclass
class ToyInputs:
    x: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ToyInputs":
        return ToyInputs(self.x.to(device, non_blocking=non_blocking))


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, augment: bool):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, FEATURES, generator=g)
        self.y = torch.stack([self.x[:, :2].sum(1), self.x[:, 2] - self.x[:, 3]], 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x = self.x[i].clone()
        if self.augment:
            x += 0.1 * torch.randn(FEATURES) + 0.05 * float(np.random.randn()) + 0.05 * random.random()
        return x, self.y[i], i


class ToyModel(nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(FEATURES, 16))  # "backbone.0.*" -> backbone lr group
        self.sampling_offsets = nn.Linear(16, 16)  # -> linear_proj lr group
        self.dropout = nn.Dropout(dropout)
        self.class_embed = nn.Linear(16, 2)

    def forward(self, inputs: ToyInputs, targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        h = torch.relu(self.backbone(inputs.x))
        h = self.dropout(torch.relu(self.sampling_offsets(h)))
        return {"pred": self.class_embed(h)}


class ToyCriterion(nn.Module):
    """MSE and L1 enter the loss (weights 1 and 0.5); ``abs_mean`` is only logged.

    ``nan_at`` = (epoch-independent) call number at which ``loss_l1`` becomes NaN.
    """

    def __init__(self, nan_at: int | None = None):
        super().__init__()
        self.weight_dict = {"loss_mse": 1.0, "loss_l1": 0.5}
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        y = torch.stack([t["y"] for t in targets])
        pred = outputs["pred"]
        l1 = (pred - y).abs().mean()
        if self.nan_at is not None and self.calls == self.nan_at:
            l1 = l1 * float("nan")
        self.calls += 1
        return {"loss_mse": ((pred - y) ** 2).mean(), "loss_l1": l1, "abs_mean": pred.abs().mean()}


class ToyTask:
    name = "toy"
    best_metric: str | None = "score"

    def __init__(self, n_train: int = 16, augment: bool = True, dropout: float = 0.3,
                 nan_at: int | None = None, scripted_scores: list[float] | None = None):
        self.n_train = n_train
        self.augment = augment
        self.dropout = dropout
        self.nan_at = nan_at
        self.scripted_scores = list(scripted_scores) if scripted_scores else None
        self.evaluated_epochs: list[int] = []

    def build_model(self, cfg: Config) -> nn.Module:
        return ToyModel(self.dropout)

    def build_criterion(self, cfg: Config) -> nn.Module:
        return ToyCriterion(self.nan_at)

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        return ToyDataset(self.n_train if split == "train" else 8, augment=self.augment and split == "train")

    def collate_fn(self, batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[ToyInputs, list[dict[str, Any]]]:
        xs, ys, ids = zip(*batch)
        return ToyInputs(torch.stack(xs)), [{"y": y, "id": i} for y, i in zip(ys, ids)]

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str,
                 epoch: int) -> dict[str, float]:
        self.evaluated_epochs.append(epoch)
        if self.scripted_scores is not None:
            return {"score": self.scripted_scores.pop(0)}
        data = self.build_dataset(cfg, "val")
        pred = model(ToyInputs(data.x.to(device)), [])["pred"]
        return {"score": -float(((pred - data.y.to(device)) ** 2).mean())}


def toy_config(output_dir: str, **train: Any) -> Config:
    """A small CPU config: 2 epochs, per-iteration logging, LR drop after the first epoch."""
    cfg = Config()
    cfg.optim.lr = 1e-2
    cfg.optim.lr_backbone = 5e-3
    cfg.optim.lr_drop = [1]
    cfg.optim.lr_gamma = 0.5
    cfg.optim.epochs = 2
    cfg.optim.batch_size = 4
    cfg.optim.clip_max_norm = 0.5
    cfg.data.num_workers = 0
    cfg.train.output_dir = output_dir
    cfg.train.device = "cpu"
    cfg.train.log_every = 1
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg
