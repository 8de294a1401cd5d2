"""ir-CSN-50 / ir-CSN-152 3-D backbones (interaction-reduced channel-separated networks) for action detection.

The module tree reproduces the fork's parameter names so its checkpoints and the public
IG-65M/Kinetics weights load unchanged: ``conv1``/``bn1`` stem, ``layer{1..4}.{k}.{conv1,conv3,conv4}``
with ``bn{1,3,4}`` and ``down_sample.{0,1}`` on the first block of every stage.

Differences from the fork, on purpose:

* :class:`Backbone3D` returns **batch-major** maps ``[B, T_l, C, h, w]``; flattening them with
  ``flatten(0, 1)`` gives index ``b * T_l + t``.  The fork flattened time-major (``t * B + b``) and mixed
  clips whenever the batch held more than one.
* ``strides`` are the true spatial strides (``[8, 16, 16]`` with ``last_stride=False``); the fork always
  declared ``[8, 16, 32]``.  Both depths are reachable (the fork could never build CSN-152).
* Temporal strides are a per-stage argument (fork CSN-50: ``[1, 1, 1, 1]``; TubeR / fork CSN-152:
  ``[1, 2, 2, 2]``) and :attr:`Backbone3D.temporal_strides` says how many input frames one output step spans.

Pretrained weights are read only from local files by :func:`load_csn_weights` (in ``csn_weights.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from seqformer.models.backbones.csn_weights import CSNWeightReport, caffe2_blob_names, load_csn_weights
from seqformer.structures import interpolate_mask

__all__ = ["CSN_BLOCKS", "STAGE_NAMES", "CSNBottleneck", "IrCSN", "Backbone3D", "build_csn_backbone",
           "load_csn_weights", "caffe2_blob_names", "CSNWeightReport"]

CSN_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 152: (3, 8, 36, 3)}
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
_PLANES = (64, 128, 256, 512)
_EXPANSION = 4
# caffe2 SpatialBN settings of the released models (the fork keeps them).
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class CSNBottleneck(nn.Module):
    """1x1x1 reduce -> 3x3x3 depthwise (carries the stride) -> 1x1x1 expand (x4), plus the residual.

    ``project`` adds ``down_sample`` (1x1x1 conv + BN with the block's stride) for the residual branch.
    """

    def __init__(self, in_planes: int, planes: int, spatial_stride: int = 1, temporal_stride: int = 1,
                 project: bool = False):
        super().__init__()
        out_planes = planes * _EXPANSION
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv1 = nn.Conv3d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv3 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn3 = _bn(planes)
        self.conv4 = nn.Conv3d(planes, out_planes, kernel_size=1, bias=False)
        self.bn4 = _bn(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.down_sample: nn.Sequential | None = None
        if project:
            self.down_sample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False), _bn(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn3(self.conv3(out)))
        out = self.bn4(self.conv4(out))
        residual = x if self.down_sample is None else self.down_sample(x)
        return self.relu(out + residual)


class IrCSN(nn.Module):
    """The ir-CSN body; ``forward`` returns the requested stage outputs ``{name: [B, C, T_l, h, w]}``.

    Args:
        depth: 50 (blocks ``[3,4,6,3]``) or 152 (``[3,8,36,3]``).
        temporal_strides: temporal stride of layer1..layer4 (fork AVA CSN-50 ``[1,1,1,1]``, TubeR ``[1,2,2,2]``).
        last_stride: layer4 spatial stride 2 (True) or 1 (False, the fork's AVA default: layer4 stays at 1/16).
        frozen_stages: ``-1`` trains everything; ``0`` freezes the stem (``conv1``/``bn1``); ``k >= 1`` freezes
            the stem and layer1..layer k.  The fork's ``tune_point = 4`` equals ``frozen_stages = 2``
            (stem + layer1 + layer2); ``tune_point = frozen_stages + 2`` in general.
        norm_eval: keep the BatchNorms of frozen stages in eval mode during training.  The fork does not
            (``False``): its frozen BNs keep updating their running statistics in train mode.
        out_layers: which stage outputs ``forward`` returns.  Later stages are not computed but keep their
            parameters (checkpoint keys stay complete; DDP then needs ``find_unused_parameters``).
    """

    def __init__(self, depth: int = 50, temporal_strides: Sequence[int] = (1, 1, 1, 1), last_stride: bool = False,
                 frozen_stages: int = 2, norm_eval: bool = False,
                 out_layers: Sequence[str] = ("layer2", "layer3", "layer4")):
        super().__init__()
        if depth not in CSN_BLOCKS:
            raise ValueError(f"ir-CSN depth must be one of {sorted(CSN_BLOCKS)}, got {depth}")
        temporal_strides = tuple(int(s) for s in temporal_strides)
        if len(temporal_strides) != 4 or min(temporal_strides) < 1:
            raise ValueError(f"temporal_strides needs 4 positive ints (layer1..layer4), got {temporal_strides}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in -1..4 (-1 none, 0 stem, k stem+layer1..k), got {frozen_stages}")
        out_layers = tuple(out_layers)
        bad = [n for n in out_layers if n not in STAGE_NAMES]
        if bad or not out_layers or list(out_layers) != sorted(set(out_layers)):
            raise ValueError(f"out_layers must be distinct, ordered names from {STAGE_NAMES}, got {out_layers}")
        self.depth, self.temporal_strides, self.last_stride = depth, temporal_strides, last_stride
        self.frozen_stages, self.norm_eval, self.out_layers = frozen_stages, norm_eval, out_layers
        self.spatial_strides = (1, 2, 2, 2 if last_stride else 1)

        self.conv1 = nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        in_planes = 64
        for name, blocks, planes, s, ts in zip(STAGE_NAMES, CSN_BLOCKS[depth], _PLANES, self.spatial_strides,
                                               temporal_strides):
            stage = [CSNBottleneck(in_planes, planes, s, ts, project=True)]
            stage += [CSNBottleneck(planes * _EXPANSION, planes) for _ in range(1, blocks)]
            self.add_module(name, nn.Sequential(*stage))
            in_planes = planes * _EXPANSION
        self._freeze()

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and stages covered by ``frozen_stages`` (in network order)."""
        stages: list[nn.Module] = [nn.ModuleList([self.conv1, self.bn1])]
        stages += [getattr(self, name) for name in STAGE_NAMES]
        return stages[: self.frozen_stages + 1]

    def _freeze(self) -> None:
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> IrCSN:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.frozen_modules():
                for m in module.modules():
                    if isinstance(m, nn.BatchNorm3d):
                        m.eval()
        return self

    def stage_channels(self, name: str) -> int:
        return _PLANES[STAGE_NAMES.index(name)] * _EXPANSION

    def stage_spatial_stride(self, name: str) -> int:
        """Total spatial stride of a stage output (stem conv 2 x max-pool 2 x the stage strides so far)."""
        out = 4
        for s in self.spatial_strides[: STAGE_NAMES.index(name) + 1]:
            out *= s
        return out

    def stage_temporal_stride(self, name: str) -> int:
        """Input frames per output step of a stage (the stem keeps every frame)."""
        out = 1
        for s in self.temporal_strides[: STAGE_NAMES.index(name) + 1]:
            out *= s
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"IrCSN expects clips [B, 3, T, H, W], got {list(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: dict[str, torch.Tensor] = {}
        last = self.out_layers[-1]
        for name in STAGE_NAMES:
            x = getattr(self, name)(x)
            if name in self.out_layers:
                out[name] = x
            if name == last:
                break
        return out


class Backbone3D(nn.Module):
    """Wraps an :class:`IrCSN` as ``body``; turns its maps into per-level (feature, mask) pairs.

    ``forward(clips [B,3,T,H,W], mask [B,H,W] True = padding)`` returns, per level of ``body.out_layers``,
    ``(feature [B, T_l, C, h, w], mask [B, T_l, h, w])`` in **batch-major** order: ``feature[b, t]`` is frame
    step ``t`` of clip ``b`` and ``flatten(0, 1)`` gives row ``b * T_l + t``.  The mask is the nearest-resized
    padding mask, identical for every frame of a clip (all frames of a clip share one canvas).

    Attributes:
        strides: true spatial stride of each level (``[8,16,16]`` with ``last_stride=False``, else ``[8,16,32]``).
        num_channels: channels of each level (``[512,1024,2048]`` for layer2..layer4).
        temporal_strides: input frames per output step of each level (cumulative; ``[2,4,8]`` for TubeR's
            ``[1,2,2,2]``, ``[1,1,1]`` for the fork's AVA setting).
    """

    def __init__(self, body: IrCSN):
        super().__init__()
        self.body = body
        names = body.out_layers
        self.strides = [body.stage_spatial_stride(n) for n in names]
        self.num_channels = [body.stage_channels(n) for n in names]
        self.temporal_strides = [body.stage_temporal_stride(n) for n in names]

    def forward(self, clips: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if clips.dim() != 5:
            raise ValueError(f"clips must be [B, 3, T, H, W], got {list(clips.shape)}")
        b, _, _, h, w = clips.shape
        if mask.shape != (b, h, w) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool [B, H, W] = [{b}, {h}, {w}] for clips {list(clips.shape)}, "
                             f"got {mask.dtype} {list(mask.shape)}")
        levels = []
        for x in self.body(clips).values():
            t_l, size = x.shape[2], x.shape[-2:]
            level_mask = interpolate_mask(mask, tuple(size)).unsqueeze(1).expand(-1, t_l, -1, -1).contiguous()
            levels.append((x.transpose(1, 2).contiguous(), level_mask))
        return levels


def build_csn_backbone(depth: int = 50, temporal_strides: Sequence[int] = (1, 1, 1, 1), last_stride: bool = False,
                       frozen_stages: int = 2, weights_path: str | Path | None = None, *, norm_eval: bool = False,
                       out_layers: Sequence[str] = ("layer2", "layer3", "layer4")) -> Backbone3D:
    """An ir-CSN :class:`Backbone3D`, optionally initialised from a local ``.mat``/``.pkl``/PyTorch file."""
    body = IrCSN(depth, temporal_strides, last_stride, frozen_stages, norm_eval, out_layers)
    if weights_path is not None:
        load_csn_weights(body, weights_path)
    return Backbone3D(body)
