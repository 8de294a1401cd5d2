"""2-D backbones (ResNet / ResNeXt / Swin) and their local pretrained weights.

The module tree mirrors the original so that released SeqFormer checkpoints load without renaming:
``Joiner`` is an ``nn.Sequential`` whose index 0 is a :class:`Backbone2D` (with ``body``) and index 1 the
position encoding, hence keys ``backbone.0.body.conv1.weight`` / ``backbone.0.body.patch_embed.proj.weight``.
Pretrained weights are only ever read from local files (:func:`load_backbone_weights`); nothing is downloaded.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from seqformer.models.backbones.swin import SWIN_CONFIGS, build_swin
from seqformer.models.position_encoding import Joiner, build_position_encoding
from seqformer.structures import interpolate_mask
from seqformer.weight_files import CheckpointError, read_state_dict

__all__ = [
    "FrozenBatchNorm2d", "Backbone2D", "build_backbone", "load_backbone_weights", "WeightLoadReport", "RESNET_NAMES", "SWIN_NAMES",
]

log = logging.getLogger(__name__)

_RESNETS: dict[str, Callable[..., nn.Module]] = {
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnext101_32x8d": torchvision.models.resnext101_32x8d,  # what the released X101 model uses
    "resnext101_64x4d": torchvision.models.resnext101_64x4d,  # the original's x101_64d.py (same definition)
}
RESNET_NAMES = tuple(_RESNETS)
SWIN_NAMES = tuple(SWIN_CONFIGS)
_SWIN_STAGES = (1, 2, 3)  # strides 8, 16, 32


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine terms, stored as buffers (so never trained or synced).

    ``num_batches_tracked`` from ordinary BatchNorm state dicts is accepted and dropped.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        if x.dtype in (torch.float16, torch.bfloat16):
            # under autocast: stay in the convolutions' dtype (a float32 result would be cast back by the
            # next convolution, two extra passes over the largest activations of the model)
            return torch.addcmul(shift.to(x.dtype).view(1, -1, 1, 1), x, scale.to(x.dtype).view(1, -1, 1, 1))
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class Backbone2D(nn.Module):
    """Feature extractor returning (map, padding mask) at strides 8, 16, 32 (C3, C4, C5).

    ResNets: torchvision definitions with :class:`FrozenBatchNorm2d`; the stem and ``layer1`` are frozen
    (everything when ``train_backbone`` is False).  Swin: nothing frozen unless ``train_backbone`` is False.
    """

    def __init__(self, name: str, *, train_backbone: bool = True, dilation: bool = False):
        super().__init__()
        self.name = name
        if name in _RESNETS:
            net = _RESNETS[name](weights=None, replace_stride_with_dilation=[False, False, dilation],
                                 norm_layer=FrozenBatchNorm2d)
            for pname, param in net.named_parameters():
                if not train_backbone or not any(layer in pname for layer in ("layer2", "layer3", "layer4")):
                    param.requires_grad_(False)
            # layer1 is still run (it feeds layer2) but its output is not returned.
            self.body = IntermediateLayerGetter(net, return_layers={"layer2": "1", "layer3": "2", "layer4": "3"})
            self.strides = [8, 16, 16 if dilation else 32]
            self.num_channels = [512, 1024, 2048]
            self._swin_stages: tuple[int, ...] | None = None
        elif name in SWIN_CONFIGS:
            if dilation:
                raise ValueError(f"dilation is only supported for ResNet backbones, not {name!r}")
            self.body = build_swin(name)
            if not train_backbone:
                self.body.requires_grad_(False)
            self.strides = [2 ** (s + 2) for s in _SWIN_STAGES]
            self.num_channels = [self.body.num_features[s] for s in _SWIN_STAGES]
            self._swin_stages = _SWIN_STAGES
        else:
            raise ValueError(f"unknown backbone {name!r}; choose from {sorted(RESNET_NAMES + SWIN_NAMES)}")

    def forward(self, tensors: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """tensors [N, 3, H, W], mask [N, H, W] bool (True = padding) -> [(map [N, C, h, w], mask [N, h, w])]."""
        if tensors.dim() != 4 or mask.shape != (tensors.shape[0],) + tensors.shape[-2:] or mask.dtype != torch.bool:
            raise ValueError(f"expected tensors [N,3,H,W] and a bool mask [N,H,W]; got {tuple(tensors.shape)} "
                             f"and {tuple(mask.shape)} {mask.dtype}")
        if self._swin_stages is None:
            maps = self.body(tensors)
        else:
            maps = self.body(tensors, stages=self._swin_stages)
        return [(x, interpolate_mask(mask, x.shape[-2:])) for _, x in sorted(maps.items())]


def build_backbone(name: str, *, train_backbone: bool = True, dilation: bool = False,
                   position_embedding: str = "sine", hidden_dim: int = 256,
                   weights_path: str | Path | None = None) -> Joiner:
    """The model's ``backbone`` (Joiner); ``weights_path`` optionally loads local ImageNet weights."""
    backbone = Backbone2D(name, train_backbone=train_backbone, dilation=dilation)
    if weights_path is not None:
        load_backbone_weights(backbone, weights_path)
    return Joiner(backbone, build_position_encoding(position_embedding, hidden_dim))


# ----------------------------------------------------------------------------------------------- weights

_CLASSIFIER_PREFIXES = ("fc.", "head.")
# Derived constants that the module recomputes; a file may or may not carry them.
_DERIVED_SUFFIXES = ("num_batches_tracked", "relative_position_index", "attn_mask")
# Prefixes under which a backbone body sits in DDP / SeqFormer / DETR checkpoints.
_BODY_PREFIXES = ("module.detr.backbone.0.body.", "detr.backbone.0.body.", "module.backbone.0.body.",
                  "backbone.0.body.")


@dataclass
class WeightLoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # module keys the file did not provide
    unexpected: list[str] = field(default_factory=list)  # file keys the module does not have


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = read_state_dict(path, "backbone weights")
    for prefix in _BODY_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_backbone_weights(backbone: Backbone2D | Joiner, path: str | Path) -> WeightLoadReport:
    """Load local pretrained weights into ``backbone.body`` and report what did not match.

    Accepts torchvision-style ResNet state dicts, official Swin releases (``{'model': ...}``), files wrapped
    in ``{'model'|'state_dict': ...}``, SeqFormer/DETR checkpoints (their ``backbone.0.body.`` part) and
    ``.safetensors``.  Classifier keys (``fc.*``, ``head.*``) and derived buffers are ignored.  Raises
    :class:`CheckpointError` naming the file and key when a shape differs or when no key matches at all.
    """
    if isinstance(backbone, Joiner):
        backbone = backbone[0]
    path = Path(path)
    source = {k: v for k, v in _read_state_dict(path).items()
              if not k.startswith(_CLASSIFIER_PREFIXES) and not k.endswith(_DERIVED_SUFFIXES)}
    target = {k: v for k, v in backbone.body.state_dict().items() if not k.endswith(_DERIVED_SUFFIXES)}
    matched = [k for k in source if k in target]
    if not matched:
        first = next(iter(source), "<none>")
        raise CheckpointError(f"{path}: no key matches the {backbone.name} backbone (first key in file: {first!r}; "
                         f"expected e.g. {next(iter(target))!r})")
    for key in matched:
        if source[key].shape != target[key].shape:
            raise CheckpointError(f"{path}: shape mismatch for {key!r}: file {tuple(source[key].shape)} vs "
                             f"{backbone.name} {tuple(target[key].shape)}")
    backbone.body.load_state_dict({k: source[k] for k in matched}, strict=False)
    report = WeightLoadReport(str(path), loaded=matched,
                              missing=[k for k in target if k not in source],
                              unexpected=[k for k in source if k not in target])
    log.info("loaded %d backbone tensors from %s", len(matched), path)
    if report.missing or report.unexpected:
        log.warning("backbone weights %s: %d missing keys (e.g. %s), %d unexpected keys (e.g. %s)", path,
                    len(report.missing), report.missing[:3], len(report.unexpected), report.unexpected[:3])
    return report
