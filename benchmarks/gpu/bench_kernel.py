"""Deformable-attention kernels on the GPU: pure PyTorch vs Triton vs torch-ms-deform-attn (the original's kernel).

Shapes of r50 at 360x640 x 5 frames (frames folded into the batch axis): encoder (Lq = 4,820
tokens per frame) and decoder (Lq = 300 queries); 8 heads x 32 channels, 4 levels x 4 points.
For each backend: forward and forward+backward in float32 and bfloat16 (bf16 = what the model
passes under autocast: half ``value``, float32 locations and weights), median ms over CUDA
events, and the largest difference of output and gradients from the pure-PyTorch float32 result.

Usage: ``python benchmarks/gpu/bench_kernel.py OUT_DIR``; writes OUT_DIR/kernel.json.
"""
from __future__ import annotations

import sys

import torch
from _common import DEVICE, SMOKE, cuda_time, environment, r50_levels, skip_without_cuda, write_part


def make_inputs(n: int, lq: int | None, levels, device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.long)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    s = int(shapes.prod(1).sum())
    lq = s if lq is None else lq
    value = torch.randn(n, s, 8, 32, generator=g)
    loc = torch.rand(n, lq, 8, len(levels), 4, 2, generator=g) * 1.2 - 0.1  # some points outside the image
    attw = torch.softmax(torch.randn(n, lq, 8, len(levels) * 4, generator=g), -1).view(n, lq, 8, len(levels), 4)
    grad = torch.randn(n, lq, 256, generator=g)
    return [t.to(device) for t in (value, shapes, starts, loc, attw, grad)]


def run_case(impl: str, inputs, dtype: torch.dtype, backward: bool):
    from seqformer.ops import ms_deform_attn

    value, shapes, starts, loc, attw, grad = inputs
    value = value.to(dtype).requires_grad_(backward)
    loc = loc.clone().requires_grad_(backward)
    attw = attw.clone().requires_grad_(backward)

    def step():
        out = ms_deform_attn(value, shapes, starts, loc, attw, impl=impl)
        if backward:
            return (out, *torch.autograd.grad(out, (value, loc, attw), grad.to(out.dtype)))
        return (out,)

    return step


def main(out_dir: str) -> None:
    if skip_without_cuda(out_dir, "kernel"):
        return
    from seqformer.ops import available_backends, msda

    available_backends(load_optional=True)
    # a backend counts when it takes this device's tensors (on the CPU: pytorch, cuda-op if built)
    probe = torch.zeros(1, device=DEVICE)
    backends = [b for b in ("pytorch", "triton", "cuda-op") if b in msda._BACKENDS and msda._BACKENDS[b][1](probe)]
    levels = r50_levels(64, 96) if SMOKE else r50_levels(360, 640)
    rows = []
    for shape_name, n, lq in (("encoder", 5, None), ("decoder", 5, 300)):
        inputs = make_inputs(n, lq, levels, DEVICE)
        for backward in (False, True):
            ref = run_case("pytorch", inputs, torch.float32, backward)()
            for dtype in (torch.float32, torch.bfloat16):
                for impl in backends:
                    step = run_case(impl, inputs, dtype, backward)
                    with torch.no_grad() if not backward else torch.enable_grad():
                        got = step()
                        timing = cuda_time(step, warmup=3, repeats=20)
                    diffs = [float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref)]
                    rows.append({"shape": shape_name, "n": n, "lq": inputs[3].shape[1], "pass": "fwd+bwd" if backward else "fwd",
                                 "dtype": str(dtype).replace("torch.", ""), "impl": impl, **timing,
                                 "max_diff_out": diffs[0], "max_diff_grads": diffs[1:]})
                    print(rows[-1], flush=True)
    write_part(out_dir, "kernel", {"status": "ok", "env": environment(), "backends": backends, "rows": rows,
                                   "unavailable": _unavailable()})


def _unavailable() -> dict[str, str]:
    import seqformer.ops.msda as msda

    return dict(msda._UNAVAILABLE)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/gpu_bench")
