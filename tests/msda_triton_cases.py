"""Inputs for the Triton deformable-attention tests, and the function their interpreter child runs.

Not a test module: ``tests/test_msda_triton.py`` imports it in the pytest process (to build the
pure-PyTorch references) and in a spawned child process started with ``TRITON_INTERPRET=1`` (which
Triton reads once, when it is first imported), where :func:`run_triton` runs the kernel on CPU tensors.
Both sides build the same inputs from a case name, so strides (non-contiguous views) are exact.
"""
from __future__ import annotations

import torch

# name -> (levels (H, W), batch N, queries Lq (None = S, encoder self-attention), heads M, head dim D, points P)
CASES = {
    # hidden 256 = 8 heads x 32, 4 levels x 4 points (r50 configs); frames folded into N
    "encoder": ([(8, 12), (4, 6), (2, 3), (1, 2)], 2, None, 8, 32, 4),
    "decoder": ([(8, 12), (4, 6), (2, 3), (1, 2)], 2, 10, 8, 32, 4),
    # power-of-two sizes and dyadic locations: every pixel coordinate is exact, so points on pixel
    # centres, edges, the image border and single-pixel levels take the same branch in both paths
    "borders": ([(4, 8), (2, 2), (1, 1), (1, 2)], 1, 12, 2, 8, 4),
    # odd sizes: head dim and points not powers of two, non-contiguous inputs
    "noncontiguous": ([(5, 7), (3, 4), (1, 1)], 2, 9, 3, 12, 3),
    # slow: a mid-size encoder (4 frames, 24x40 top level)
    "encoder_large": ([(24, 40), (12, 20), (6, 10), (3, 5)], 4, None, 8, 32, 4),
}


def make_case(name: str, dtype: torch.dtype = torch.float32, loc_dtype: torch.dtype | None = None):
    """(value, shapes, starts, locations, weights, grad_out), float64 draws cast to ``dtype``."""
    levels, n, lq, m, d, p = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    shapes = torch.tensor(levels, dtype=torch.long)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    s = int(shapes.prod(1).sum())
    lq = s if lq is None else lq
    n_levels = len(levels)
    value = torch.randn(n, s, m, d, generator=g, dtype=torch.float64)
    if name == "borders":
        # multiples of 1/16 in [-0.25, 1.25]: 0 and 1 exactly, pixel centres and edges, outside points
        loc = torch.randint(-4, 21, (n, lq, m, n_levels, p, 2), generator=g).double() / 16
    else:
        loc = torch.rand(n, lq, m, n_levels, p, 2, generator=g, dtype=torch.float64) * 1.3 - 0.15
    attw = torch.rand(n, lq, m, n_levels, p, generator=g, dtype=torch.float64)
    attw = attw / attw.sum((-1, -2), keepdim=True)
    grad_out = torch.randn(n, lq, m * d, generator=g, dtype=torch.float64)
    loc_dtype = loc_dtype or dtype
    value, loc, attw, grad_out = value.to(dtype), loc.to(loc_dtype), attw.to(loc_dtype), grad_out.to(dtype)
    if name == "noncontiguous":
        # value: every other slot of a wider buffer; locations and weights: transposed storage
        wide = torch.zeros(n, s, m, 2 * d, dtype=dtype)
        wide[..., ::2] = value
        value = wide[..., ::2]
        loc = loc.permute(5, 4, 3, 2, 1, 0).contiguous().permute(5, 4, 3, 2, 1, 0)
        attw = attw.transpose(0, 1).contiguous().transpose(0, 1)
        grad_out = grad_out.transpose(0, 1).contiguous().transpose(0, 1)
        assert not (value.is_contiguous() or loc.is_contiguous() or attw.is_contiguous())
    return value, shapes, starts, loc, attw, grad_out


def run_triton(name: str, dtype: torch.dtype = torch.float32, loc_dtype: torch.dtype | None = None,
               backward: bool = True, dispatch: bool = False):
    """In the interpreter child: the kernel's output and (value, locations, weights) gradients."""
    import seqformer.ops.msda_triton as msda_triton
    from seqformer.ops import ms_deform_attn

    if not msda_triton.INTERPRETED:
        raise RuntimeError("run_triton needs TRITON_INTERPRET=1 set before triton is imported")
    value, shapes, starts, loc, attw, grad_out = make_case(name, dtype, loc_dtype)
    inputs = [t.requires_grad_(backward) for t in (value, loc, attw)]
    if dispatch:
        out = ms_deform_attn(inputs[0], shapes, starts, inputs[1], inputs[2], impl="triton")
    else:
        out = msda_triton.ms_deform_attn_triton(inputs[0], shapes, starts, inputs[1], inputs[2])
    grads = torch.autograd.grad(out, inputs, grad_out) if backward else None
    return out.detach(), grads
