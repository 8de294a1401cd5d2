"""Loading model weights from released SeqFormer checkpoints and our own training checkpoints.

A released checkpoint is a ``torch.save``d dict whose ``model`` entry is the state dict of the
original ``SeqFormer`` module (keys ``detr.*``, ``controller.*``, ``mask_head.*``).  Our training
checkpoints use the same key layout, so one loader serves both.  Files are read with
``weights_only=True``; every failure names the file and the first offending key.
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn
from seqformer.errors import SeqFormerError


class CheckpointError(SeqFormerError, RuntimeError):
    pass


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict stored in ``path`` (a checkpoint dict, or a bare state dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        # the original main.py stores its argparse.Namespace under 'args'; allow exactly that class
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or wrong format?): {first}") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict, got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__})")
    if all(k.startswith("module.") for k in obj):  # saved from a DDP wrapper
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_compatible(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise on the first missing, unexpected or wrongly shaped key (strict loading, clear message)."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: missing key {key!r} (expected shape {list(tensor.shape)}); "
                                  f"{sum(k not in state for k in expected)} keys missing in total")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: key {key!r} has shape {list(state[key].shape)}, "
                                  f"the model expects {list(tensor.shape)} (wrong backbone or num_classes?)")
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected key {key!r}; "
                                  f"{sum(k not in expected for k in state)} unexpected keys in total")


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Strictly load a released or project checkpoint into ``model`` (raises :class:`CheckpointError`)."""
    state = read_state_dict(path)
    check_compatible(model, state, str(path))
    model.load_state_dict(state, strict=True)
