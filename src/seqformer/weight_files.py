"""Opening weight files safely: the one place that reads checkpoints and pretrained weights from disk.

Every reader in the toolkit -- released SeqFormer checkpoints, our training checkpoints,
ImageNet/Swin backbones, ir-CSN caffe2 releases -- comes through here, so the safety rules hold
everywhere: PyTorch files load with ``weights_only=True`` (only the original ``main.py``'s
``argparse.Namespace`` is admitted besides tensors), caffe2 pickles go through an unpickler that
admits numpy arrays and nothing else, and a file that cannot be read raises
:class:`CheckpointError` naming it.  Nothing is ever downloaded.

``read_state_dict`` also unwraps the usual containers (``{'model': sd}``, ``{'state_dict': sd}``,
one nested in the other) and a DDP ``module.`` prefix, so callers only map key names.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqformer.errors import SeqFormerError
from seqformer.utils.safe_pickle import NumpyOnlyUnpickler


class CheckpointError(SeqFormerError, ValueError, RuntimeError):
    """A weight file that is missing, unreadable, or does not fit the model (message names file and key).

    Derives from both ``ValueError`` (what the backbone loaders raised) and ``RuntimeError`` (what
    the checkpoint loaders raised), so existing ``except`` clauses keep working.
    """


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: {what} file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: is a directory, expected a {what} file")


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure becomes a :class:`CheckpointError`."""
    path = Path(path)
    _require_file(path, what)
    _require_torch_magic(path, what)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # the original main.py stores its args
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many unrelated types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or wrong format?): "
                              f"{_first_line(exc)}") from None


def _require_torch_magic(path: Path, what: str) -> None:
    """A PyTorch file is a zip archive (``torch.save`` since 1.6) or a legacy pickle (protocol >= 2, byte
    0x80); anything else (a text file, an HTML error page saved as .pth) gets a message saying so
    instead of the unpickler's ``KeyError: 101``."""
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return
    if not head:
        raise CheckpointError(f"{path}: empty file, expected a {what}")
    text = head.decode("utf-8", "replace")
    kind = "a text file" if text.isprintable() or text.strip().isprintable() else "an unknown binary format"
    raise CheckpointError(f"{path}: not a PyTorch {what} (it starts with {head[:10]!r}: {kind}); "
                          f"expected a file written by torch.save")


def load_numpy_pickle(path: str | Path, what: str = "caffe2 blob pickle") -> Any:
    """A (Python-2 or 3) pickle of dicts/lists of numpy arrays, through :class:`NumpyOnlyUnpickler`."""
    path = Path(path)
    _require_file(path, what)
    try:
        with path.open("rb") as f:
            return NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # a refused global, a truncated stream, ...: all mean "not this kind of file"
        raise CheckpointError(f"{path}: not a {what} ({_first_line(exc)})") from None


def load_mat_file(path: str | Path) -> dict[str, np.ndarray]:
    """The variables of a MATLAB ``.mat`` file (caffe2 releases of ir-CSN), header entries dropped."""
    import scipy.io

    path = Path(path)
    _require_file(path, "MATLAB .mat")
    try:
        blobs = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several unrelated types for corrupt files
        raise CheckpointError(f"{path}: not a readable MATLAB .mat file ({_first_line(exc)})") from None
    return {k: v for k, v in blobs.items() if not k.startswith("__")}  # __header__, __version__, __globals__


def unwrap_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside ``{'model': sd}`` / ``{'state_dict': sd}`` (or one nested in the other),
    checked to map strings to tensors, with a DDP ``module.`` prefix removed."""
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("model", "state_dict") if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: expected a non-empty state dict (or a dict with a 'model' state dict), "
                              f"got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__}); "
                                  "expected a state dict of tensors")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from a DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict stored in a ``.pth``/``.pt`` (checkpoint dict or bare) or ``.safetensors`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        _require_file(path, what)
        try:
            return unwrap_state_dict(load_file(str(path)), path)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    return unwrap_state_dict(load_torch_file(path, what), path)


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
    """Strictly load a released SeqFormer checkpoint or one of ours into ``model``.

    A released checkpoint is a ``torch.save``d dict whose ``model`` entry is the state dict of the
    original ``SeqFormer`` module (keys ``detr.*``, ``controller.*``, ``mask_head.*``); our training
    checkpoints use the same layout, so one loader serves both.
    """
    state = read_state_dict(path)
    check_compatible(model, state, str(path))
    model.load_state_dict(state, strict=True)
