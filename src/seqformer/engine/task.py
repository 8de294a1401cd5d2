"""The contract between the task-agnostic training engine and a task (VIS, AVA, or a test's toy task).

The engine owns everything that is the same for every task: optimiser, schedule, checkpoints,
resume, seeding, distributed setup and logging.  A task owns what differs: the model, the loss,
the data and the evaluation.  The engine calls, per training iteration::

    inputs, targets = task.collate_fn(samples)          # via the DataLoader
    outputs = model(inputs.to(device), targets_on_device)
    loss_dict = criterion(outputs, targets_on_device)
    loss = sum(loss_dict[k] * criterion.weight_dict[k] for k in criterion.weight_dict)

Tasks are looked up by ``cfg.model.task`` through :func:`get_task`, which imports the task module
only when it is asked for, so the engine never depends on a task's (heavy) imports.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from seqformer.config import Config

# task name -> "module:Class"; the class is instantiated without arguments.
TASK_REGISTRY: dict[str, str] = {
    "vis": "seqformer.tasks.vis:VISTask",
    "ava": "seqformer.tasks.ava:AVATask",
    "jhmdb": "seqformer.tasks.jhmdb:JhmdbTask",
    "ucf24": "seqformer.tasks.jhmdb:Ucf24Task",
}


@runtime_checkable
class Task(Protocol):
    """What a task provides to :class:`seqformer.engine.trainer.Trainer`.

    Attributes:
        name: short task name (``"vis"``, ``"ava"``).
        best_metric: key of the metric returned by :meth:`evaluate` that selects
            ``checkpoint_best.pth`` (higher is better); ``None`` keeps no best checkpoint.
    """

    name: str
    best_metric: str | None

    def build_model(self, cfg: Config) -> nn.Module:
        """The model; ``model(inputs, targets)`` returns the outputs the criterion consumes."""
        ...

    def build_criterion(self, cfg: Config) -> nn.Module:
        """``criterion(outputs, targets) -> dict[str, Tensor]`` with attribute ``weight_dict: dict[str, float]``.

        Only keys present in ``weight_dict`` enter the optimised loss; the others are logged.
        """
        ...

    def build_dataset(self, cfg: Config, split: str) -> torch.utils.data.Dataset:
        """The dataset of ``split`` (``"train"`` or ``"val"``); random augmentation must draw from the
        ``random`` / ``numpy.random`` / ``torch`` global generators, which the engine seeds per worker."""
        ...

    def collate_fn(self, batch: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
        """``(inputs, targets)``: ``inputs`` has ``.to(device)`` (e.g. ``ClipBatch``), ``targets`` is a list
        of dicts whose tensor values the engine moves to the device (other values are kept)."""
        ...

    def evaluate(self, model: nn.Module, cfg: Config, device: torch.device, output_dir: str,
                 epoch: int) -> dict[str, float]:
        """Validation metrics.  Called on every rank with the unwrapped model in eval mode; the
        metrics must be returned on rank 0 (other ranks may return ``{}``)."""
        ...


def get_task(name: str) -> Task:
    """Instantiate the task registered under ``name`` (importing its module now)."""
    if name not in TASK_REGISTRY:
        raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASK_REGISTRY))}")
    module_name, _, class_name = TASK_REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ImportError(f"task {name!r}: cannot import {module_name} ({e})") from e
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise ImportError(f"task {name!r}: {module_name} defines no {class_name}") from None
    return cls()
