"""Multi-scale deformable attention: the fast path equals a direct bilinear reference; gradients check out."""
from __future__ import annotations

import pytest
import torch

from seqformer.ops import (
    available_backends,
    ms_deform_attn,
    ms_deform_attn_pytorch,
    register_backend,
)


def _direct_reference(value, shapes, starts, loc, attw):
    """Loop-based bilinear sampling with zero padding (align_corners=False), written from the definition."""
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = loc.shape
    out = torch.zeros(n, lq, m, d, dtype=value.dtype)
    for b in range(n):
        for q in range(lq):
            for h in range(m):
                for lvl in range(n_levels):
                    hl, wl = int(shapes[lvl, 0]), int(shapes[lvl, 1])
                    start = int(starts[lvl])
                    for p in range(n_points):
                        x = loc[b, q, h, lvl, p, 0] * wl - 0.5
                        y = loc[b, q, h, lvl, p, 1] * hl - 0.5
                        x0, y0 = torch.floor(x), torch.floor(y)
                        acc = torch.zeros(d, dtype=value.dtype)
                        for dy in (0, 1):
                            for dx in (0, 1):
                                xi, yi = int(x0) + dx, int(y0) + dy
                                if 0 <= xi < wl and 0 <= yi < hl:
                                    wx = (x - x0) if dx else (1 - (x - x0))
                                    wy = (y - y0) if dy else (1 - (y - y0))
                                    acc = acc + wx * wy * value[b, start + yi * wl + xi, h]
                        out[b, q, h] += attw[b, q, h, lvl, p] * acc
    return out.reshape(n, lq, m * d)


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[6, 4], [3, 2]], dtype=torch.long)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    s = int(shapes.prod(1).sum())
    n, lq, m, d, p = 2, 3, 2, 4, 3
    value = torch.randn(n, s, m, d, generator=g, dtype=dtype)
    # include locations outside [0,1] to exercise zero padding
    loc = torch.rand(n, lq, m, len(shapes), p, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    attw = torch.rand(n, lq, m, len(shapes), p, generator=g, dtype=dtype)
    attw = attw / attw.sum((-1, -2), keepdim=True)
    return value, shapes, starts, loc, attw


def test_pytorch_backend_matches_direct_reference():
    value, shapes, starts, loc, attw = _inputs()
    fast = ms_deform_attn_pytorch(value, shapes, starts, loc, attw)
    slow = _direct_reference(value, shapes, starts, loc, attw)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


def test_gradcheck_float64():
    value, shapes, starts, loc, attw = _inputs()
    # keep sampling points away from pixel-centre grid lines where bilinear is not differentiable
    loc = loc.clone()
    value.requires_grad_(True)
    loc.requires_grad_(True)
    attw.requires_grad_(True)
    fn = lambda v, l, a: ms_deform_attn(v, shapes, starts, l, a, impl="pytorch")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (value, loc, attw), eps=1e-6, atol=1e-5)


def test_registry_dispatch_and_errors():
    value, shapes, starts, loc, attw = _inputs(torch.float32)
    calls = []

    def doubled(*args):
        calls.append(1)
        return 2 * ms_deform_attn_pytorch(*args)

    register_backend("test_doubled", doubled, supports=lambda v: v.dtype == torch.float32)
    try:
        auto = ms_deform_attn(value, shapes, starts, loc, attw)
        torch.testing.assert_close(auto, 2 * ms_deform_attn_pytorch(value, shapes, starts, loc, attw))
        assert calls == [1]
        # unsupported dtype falls through to the pure-PyTorch path under "auto"
        v64 = _inputs(torch.float64)
        torch.testing.assert_close(ms_deform_attn(*v64), ms_deform_attn_pytorch(*v64))
        with pytest.raises(RuntimeError, match="does not support"):
            ms_deform_attn(*v64, impl="test_doubled")
    finally:
        import seqformer.ops.msda as mod

        mod._BACKENDS.pop("test_doubled")
        mod._PREFERENCE.remove("test_doubled")
    assert "test_doubled" not in available_backends()
    with pytest.raises(ValueError, match="unknown"):
        ms_deform_attn(value, shapes, starts, loc, attw, impl="nope")


def test_cuda_op_backend_matches_pytorch_or_reports_unavailable():
    """``impl="cuda-op"`` (torch-ms-deform-attn, optional) equals the pure-PyTorch path, or says why it is missing."""
    import importlib.util

    value, shapes, starts, loc, attw = _inputs(torch.float32)
    if importlib.util.find_spec("torch_ms_deform_attn") is None:
        with pytest.raises(RuntimeError, match="'cuda-op' is not available: ModuleNotFoundError"):
            ms_deform_attn(value, shapes, starts, loc, attw, impl="cuda-op")
        return
    inputs = [t.clone().requires_grad_(True) for t in (value, loc, attw)]
    out = ms_deform_attn(inputs[0], shapes, starts, inputs[1], inputs[2], impl="cuda-op")
    ref = ms_deform_attn_pytorch(value, shapes, starts, loc, attw)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out.square().sum(), inputs)
    ref_inputs = [t.clone().requires_grad_(True) for t in (value, loc, attw)]
    ref_grads = torch.autograd.grad(ms_deform_attn_pytorch(ref_inputs[0], shapes, starts, *ref_inputs[1:]).square().sum(),
                                    ref_inputs)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # mixed precision: bfloat16 value, float32 locations and weights -> bfloat16 result
    mixed = ms_deform_attn(value.bfloat16(), shapes, starts, loc, attw, impl="cuda-op")
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), ref, rtol=2**-7, atol=2e-2)
    assert "cuda-op" not in available_backends()[:1]  # never preferred by "auto"
