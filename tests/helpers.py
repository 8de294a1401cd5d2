"""Small helpers shared by test modules."""
from __future__ import annotations

from seqformer.engine.task import get_task


def build_model_for(cfg):
    """The task's model for ``cfg`` (the task adapter is the one place that picks it)."""
    return get_task(cfg.model.task).build_model(cfg)
