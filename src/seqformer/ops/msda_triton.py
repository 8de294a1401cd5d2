"""Multi-scale deformable attention in Triton: forward and backward, no compile step at install.

Registered as backend ``"triton"`` of :func:`seqformer.ops.ms_deform_attn` when ``triton`` imports;
``impl="auto"`` picks it for CUDA tensors.  Semantics are exactly the pure-PyTorch path's
(bilinear, zero padding, ``align_corners=False``): a location ``(x, y)`` in ``[0, 1]`` maps to pixel
coordinates ``x * W - 0.5``, ``y * H - 0.5`` and corners outside the level contribute zero.

Work split (GPU efficiency): one program per (batch element, block of ``BLOCK_Q`` queries, head),
holding a ``[BLOCK_Q, P, D]`` tile, so every corner gather reads ``D`` contiguous channels of one
head (coalesced 64-128 byte rows for D=32).  Levels are a compile-time loop.  Loads are converted
to float32 and everything accumulates in float32, whatever the input dtype (float32, bfloat16,
float16); the output has ``value``'s dtype.  The backward recomputes the four corners, writes the
location and attention-weight gradients directly (each (query, head, level, point) belongs to one
program) and scatters the value gradient with ``tl.atomic_add`` into a float32 buffer (many queries
sample the same pixel), cast to ``value``'s dtype at the end.

With ``TRITON_INTERPRET=1`` set before ``triton`` is first imported, the kernels run on CPU tensors
through Triton's interpreter (numpy; slow, for testing): that is how the tests check them on a
machine without a GPU (in a child process, see tests/test_msda_triton.py).
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from seqformer.ops.msda import register_backend

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _msda_forward(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attw_ptr, out_ptr,
    n_queries, n_heads,
    sv_n, sv_s, sv_m, sv_d,
    sl_n, sl_q, sl_m, sl_l, sl_p, sl_c,
    sa_n, sa_q, sa_m, sa_l, sa_p,
    so_n, so_q, so_m, so_d,
    N_LEVELS: tl.constexpr, N_POINTS: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    q_blocks = tl.cdiv(n_queries, BLOCK_Q)
    batch = (pid // q_blocks).to(tl.int64)
    offs_q = (pid % q_blocks) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_p = tl.arange(0, BLOCK_P)
    offs_d = tl.arange(0, BLOCK_D)
    qp_mask = (offs_q < n_queries)[:, None] & (offs_p < N_POINTS)[None, :]
    d_mask = (offs_d < HEAD_DIM)[None, None, :]
    v_base = value_ptr + batch * sv_n + head * sv_m + offs_d[None, None, :] * sv_d
    loc_base = loc_ptr + batch * sl_n + head * sl_m + offs_q[:, None] * sl_q + offs_p[None, :] * sl_p
    attw_base = attw_ptr + batch * sa_n + head * sa_m + offs_q[:, None] * sa_q + offs_p[None, :] * sa_p
    acc = tl.zeros((BLOCK_Q, BLOCK_P, BLOCK_D), dtype=tl.float32)
    for lvl in tl.static_range(N_LEVELS):
        h_i = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        w_i = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        start = tl.load(starts_ptr + lvl).to(tl.int64)
        loc_x = tl.load(loc_base + lvl * sl_l, mask=qp_mask, other=0.0).to(tl.float32)
        loc_y = tl.load(loc_base + lvl * sl_l + sl_c, mask=qp_mask, other=0.0).to(tl.float32)
        attw = tl.load(attw_base + lvl * sa_l, mask=qp_mask, other=0.0).to(tl.float32)
        # pixel coordinates; clamping far-away points keeps the int conversion safe and changes
        # nothing (all four corners of a clamped point are outside the level)
        x = tl.minimum(tl.maximum(loc_x * w_i.to(tl.float32) - 0.5, -2.0), w_i.to(tl.float32) + 1.0)
        y = tl.minimum(tl.maximum(loc_y * h_i.to(tl.float32) - 0.5, -2.0), h_i.to(tl.float32) + 1.0)
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        fx = x - x0f
        fy = y - y0f
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        for corner in tl.static_range(4):
            dy = corner // 2
            dx = corner % 2
            xi = x0 + dx
            yi = y0 + dy
            cw = (dx * fx + (1 - dx) * (1 - fx)) * (dy * fy + (1 - dy) * (1 - fy))
            ok = qp_mask & (xi >= 0) & (xi < w_i) & (yi >= 0) & (yi < h_i)
            idx = start + (yi * w_i + xi).to(tl.int64)
            v = tl.load(v_base + idx[:, :, None] * sv_s, mask=ok[:, :, None] & d_mask, other=0.0)
            acc += (cw * attw)[:, :, None] * v.to(tl.float32)
    out = tl.sum(acc, axis=1)
    out_ptrs = out_ptr + batch * so_n + head * so_m + offs_q[:, None] * so_q + offs_d[None, :] * so_d
    out_mask = (offs_q < n_queries)[:, None] & (offs_d < HEAD_DIM)[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=out_mask)


def _msda_backward(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attw_ptr, gout_ptr,
    gvalue_ptr, gloc_ptr, gattw_ptr,
    n_queries, n_heads,
    sv_n, sv_s, sv_m, sv_d,
    sl_n, sl_q, sl_m, sl_l, sl_p, sl_c,
    sa_n, sa_q, sa_m, sa_l, sa_p,
    sg_n, sg_q, sg_m, sg_d,
    gv_n, gv_s, gv_m,
    N_LEVELS: tl.constexpr, N_POINTS: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Gradients; ``gloc`` [N, Lq, M, L, P, 2] and ``gattw`` [N, Lq, M, L, P] are contiguous float32,
    ``gvalue`` is a zeroed float32 buffer with strides (gv_n, gv_s, gv_m, 1)."""
    pid = tl.program_id(0)
    head = tl.program_id(1)
    q_blocks = tl.cdiv(n_queries, BLOCK_Q)
    batch = (pid // q_blocks).to(tl.int64)
    offs_q = (pid % q_blocks) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_p = tl.arange(0, BLOCK_P)
    offs_d = tl.arange(0, BLOCK_D)
    q_mask = offs_q < n_queries
    qp_mask = q_mask[:, None] & (offs_p < N_POINTS)[None, :]
    d_mask = (offs_d < HEAD_DIM)[None, None, :]
    gout = tl.load(gout_ptr + batch * sg_n + head * sg_m + offs_q[:, None] * sg_q + offs_d[None, :] * sg_d,
                   mask=q_mask[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0).to(tl.float32)
    gout3 = gout[:, None, :]
    v_base = value_ptr + batch * sv_n + head * sv_m + offs_d[None, None, :] * sv_d
    gv_base = gvalue_ptr + batch * gv_n + head * gv_m + offs_d[None, None, :]
    loc_base = loc_ptr + batch * sl_n + head * sl_m + offs_q[:, None] * sl_q + offs_p[None, :] * sl_p
    attw_base = attw_ptr + batch * sa_n + head * sa_m + offs_q[:, None] * sa_q + offs_p[None, :] * sa_p
    # contiguous float32 gradient layouts
    g_row = ((batch * n_queries + offs_q[:, None]) * n_heads + head) * N_LEVELS
    for lvl in tl.static_range(N_LEVELS):
        h_i = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        w_i = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        w_f = w_i.to(tl.float32)
        h_f = h_i.to(tl.float32)
        start = tl.load(starts_ptr + lvl).to(tl.int64)
        loc_x = tl.load(loc_base + lvl * sl_l, mask=qp_mask, other=0.0).to(tl.float32)
        loc_y = tl.load(loc_base + lvl * sl_l + sl_c, mask=qp_mask, other=0.0).to(tl.float32)
        attw = tl.load(attw_base + lvl * sa_l, mask=qp_mask, other=0.0).to(tl.float32)
        x = tl.minimum(tl.maximum(loc_x * w_f - 0.5, -2.0), w_f + 1.0)
        y = tl.minimum(tl.maximum(loc_y * h_f - 0.5, -2.0), h_f + 1.0)
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        fx = x - x0f
        fy = y - y0f
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        g_sampled = tl.zeros((BLOCK_Q, BLOCK_P), dtype=tl.float32)  # <grad_out, bilinear sample>
        g_x = tl.zeros((BLOCK_Q, BLOCK_P), dtype=tl.float32)  # <grad_out, d sample / d x>
        g_y = tl.zeros((BLOCK_Q, BLOCK_P), dtype=tl.float32)
        for corner in tl.static_range(4):
            dy = corner // 2
            dx = corner % 2
            xi = x0 + dx
            yi = y0 + dy
            wx = dx * fx + (1 - dx) * (1 - fx)
            wy = dy * fy + (1 - dy) * (1 - fy)
            ok = qp_mask & (xi >= 0) & (xi < w_i) & (yi >= 0) & (yi < h_i)
            idx = start + (yi * w_i + xi).to(tl.int64)
            ok3 = ok[:, :, None] & d_mask
            v = tl.load(v_base + idx[:, :, None] * sv_s, mask=ok3, other=0.0).to(tl.float32)
            dot = tl.sum(gout3 * v, axis=2)
            g_sampled += wx * wy * dot
            g_x += (2 * dx - 1) * wy * dot
            g_y += (2 * dy - 1) * wx * dot
            tl.atomic_add(gv_base + idx[:, :, None] * gv_s, (attw * wx * wy)[:, :, None] * gout3,
                          mask=ok3, sem="relaxed")
        g_off = (g_row + lvl) * N_POINTS + offs_p[None, :]
        tl.store(gattw_ptr + g_off, g_sampled, mask=qp_mask)
        tl.store(gloc_ptr + 2 * g_off, attw * g_x * w_f, mask=qp_mask)
        tl.store(gloc_ptr + 2 * g_off + 1, attw * g_y * h_f, mask=qp_mask)


# Decided when this module is imported: compiled GPU kernels, or numpy-interpreted ones when
# TRITON_INTERPRET=1 was set before triton was imported (triton's own helpers follow the same switch).
_FORWARD = triton.jit(_msda_forward)
_BACKWARD = triton.jit(_msda_backward)
INTERPRETED = not isinstance(_FORWARD, triton.runtime.JITFunction)


def _blocks(n_points: int, head_dim: int) -> dict[str, int]:
    block_p = triton.next_power_of_2(n_points)
    block_d = triton.next_power_of_2(head_dim)
    # ~4k float32 accumulators per program on the GPU; the interpreter prefers few, large programs
    budget = 1 << 16 if INTERPRETED else 1 << 12
    block_q = max(1, min(128, budget // (block_p * block_d)))
    return {"BLOCK_Q": triton.next_power_of_2(block_q), "BLOCK_P": block_p, "BLOCK_D": block_d}


def _on(device: torch.device):
    """Launch on the tensors' GPU (Triton uses the current CUDA device); nothing to do on the CPU."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights) -> None:
    if value.dim() != 4 or sampling_locations.dim() != 6 or attention_weights.dim() != 5:
        raise ValueError("ms_deform_attn: value must be [N,S,M,D], sampling_locations [N,Lq,M,L,P,2], "
                         "attention_weights [N,Lq,M,L,P]")
    if value.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"ms_deform_attn triton backend: unsupported dtype {value.dtype}")
    n, _, m, _ = value.shape
    if sampling_locations.shape[:3] != (n, sampling_locations.shape[1], m) or sampling_locations.shape[-1] != 2:
        raise ValueError(f"ms_deform_attn: sampling_locations {tuple(sampling_locations.shape)} does not match "
                         f"value {tuple(value.shape)}")
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(f"ms_deform_attn: attention_weights {tuple(attention_weights.shape)} does not match "
                         f"sampling_locations {tuple(sampling_locations.shape)}")
    if spatial_shapes.shape != (sampling_locations.shape[3], 2):
        raise ValueError(f"ms_deform_attn: spatial_shapes {tuple(spatial_shapes.shape)} does not match "
                         f"{sampling_locations.shape[3]} levels")


class _MSDeformAttnTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
        _check(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        n, _, m, d = value.shape
        _, lq, _, n_levels, n_points, _ = sampling_locations.shape
        shapes = spatial_shapes.to(value.device, torch.int64).contiguous()
        starts = level_start_index.to(value.device, torch.int64).contiguous()
        out = value.new_empty(n, lq, m, d)
        blocks = _blocks(n_points, d)
        grid = (n * triton.cdiv(lq, blocks["BLOCK_Q"]), m)
        if out.numel():
            with _on(value.device):
                _FORWARD[grid](
                    value, shapes, starts, sampling_locations, attention_weights, out,
                    lq, m, *value.stride(), *sampling_locations.stride(), *attention_weights.stride(), *out.stride(),
                    N_LEVELS=n_levels, N_POINTS=n_points, HEAD_DIM=d, **blocks)
        ctx.save_for_backward(value, shapes, starts, sampling_locations, attention_weights)
        return out.view(n, lq, m * d)

    @staticmethod
    def backward(ctx, grad_out):
        value, shapes, starts, loc, attw = ctx.saved_tensors
        n, s, m, d = value.shape
        _, lq, _, n_levels, n_points, _ = loc.shape
        gout = grad_out.reshape(n, lq, m, d)
        gvalue = torch.zeros(n, s, m, d, dtype=torch.float32, device=value.device)
        gloc = torch.empty(loc.shape, dtype=torch.float32, device=value.device)
        gattw = torch.empty(attw.shape, dtype=torch.float32, device=value.device)
        blocks = _blocks(n_points, d)
        grid = (n * triton.cdiv(lq, blocks["BLOCK_Q"]), m)
        if gloc.numel():
            with _on(value.device):
                _BACKWARD[grid](
                    value, shapes, starts, loc, attw, gout, gvalue, gloc, gattw,
                    lq, m, *value.stride(), *loc.stride(), *attw.stride(), *gout.stride(), *gvalue.stride()[:3],
                    N_LEVELS=n_levels, N_POINTS=n_points, HEAD_DIM=d, **blocks)
        return gvalue.to(value.dtype), None, None, gloc.to(loc.dtype), gattw.to(attw.dtype)


def ms_deform_attn_triton(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The Triton kernel (interpreted for CPU tensors); same contract as ``ms_deform_attn_pytorch``.

    ``value`` may be in a lower precision than the locations and weights (the model keeps those in
    float32 under autocast); the result has ``value``'s dtype.
    """
    return _MSDeformAttnTriton.apply(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def supports(value: torch.Tensor) -> bool:
    """CUDA tensors of a supported dtype, or CPU tensors when the kernels are interpreted (testing)."""
    if value.dtype not in SUPPORTED_DTYPES:
        return False
    return value.device.type == "cpu" if INTERPRETED else value.is_cuda


register_backend("triton", ms_deform_attn_triton, supports)
