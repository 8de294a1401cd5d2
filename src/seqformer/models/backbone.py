"""2-D backbones (ResNet / ResNeXt / Swin), sine or learned position encodings, and the Joiner.

The module tree mirrors the original so that released SeqFormer checkpoints load without renaming:
``Joiner`` is an ``nn.Sequential`` whose index 0 is a :class:`Backbone2D` (with ``body``) and index 1 the
position encoding, hence keys ``backbone.0.body.conv1.weight`` / ``backbone.0.body.patch_embed.proj.weight``.
Pretrained weights are only ever read from local files (:func:`load_backbone_weights`); nothing is downloaded.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from seqformer.models.swin import SWIN_CONFIGS, build_swin

__all__ = [
    "FrozenBatchNorm2d", "Backbone2D", "PositionEmbeddingSine", "PositionEmbeddingLearned", "Joiner",
    "build_backbone", "load_backbone_weights", "WeightLoadReport", "RESNET_NAMES", "SWIN_NAMES",
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


def _interpolate_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # Nearest-neighbour resize exactly as the original (a padded pixel stays padding at every level).
    return F.interpolate(mask[None].float(), size=size).to(torch.bool)[0]


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
        return [(x, _interpolate_mask(mask, x.shape[-2:])) for _, x in sorted(maps.items())]


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine encoding from the padding mask: channels [y sin/cos interleaved ; x sin/cos interleaved].

    With ``normalize`` the cumulative coordinates are mapped to (v - 0.5) / (v_last + 1e-6) * scale, so the
    encoding covers [0, scale) of each frame's valid region regardless of its size.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000, normalize: bool = True,
                 scale: float | None = None):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [N, h, w] bool (True = padding) -> [N, 2 * num_pos_feats, h, w] float32."""
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        x = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
            x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute encoding: 50 column and 50 row embeddings, channels [x ; y] (maps up to 50x50)."""

    max_size = 50

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.row_embed = nn.Embedding(self.max_size, num_pos_feats)
        self.col_embed = nn.Embedding(self.max_size, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [N, h, w] (only its shape is used) -> [N, 2 * num_pos_feats, h, w]."""
        n, h, w = mask.shape
        if h > self.max_size or w > self.max_size:
            raise ValueError(f"learned position embedding supports maps up to {self.max_size}x{self.max_size}, "
                             f"got {h}x{w}")
        x_emb = self.col_embed(torch.arange(w, device=mask.device))  # [w, F]
        y_emb = self.row_embed(torch.arange(h, device=mask.device))  # [h, F]
        pos = torch.cat([x_emb.unsqueeze(0).expand(h, -1, -1), y_emb.unsqueeze(1).expand(-1, w, -1)], dim=-1)
        return pos.permute(2, 0, 1).unsqueeze(0).expand(n, -1, -1, -1)


class Joiner(nn.Sequential):
    """``[backbone, position_encoding]``; returns per-level (map, mask) and matching position maps."""

    def __init__(self, backbone: Backbone2D, position_embedding: nn.Module):
        super().__init__(backbone, position_embedding)
        self.strides = list(backbone.strides)
        self.num_channels = list(backbone.num_channels)

    def forward(self, tensors: torch.Tensor, mask: torch.Tensor
                ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
        features = self[0](tensors, mask)
        pos = [self[1](level_mask).to(x.dtype) for x, level_mask in features]
        return features, pos


def build_position_encoding(kind: str = "sine", hidden_dim: int = 256) -> nn.Module:
    if kind in ("sine", "v2"):
        return PositionEmbeddingSine(hidden_dim // 2, normalize=True)
    if kind in ("learned", "v3"):
        return PositionEmbeddingLearned(hidden_dim // 2)
    raise ValueError(f"unknown position_embedding {kind!r}; choose 'sine' or 'learned'")


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
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except Exception as exc:
            raise ValueError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    for _ in range(2):  # {'model': {...}}, {'state_dict': {...}}, or one nested in the other
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("model", "state_dict") if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a non-empty state dict, got {type(obj).__name__}")
    bad = next((k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
    if bad is not None:
        raise ValueError(f"{path}: entry {bad!r} is not a tensor; expected a state dict of tensors")
    state = dict(obj)
    for prefix in _BODY_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_weights(backbone: Backbone2D | Joiner, path: str | Path) -> WeightLoadReport:
    """Load local pretrained weights into ``backbone.body`` and report what did not match.

    Accepts torchvision-style ResNet state dicts, official Swin releases (``{'model': ...}``), files wrapped
    in ``{'model'|'state_dict': ...}``, SeqFormer/DETR checkpoints (their ``backbone.0.body.`` part) and
    ``.safetensors``.  Classifier keys (``fc.*``, ``head.*``) and derived buffers are ignored.  Raises
    ValueError naming the file and key when a shape differs or when no key matches at all.
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
        raise ValueError(f"{path}: no key matches the {backbone.name} backbone (first key in file: {first!r}; "
                         f"expected e.g. {next(iter(target))!r})")
    for key in matched:
        if source[key].shape != target[key].shape:
            raise ValueError(f"{path}: shape mismatch for {key!r}: file {tuple(source[key].shape)} vs "
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
