"""Backend ``"cuda-op"``: the original Deformable-DETR kernel as packaged by ``torch-ms-deform-attn``.

Optional (``pip install seqformer[cuda-op]``, which compiles the package's C++/CUDA sources at
install and so needs a toolchain matching the installed torch).  Importing this module raises
``ImportError`` when the package is missing; :mod:`seqformer.ops.msda` then reports the backend as
unavailable.  It is never chosen by ``impl="auto"``: ask for it with ``model.msda_impl=cuda-op``.
The package has CPU and CUDA kernels, so CPU tensors are accepted too.
"""
from __future__ import annotations

import torch
import torch_ms_deform_attn

from seqformer.ops.msda import register_backend

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def ms_deform_attn_cuda_op(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Same contract as ``ms_deform_attn_pytorch``; mixed dtypes are computed in the promoted one.

    The package wants one dtype for all three float inputs outside autocast and returns float32
    under autocast; here the result always has ``value``'s dtype, like the other backends.
    """
    out_dtype = value.dtype
    common = torch.promote_types(value.dtype, sampling_locations.dtype)
    device = value.device
    with torch.autocast(device.type, enabled=False):
        out = torch_ms_deform_attn.ms_deform_attn(
            value.to(common), spatial_shapes.to(device, torch.int64), level_start_index.to(device, torch.int64),
            sampling_locations.to(common), attention_weights.to(common))
    return out.to(out_dtype)


def supports(value: torch.Tensor) -> bool:
    return value.dtype in SUPPORTED_DTYPES and value.device.type in ("cpu", "cuda")


register_backend("cuda-op", ms_deform_attn_cuda_op, supports, prefer=False)
