"""CondInst-style dynamic mask head of SeqFormer.

A small FPN over the encoder memory (strides 32 -> 16 -> 8) gives an 8-channel mask feature map per
frame (``model.mask_channels``; the original's ``hidden_dim // 32``).  Each instance query predicts
(via the ``controller`` MLP owned by the model) the weights of three 1x1 convolutions
(10 -> 8 -> 8 -> 1 with relative coordinates), applied to that feature map concatenated with pixel
offsets to the instance's reference point.  Logits are upsampled from
stride 8 to stride 4 with the original ``aligned_bilinear``.

Instances are processed as a batch (one einsum per layer) instead of a grouped convolution; the
arithmetic is the same.  Frames are looped so memory stays O(instances x one frame).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DYNAMIC_CHANNELS = 8
NUM_DYNAMIC_LAYERS = 3
MASK_FEAT_STRIDE = 8


def dynamic_param_sizes(in_channels: int, rel_coord: bool) -> tuple[list[int], list[int]]:
    """Weight and bias sizes of the three dynamic 1x1 convs (169 parameters for 8 channels + coords)."""
    first_in = in_channels + 2 if rel_coord else in_channels
    weights = [first_in * DYNAMIC_CHANNELS, DYNAMIC_CHANNELS * DYNAMIC_CHANNELS, DYNAMIC_CHANNELS]
    biases = [DYNAMIC_CHANNELS, DYNAMIC_CHANNELS, 1]
    return weights, biases


class MaskHeadSmallConv(nn.Module):
    """FPN-style fusion of three encoder levels into an ``out_channels``-channel stride-8 map.

    The original fixes ``out_channels = dim // 32`` (8 at dim 256); small models need it set, as
    ``dim // 32`` leaves a 64-wide model 2 channels to shape every mask with.
    """

    def __init__(self, dim: int, context_dim: int, out_channels: int | None = None):
        super().__init__()
        self.lay1 = nn.Conv2d(dim, dim // 4, 3, padding=1)
        self.lay2 = nn.Conv2d(dim // 4, out_channels or dim // 32, 3, padding=1)
        self.lay3 = nn.Conv2d(context_dim, context_dim, 3, padding=1)
        self.lay4 = nn.Conv2d(context_dim, context_dim, 3, padding=1)
        self.dcn = nn.Conv2d(context_dim, context_dim, 3, padding=1)  # a plain conv despite the name
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats: [stride 8, stride 16, stride 32] maps of shape [N, C, h, w]."""
        x = F.relu(self.lay3(feats[-1]))
        x = F.relu(self.lay4(feats[-2] + F.interpolate(x, size=feats[-2].shape[-2:], mode="nearest")))
        x = F.relu(self.dcn(feats[-3] + F.interpolate(x, size=feats[-3].shape[-2:], mode="nearest")))
        x = F.relu(self.lay1(x))
        return F.relu(self.lay2(x))


def aligned_bilinear(tensor: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample [N,C,h,w] by an integer factor keeping pixel centres aligned (AdelaiDet's rule)."""
    if factor == 1:
        return tensor
    h, w = tensor.shape[2:]
    tensor = F.pad(tensor, pad=(0, 1, 0, 1), mode="replicate")
    oh, ow = factor * h + 1, factor * w + 1
    tensor = F.interpolate(tensor, size=(oh, ow), mode="bilinear", align_corners=True)
    tensor = F.pad(tensor, pad=(factor // 2, 0, factor // 2, 0), mode="replicate")
    return tensor[:, :, : oh - 1, : ow - 1]


def feature_locations(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates (x, y) of the centres of an h x w stride-``stride`` grid: [h*w, 2]."""
    xs = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=device)
    ys = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1) + stride // 2


def dynamic_mask_logits(
    mask_feats: torch.Tensor,
    params: torch.Tensor,
    inst_points: torch.Tensor | None,
    in_channels: int,
    out_stride: int = 4,
) -> torch.Tensor:
    """Run per-instance dynamic convs on one frame.

    mask_feats  [n, in_channels, h, w]  the feature map of each instance's clip (already gathered)
    params      [n, P] controller outputs
    inst_points [n, 2] instance location in input pixels (None when rel_coord is off)
    returns     [n, h * 8/out_stride, w * 8/out_stride] mask logits
    """
    n, _, h, w = mask_feats.shape
    if n == 0:
        f = MASK_FEAT_STRIDE // out_stride
        return mask_feats.new_zeros((0, h * f, w * f))
    x = mask_feats.flatten(2)  # [n, C, hw]
    if inst_points is not None:
        loc = feature_locations(h, w, MASK_FEAT_STRIDE, mask_feats.device)  # [hw, 2]
        rel = (inst_points[:, None, :] - loc[None]).float().transpose(1, 2)  # [n, 2, hw]
        x = torch.cat([rel.to(x.dtype), x], dim=1)
    w_sizes, b_sizes = dynamic_param_sizes(in_channels, inst_points is not None)
    chunks = torch.split_with_sizes(params, w_sizes + b_sizes, dim=1)
    ws, bs = chunks[:NUM_DYNAMIC_LAYERS], chunks[NUM_DYNAMIC_LAYERS:]
    for i in range(NUM_DYNAMIC_LAYERS):
        out_ch = 1 if i == NUM_DYNAMIC_LAYERS - 1 else DYNAMIC_CHANNELS
        weight = ws[i].reshape(n, out_ch, -1)
        x = torch.baddbmm(bs[i].reshape(n, out_ch, 1), weight, x)
        if i < NUM_DYNAMIC_LAYERS - 1:
            x = F.relu(x)
    logits = x.view(n, 1, h, w)
    return aligned_bilinear(logits, MASK_FEAT_STRIDE // out_stride)[:, 0]
