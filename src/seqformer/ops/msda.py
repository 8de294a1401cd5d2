"""Multi-scale deformable attention behind one function, with pluggable backends.

Contract (Deformable-DETR's ``MSDeformAttnFunction``)::

    ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        value               [N, S, M, D]   S = sum_l H_l * W_l, M heads, D channels per head
        spatial_shapes      [L, 2] long    (H_l, W_l)
        level_start_index   [L]    long
        sampling_locations  [N, Lq, M, L, P, 2]  normalised (x, y) in [0, 1]
        attention_weights   [N, Lq, M, L, P]
        -> [N, Lq, M * D]

The default backend is pure PyTorch (``grid_sample`` per level, bilinear, zero padding,
``align_corners=False``), which runs on every device and supports autograd and double
precision.  Faster kernels (a CUDA extension, a Triton kernel) plug in with
:func:`register_backend`; nothing here compiles code at install time.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Backend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_BACKENDS: dict[str, tuple[Backend, Callable[[torch.Tensor], bool]]] = {}
_PREFERENCE: list[str] = []


def register_backend(name: str, fn: Backend, supports: Callable[[torch.Tensor], bool], prefer: bool = True) -> None:
    """Make ``fn`` available as ``impl=name``; with ``prefer`` it is tried first by ``impl="auto"``.

    ``supports(value)`` decides per call (device, dtype, grad mode) whether the backend applies.
    """
    _BACKENDS[name] = (fn, supports)
    if name in _PREFERENCE:
        _PREFERENCE.remove(name)
    if prefer:
        _PREFERENCE.insert(0, name)
    else:
        _PREFERENCE.append(name)


def available_backends() -> list[str]:
    return list(_PREFERENCE)


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Reference implementation: one ``grid_sample`` per level over all heads at once."""
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_list = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1  # grid_sample expects [-1, 1]
    sampled = []
    for lvl, (h, w) in enumerate(shapes):
        # [N, HW, M, D] -> [N*M, D, H, W]
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [N*M, D, Lq, L*P] weighted by [N*M, 1, Lq, L*P]
    stacked = torch.stack(sampled, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels * n_points)
    out = (stacked * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


register_backend("pytorch", ms_deform_attn_pytorch, lambda v: True, prefer=False)


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    impl: str = "auto",
) -> torch.Tensor:
    """Dispatch to ``impl`` (or the first registered backend that supports the input)."""
    if impl == "auto":
        for name in _PREFERENCE:
            fn, supports = _BACKENDS[name]
            if supports(value):
                return fn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        raise RuntimeError("no multi-scale deformable attention backend supports this input")
    if impl not in _BACKENDS:
        raise ValueError(f"unknown ms_deform_attn backend {impl!r}; available: {available_backends()}")
    fn, supports = _BACKENDS[impl]
    if not supports(value):
        raise RuntimeError(f"ms_deform_attn backend {impl!r} does not support {value.device}/{value.dtype}")
    return fn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
