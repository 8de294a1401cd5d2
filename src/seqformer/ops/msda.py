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
precision.  Faster kernels plug in with :func:`register_backend`; nothing here compiles code at
install time.  Two optional backends are imported on first need (never at package import, so a
CPU-only run does not pay for importing triton):

* ``"triton"`` (:mod:`seqformer.ops.msda_triton`) when ``triton`` imports; ``impl="auto"`` prefers
  it for CUDA tensors;
* ``"cuda-op"`` (:mod:`seqformer.ops.msda_cuda_op`) when the ``torch-ms-deform-attn`` package (the
  original's CUDA kernel, ``pip install seqformer[cuda-op]``) imports; used only when asked for.

Mixed precision: ``value`` may be half/bfloat16 while locations and weights stay float32 (the model
keeps them float32 under autocast); the result has ``value``'s dtype, computed in float32.
"""
from __future__ import annotations

import importlib
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


# name -> module that registers it when imported; tried once, the failure reason is kept
_OPTIONAL: dict[str, str] = {"triton": "seqformer.ops.msda_triton", "cuda-op": "seqformer.ops.msda_cuda_op"}
_UNAVAILABLE: dict[str, str] = {}


def _load_optional(name: str) -> None:
    if name in _BACKENDS or name in _UNAVAILABLE or name not in _OPTIONAL:
        return
    try:
        importlib.import_module(_OPTIONAL[name])
    except Exception as e:  # ImportError, or a broken triton/CUDA installation
        _UNAVAILABLE[name] = f"{type(e).__name__}: {e}"


def available_backends(load_optional: bool = False) -> list[str]:
    """Registered backends in ``auto`` order; with ``load_optional`` first try to import the optional ones."""
    if load_optional:
        for name in _OPTIONAL:
            _load_optional(name)
    return list(_PREFERENCE)


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Reference implementation: one ``grid_sample`` per level over all heads at once.

    Points are laid out as ``[P, Lq]`` rows of the sampling grid, so the weighted sum over points
    is ``P`` fused multiply-adds on contiguous ``[N*M, D, Lq]`` slices; Deformable-DETR's layout
    (``[Lq, L*P]``, stacked over levels, then summed over the last axis) computes the same numbers
    (float64: 1e-15; float32: summation order, ~1e-6) 2.5x slower on a CPU and with a buffer
    ``L`` times larger.
    """
    out_dtype = value.dtype
    if value.dtype != sampling_locations.dtype:  # half value, float32 locations: sample in float32
        common = torch.promote_types(value.dtype, sampling_locations.dtype)
        value, sampling_locations = value.to(common), sampling_locations.to(common)
        attention_weights = attention_weights.to(common)
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_list = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample expects [-1, 1]; [N, Lq, M, L, P, 2] -> [N, M, L, P, Lq, 2]
    grids = (2 * sampling_locations - 1).permute(0, 2, 3, 4, 1, 5)
    weights = attention_weights.permute(0, 2, 3, 4, 1)  # [N, M, L, P, Lq]
    out = None
    for lvl, (h, w) in enumerate(shapes):
        # [N, HW, M, D] -> [N*M, D, H, W]
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        grid = grids[:, :, lvl].reshape(n * m, n_points, lq, 2)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [N*M, D, P, Lq]
        w_lvl = weights[:, :, lvl].reshape(n * m, 1, n_points, lq)
        for p in range(n_points):
            if out is None:
                out = sampled[:, :, p] * w_lvl[:, :, p]
            else:
                out = out.addcmul_(sampled[:, :, p], w_lvl[:, :, p])
    if out is None:  # no levels or points
        out = value.new_zeros(n * m, d, lq)
    return out.view(n, m * d, lq).transpose(1, 2).contiguous().to(out_dtype)


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
        if value.is_cuda:
            _load_optional("triton")
        for name in _PREFERENCE:
            fn, supports = _BACKENDS[name]
            if supports(value):
                return fn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        raise RuntimeError("no multi-scale deformable attention backend supports this input")
    _load_optional(impl)
    if impl in _UNAVAILABLE:
        raise RuntimeError(f"ms_deform_attn backend {impl!r} is not available: {_UNAVAILABLE[impl]}")
    if impl not in _BACKENDS:
        raise ValueError(f"unknown ms_deform_attn backend {impl!r}; available: {available_backends()}")
    fn, supports = _BACKENDS[impl]
    if not supports(value):
        raise RuntimeError(f"ms_deform_attn backend {impl!r} does not support {value.device}/{value.dtype}")
    return fn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
