"""The Triton deformable-attention kernel equals the pure-PyTorch path (forward and gradients).

Without a GPU the kernel runs in Triton's interpreter, which Triton selects once, when it is first
imported, from ``TRITON_INTERPRET=1``.  Setting that variable in this process would depend on test
order (anything may already have imported triton) and would leak into other tests, so the kernel
runs in one spawned child process started with the variable set (the ``interpreter`` fixture);
the references are computed here with the pure-PyTorch backend in float64.  Tests marked ``cuda``
run the compiled kernel on a GPU (``benchmarks/gpu/run.sh``) and skip elsewhere.
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
from msda_triton_cases import make_case, run_triton

from seqformer.ops import ms_deform_attn, ms_deform_attn_pytorch


pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


def _interpreted() -> bool:
    import seqformer.ops.msda_triton as msda_triton

    return msda_triton.INTERPRETED


@pytest.fixture(scope="module")
def interpreter():
    """A one-process executor whose process started with ``TRITON_INTERPRET=1`` and imported triton."""
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        ready = pool.submit(_interpreted)  # starts the process while the variable is set
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved
    try:
        assert ready.result(timeout=300), "the child process did not run triton interpreted"
        # a crash in the child raises BrokenProcessPool here instead of hanging
        yield lambda *args, **kw: pool.submit(run_triton, *args, **kw).result(timeout=600)
    finally:
        pool.shutdown(cancel_futures=True)


def reference(name, backward=True, dtype=torch.float64):
    """Pure-PyTorch output and gradients on the case's inputs (as rounded to ``dtype``) in float64."""
    value, shapes, starts, loc, attw, grad_out = make_case(name, dtype)
    inputs = [t.double().requires_grad_(backward) for t in (value, loc, attw)]
    out = ms_deform_attn_pytorch(inputs[0], shapes, starts, inputs[1], inputs[2])
    grads = torch.autograd.grad(out, inputs, grad_out.double()) if backward else None
    return out.detach(), grads


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (elementwise relative error is meaningless for near-zero entries)."""
    return float((got.double() - want).abs().max() / want.abs().max().clamp(min=1e-30))


@pytest.mark.parametrize("name", ["encoder", "decoder", "borders", "noncontiguous"])
def test_float32_forward_and_gradients_match_pytorch(interpreter, name):
    out, grads = interpreter(name, dispatch=name == "decoder")
    ref_out, ref_grads = reference(name)
    assert out.dtype == torch.float32
    assert float((out.double() - ref_out).abs().max()) < 1e-5
    # the pure-PyTorch path in float32 is no closer to float64 than the kernel
    ref32 = ms_deform_attn_pytorch(*make_case(name)[:5])
    assert float((ref32.double() - ref_out).abs().max()) < 1e-5
    for label, got, want in zip(("value", "locations", "weights"), grads, ref_grads):
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert relative_error(got, want) < 1e-4, label


def test_borders_case_covers_edges():
    """The edge-case inputs really contain border, outside and single-pixel samples."""
    value, shapes, starts, loc, attw, _ = make_case("borders")
    assert (loc == 0).any() and (loc == 1).any() and (loc < 0).any() and (loc > 1).any()
    assert (shapes == 1).all(1).any()  # a 1x1 level
    x_pixel = loc[..., 0, 0] * shapes[0, 1] - 0.5  # level 0, x
    assert (x_pixel == x_pixel.round()).any() and (x_pixel == x_pixel.floor() + 0.5).any()


def within_output_rounding(got: torch.Tensor, want: torch.Tensor, ulp: float) -> bool:
    """|got - want| <= one unit in the last place of ``got``'s dtype (relative ``ulp``), elementwise.

    One ulp, not half: the interpreter converts float32 to bfloat16 by truncation, the GPU rounds to
    nearest; float32 accumulation adds ~1e-7 absolute.
    """
    return bool(((got.double() - want).abs() <= ulp * want.abs() + 1e-6).all())


HALF = [(torch.bfloat16, 2**-7), (torch.float16, 2**-10)]  # ulp relative to the value: 2 ** -(mantissa bits)


@pytest.mark.parametrize("dtype,ulp", HALF)
def test_half_inputs_accumulate_in_float32(interpreter, dtype, ulp):
    """Half inputs: the kernel equals the float64 result on the same (rounded) inputs up to the output rounding."""
    out, _ = interpreter("decoder", dtype=dtype, backward=False)
    ref_out, _ = reference("decoder", backward=False, dtype=dtype)
    assert out.dtype == dtype
    assert within_output_rounding(out, ref_out, ulp)
    # mixed: half value, float32 locations and weights (the model under autocast)
    out_mixed, grads = interpreter("decoder", dtype=dtype, loc_dtype=torch.float32)
    value, shapes, starts, loc, attw, grad_out = make_case("decoder", dtype, torch.float32)
    assert out_mixed.dtype == dtype and [g.dtype for g in grads] == [dtype, torch.float32, torch.float32]
    ref_mixed = ms_deform_attn_pytorch(value, shapes, starts, loc, attw)
    assert ref_mixed.dtype == dtype
    ref_mixed64 = ms_deform_attn_pytorch(value.double(), shapes, starts, loc.double(), attw.double())
    assert within_output_rounding(out_mixed, ref_mixed64, ulp)
    assert within_output_rounding(ref_mixed, ref_mixed64, ulp)


@pytest.mark.slow
def test_larger_encoder_matches_pytorch(interpreter):
    out, grads = interpreter("encoder_large")
    ref_out, ref_grads = reference("encoder_large")
    assert float((out.double() - ref_out).abs().max()) < 1e-5
    for got, want in zip(grads, ref_grads):
        assert relative_error(got, want) < 1e-4


def test_cpu_tensors_need_the_interpreter():
    """In a process without TRITON_INTERPRET the backend loads on demand and declines CPU tensors."""
    import seqformer.ops.msda_triton as msda_triton

    if msda_triton.INTERPRETED:
        pytest.skip("this process runs triton interpreted (TRITON_INTERPRET=1)")
    value, shapes, starts, loc, attw, _ = make_case("decoder")
    with pytest.raises(RuntimeError, match="does not support cpu"):
        ms_deform_attn(value, shapes, starts, loc, attw, impl="triton")
    # "auto" on the CPU stays on the pure-PyTorch path
    torch.testing.assert_close(ms_deform_attn(value, shapes, starts, loc, attw),
                               ms_deform_attn_pytorch(value, shapes, starts, loc, attw), rtol=0, atol=0)


# ------------------------------------------------------------- compiled for a GPU, without one
def _compile_for_hopper(fn, raw, pointer_types: dict[str, str]) -> str:
    """PTX of ``fn`` built by Triton's real compiler for sm_90, as the JIT would specialise the r50 call.

    The JIT marks integer arguments equal to 1 as constants and pointers / integers divisible by 16
    as such; this does the same for the strides of contiguous r50 inputs (D = 32, M * D = 256).
    """
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    consts = {"N_LEVELS": 4, "N_POINTS": 4, "HEAD_DIM": 32, "BLOCK_Q": 32, "BLOCK_P": 4, "BLOCK_D": 32,
              "sv_d": 1, "so_d": 1, "sg_d": 1, "sl_c": 1, "sa_p": 1}
    names = list(inspect.signature(raw).parameters)
    signature = {n: "constexpr" if n in consts else pointer_types.get(n, "i32") for n in names}
    aligned = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names)
               if n.endswith("_ptr") or (n[:3] in ("sv_", "sl_", "sa_", "so_", "sg_", "gv_") and n not in consts
                                         and n[-1] in "nsqm")}
    source = ASTSource(fn=fn, signature=signature, constexprs={k: v for k, v in consts.items() if k in names},
                       attrs=aligned)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm["ptx"]


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_kernels_compile_for_hopper_with_vector_loads_and_atomics(dtype):
    """Triton's compiler (not the interpreter) accepts both kernels for sm_90; value rows load 16 bytes at a
    time and the value gradient is added with vector atomics (what makes the kernel fast on an H100/H200)."""
    import re

    import seqformer.ops.msda_triton as msda_triton

    if msda_triton.INTERPRETED:
        pytest.skip("this process runs triton interpreted (TRITON_INTERPRET=1)")
    pytest.importorskip("triton.backends.nvidia", reason="triton without its NVIDIA backend")
    ptrs = {"value_ptr": f"*{dtype}", "shapes_ptr": "*i64", "starts_ptr": "*i64", "loc_ptr": "*fp32",
            "attw_ptr": "*fp32", "out_ptr": f"*{dtype}", "gout_ptr": f"*{dtype}", "gvalue_ptr": "*fp32",
            "gloc_ptr": "*fp32", "gattw_ptr": "*fp32"}
    forward = _compile_for_hopper(msda_triton._FORWARD, msda_triton._msda_forward, ptrs)
    backward = _compile_for_hopper(msda_triton._BACKWARD, msda_triton._msda_backward, ptrs)
    for ptx in (forward, backward):
        loads = re.findall(r"ld\.global(?:\.[a-z0-9]+)*", ptx)
        assert sum(".v4." in op for op in loads) >= 64, sorted(set(loads))
    atomics = re.findall(r"atom\.global(?:\.[a-z0-9]+)*", backward)
    assert atomics and all(".v4.f32" in op for op in atomics), sorted(set(atomics))


# ---------------------------------------------------------------------------------- on a GPU
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("name", ["encoder", "decoder", "borders", "noncontiguous", "encoder_large"])
def test_cuda_kernel_matches_pytorch(name):
    value, shapes, starts, loc, attw, grad_out = (t.cuda() for t in make_case(name))
    inputs = [t.requires_grad_(True) for t in (value, loc, attw)]
    out = ms_deform_attn(inputs[0], shapes, starts, inputs[1], inputs[2])  # auto picks triton on CUDA
    grads = torch.autograd.grad(out, inputs, grad_out)
    ref_out, ref_grads = reference(name)
    assert float((out.double().cpu() - ref_out).abs().max()) < 1e-5
    for got, want in zip(grads, ref_grads):
        assert relative_error(got.cpu(), want) < 1e-4


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype,ulp", HALF)
def test_cuda_kernel_half(dtype, ulp):
    value, shapes, starts, loc, attw, _ = (t.cuda() for t in make_case("encoder_large", dtype))
    out = ms_deform_attn(value, shapes, starts, loc, attw, impl="triton")
    ref_out, _ = reference("encoder_large", backward=False, dtype=dtype)
    assert out.dtype == dtype and within_output_rounding(out.cpu(), ref_out, ulp)
