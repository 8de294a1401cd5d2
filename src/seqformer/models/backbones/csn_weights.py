"""Load ir-CSN weights from local files: caffe2 releases (``.mat`` / ``.pkl``) or PyTorch state dicts.

caffe2 blob layout of the VMZ releases (e.g. ``irCSN_50_ft_kinetics_from_ig65m_f233743920.mat``, the file the
fork and TubeR load with ``scipy.io.loadmat``):

* stem: ``conv1_w`` and ``conv1_spatbn_relu_{s,b,rm,riv}``;
* block ``i`` (one counter over all stages, so stage starts are ``[0,3,7,13]`` for CSN-50 and ``[0,3,11,47]``
  for CSN-152): ``comp_{i}_conv_{1,3,4}_w``, ``comp_{i}_spatbn_{1,3,4}_{s,b,rm,riv}``; the first block of a
  stage also has ``shortcut_projection_{i}_w`` and ``shortcut_projection_{i}_spatbn_{s,b,rm,riv}``;
* classifier ``last_out_L400_{w,b}`` and solver state (``*_momentum``, ``lr``, ``model_iter``): not loaded.

BatchNorm suffixes: ``_s`` -> ``weight``, ``_b`` -> ``bias``, ``_rm`` -> ``running_mean`` and ``_riv`` ->
``running_var``, copied without any transform.  Despite its name, ``_riv`` holds the running *variance*:
caffe2's ``brew.spatial_bn`` creates it initialised to 1 and feeds it to ``SpatialBN`` as the ``var`` input
(the op computes ``scale / sqrt(var + eps)``); the fork and TubeR loaders copy it to ``running_var`` as is.
Conv weights are stored ``[out, in/groups, t, h, w]`` like PyTorch; BN vectors come back from ``loadmat`` as
``[1, C]`` and are flattened.
"""
from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqformer.weight_files import CheckpointError, load_mat_file, load_numpy_pickle, load_torch_file, unwrap_state_dict

__all__ = ["CSNWeightReport", "caffe2_blob_names", "load_csn_weights"]

log = logging.getLogger(__name__)

_STAGES = ("layer1", "layer2", "layer3", "layer4")
_BN_SUFFIX = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
# Blobs that are network weights; any of them left unused means the file is for another depth.
_CAFFE2_WEIGHT = re.compile(r"conv1_w|conv1_spatbn_relu_(s|b|rm|riv)|comp_\d+_(conv_[134]_w|spatbn_[134]_(s|b|rm|riv))"
                            r"|shortcut_projection_\d+_(w|spatbn_(s|b|rm|riv))")
_CLASSIFIER_PREFIXES = ("out_fc.", "fc.", "last_out_L400")
_ANCHOR = "layer1.0.conv3.weight"  # locates the body inside prefixed checkpoints


@dataclass
class CSNWeightReport:
    path: str
    source_format: str  # "caffe2-mat" | "caffe2-pkl" | "state_dict"
    loaded: list[str] = field(default_factory=list)  # model keys set from the file
    ignored: list[str] = field(default_factory=list)  # file entries deliberately not used (classifier, solver)


def _body(model: nn.Module) -> nn.Module:
    """Accept an ``IrCSN`` or anything holding one as ``body`` (``Backbone3D``)."""
    return model.body if hasattr(model, "body") and hasattr(model.body, "layer1") else model


def caffe2_blob_names(model: nn.Module) -> dict[str, str]:
    """Map every weight/buffer key of an ir-CSN body (except ``num_batches_tracked``) to its caffe2 blob."""
    body = _body(model)
    names: dict[str, str] = {"conv1.weight": "conv1_w"}
    for attr, suffix in _BN_SUFFIX.items():
        names[f"bn1.{attr}"] = f"conv1_spatbn_relu_{suffix}"
    i = 0
    for stage in _STAGES:
        for k, block in enumerate(getattr(body, stage)):
            prefix = f"{stage}.{k}."
            for n in (1, 3, 4):
                names[f"{prefix}conv{n}.weight"] = f"comp_{i}_conv_{n}_w"
                for attr, suffix in _BN_SUFFIX.items():
                    names[f"{prefix}bn{n}.{attr}"] = f"comp_{i}_spatbn_{n}_{suffix}"
            if block.down_sample is not None:
                names[f"{prefix}down_sample.0.weight"] = f"shortcut_projection_{i}_w"
                for attr, suffix in _BN_SUFFIX.items():
                    names[f"{prefix}down_sample.1.{attr}"] = f"shortcut_projection_{i}_spatbn_{suffix}"
            i += 1
    return names


# ------------------------------------------------------------------------------------------------ readers

def _read_caffe2_pickle(path: Path) -> dict[str, np.ndarray]:
    obj = load_numpy_pickle(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("blobs"), Mapping):
        obj = obj["blobs"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of caffe2 blobs, got {type(obj).__name__}")
    return dict(obj)


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    obj = unwrap_state_dict(load_torch_file(path, "ir-CSN weights"), path)
    anchor = next((k for k in obj if k.endswith(_ANCHOR)), None)
    if anchor is None:
        raise CheckpointError(f"{path}: no ir-CSN weights found (no key ending in {_ANCHOR!r}; "
                              f"first key {next(iter(obj))!r})")
    prefix = anchor[: -len(_ANCHOR)]  # '', 'backbone.', 'backbone.0.body.', 'module.backbone.0.body.', ...
    return {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------------------------ loading

def _state_from_caffe2(blobs: dict[str, np.ndarray], body: nn.Module, path: Path
                       ) -> tuple[dict[str, torch.Tensor], list[str]]:
    target = body.state_dict()
    names = caffe2_blob_names(body)
    state: dict[str, torch.Tensor] = {}
    for key, blob in names.items():
        if blob not in blobs:
            raise CheckpointError(f"{path}: missing caffe2 blob {blob!r} for {key!r} "
                             f"({sum(b not in blobs for b in names.values())} of {len(names)} blobs missing)")
        array = np.asarray(blobs[blob])
        expected = tuple(target[key].shape)
        if len(expected) == 1 and array.size == expected[0] and max(array.shape, default=1) == array.size:
            array = array.reshape(-1)  # loadmat returns vectors as [1, C]
        if tuple(array.shape) != expected:
            raise CheckpointError(f"{path}: blob {blob!r} has shape {list(array.shape)} but {key!r} expects "
                             f"{list(expected)} (a file for another ir-CSN depth?)")
        state[key] = torch.from_numpy(np.ascontiguousarray(array)).to(target[key].dtype)
    used = set(names.values())
    extra = sorted(b for b in blobs if b not in used)
    stray = next((b for b in extra if _CAFFE2_WEIGHT.fullmatch(b)), None)
    if stray is not None:
        raise CheckpointError(f"{path}: blob {stray!r} has no place in the ir-CSN-{getattr(body, 'depth', '?')} "
                         "model (a file for another depth?)")
    return state, extra


def _state_from_torch(source: dict[str, torch.Tensor], body: nn.Module, path: Path
                      ) -> tuple[dict[str, torch.Tensor], list[str]]:
    target = body.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key, tensor in target.items():
        if key not in source:
            if key.endswith("num_batches_tracked"):
                continue
            missing = sum(k not in source and not k.endswith("num_batches_tracked") for k in target)
            raise CheckpointError(f"{path}: missing key {key!r} (shape {list(tensor.shape)}); {missing} keys missing")
        if tuple(source[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: key {key!r} has shape {list(source[key].shape)}, the ir-CSN-"
                             f"{getattr(body, 'depth', '?')} model expects {list(tensor.shape)}")
        state[key] = source[key]
    ignored = sorted(k for k in source if k not in target and k.startswith(_CLASSIFIER_PREFIXES))
    stray = next((k for k in source if k not in target and k not in ignored), None)
    if stray is not None:
        raise CheckpointError(f"{path}: unexpected key {stray!r} (not in the ir-CSN-{getattr(body, 'depth', '?')} "
                         "model; a file for another depth or backbone?)")
    return state, ignored


def load_csn_weights(model: nn.Module, path: str | Path) -> CSNWeightReport:
    """Load local ir-CSN weights into ``model`` (an ``IrCSN`` or a ``Backbone3D``) and report what was used.

    ``.mat`` -> caffe2 blobs via ``scipy.io.loadmat``; ``.pkl``/``.pickle`` -> caffe2 blobs (``{'blobs': ...}``
    or a flat dict, numpy arrays only) unless the file is a PyTorch zip; anything else -> ``torch.load`` with
    ``weights_only=True``, unwrapping ``state_dict``/``model`` and any key prefix in front of the body
    (``backbone.``, ``backbone.0.body.``, ``module.``...).  Every model weight must be present with its exact
    shape, and no file weight may be left over; otherwise :class:`CheckpointError` names the file and the first offending key.
    Classifier (``out_fc``/``last_out_L400``) and solver entries are skipped and listed in ``ignored``.
    """
    body = _body(model)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        fmt = "caffe2-mat"
        state, ignored = _state_from_caffe2(load_mat_file(path), body, path)
    elif suffix in (".pkl", ".pickle") and not zipfile.is_zipfile(path):
        fmt = "caffe2-pkl"
        state, ignored = _state_from_caffe2(_read_caffe2_pickle(path), body, path)
    else:
        fmt = "state_dict"
        state, ignored = _state_from_torch(_read_torch(path), body, path)
    body.load_state_dict(state, strict=False)
    log.info("loaded %d ir-CSN tensors from %s (%s); ignored %d entries", len(state), path, fmt, len(ignored))
    return CSNWeightReport(str(path), fmt, loaded=list(state), ignored=ignored)
