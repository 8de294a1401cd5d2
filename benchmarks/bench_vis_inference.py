"""CPU inference time and peak memory of SeqFormer R50 on one 5x360x640 clip, precision / compile modes side by side.

Reference point (shared/reference/seqformer_forward_io.md): the original implementation takes
11.0-13.1 s per ``inference()`` forward on this 2-core machine (2 threads) with its pure-PyTorch
deformable attention, 6.7 s with the compiled torch-ms-deform-attn op, and peaks at 2.2 GB RSS.
``inference()`` there renders masks for all 300 queries after each of the 6 decoder layers; we measure

* ``all-queries``: our ``SeqFormer.inference`` -- masks for all 300 queries, last layer only
  (the same outputs the original returns), in float32;
* ``predict``: what ``seqformer predict vis`` runs -- heads, then masks for the top-10 queries only --
  in each mode of ``--modes``:

  - ``fp32``: the default (float32, pure-PyTorch deformable attention);
  - ``fp32-stacked``: float32 with the deformable attention laid out as Deformable-DETR does
    (``[Lq, L*P]`` stacked over levels; this project's default before the point-major layout);
  - ``bf16``: ``eval.amp=bf16`` (autocast, channels-last convolutions, float32 islands);
  - ``fp32-compile`` / ``bf16-compile``: the same with ``eval.compile=true`` (first call timed apart);
  - ``fp32-cuda-op`` / ``bf16-cuda-op``: ``model.msda_impl=cuda-op`` (torch-ms-deform-attn, when installed).

Modes run interleaved (round-robin over ``--repeats``), so machine load hits them alike; the load
average is printed with the table.  Usage:
``python benchmarks/bench_vis_inference.py [--threads 2] [--repeats 3] [--modes fp32 bf16 ...]``.
Weights are random (timing does not depend on them); the input is the reference's seeded ``torch.randn``.
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import time

import torch
import torch.nn.functional as F

from seqformer.config import load_config
from seqformer.engine import precision
from seqformer.engine.task import get_task
from seqformer.ops import register_backend
from seqformer.structures import clip_batch_from_tensor


def build_model_for(cfg):
    """The task's model for ``cfg`` (the task adapter is the one place that picks it)."""
    return get_task(cfg.model.task).build_model(cfg)

ORIGINAL_PYTORCH = (11.0, 13.1)  # s, the original with its pure-PyTorch attention (2 threads, idle machine)
ORIGINAL_COMPILED_OP = 6.7  # s, the original with torch-ms-deform-attn


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def msda_stacked(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """Deformable-DETR's layout of the pure-PyTorch path (this project's default before), for comparison."""
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_list = value.float().split([h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(shapes):
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels * n_points)
    out = (stacked * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous().to(value.dtype)


register_backend("pytorch-stacked", msda_stacked, lambda v: True, prefer=False)

MODES = {  # name -> (eval.amp, eval.compile, model.msda_impl)
    "fp32": ("none", False, "pytorch"),
    "fp32-stacked": ("none", False, "pytorch-stacked"),
    "bf16": ("bf16", False, "pytorch"),
    "fp32-compile": ("none", True, "pytorch"),
    "bf16-compile": ("bf16", True, "pytorch"),
    "fp32-cuda-op": ("none", False, "cuda-op"),
    "bf16-cuda-op": ("bf16", False, "cuda-op"),
}


def predict(model, samples):
    heads = model.detr.forward_heads(samples)
    scores = heads.logits[-1][0].sigmoid().flatten()
    queries = torch.unique(torch.topk(scores, 10).indices // heads.logits[-1].shape[-1])
    return heads, model.render_masks(heads, len(heads.logits) - 1, [queries], torch.tensor([[360, 640]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["fp32", "fp32-stacked", "bf16"], choices=list(MODES))
    parser.add_argument("--all-queries", action="store_true", help="also time SeqFormer.inference (fp32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = build_model_for(load_config(None, ["model.backbone=resnet50"])).eval()
    rss_build = peak_rss_gb()
    img = torch.randn(1, 5, 3, 360, 640, generator=torch.Generator().manual_seed(1))[0]
    samples = clip_batch_from_tensor(img)
    models, first_call = {}, {}
    for name in args.modes:
        amp, compiled, impl = MODES[name]
        model = copy.deepcopy(base)
        for module in model.modules():
            if hasattr(module, "impl"):
                module.impl = impl
        precision.prepare_model(model, amp, compiled)
        models[name] = model
        if compiled:  # the first call per input shape compiles: timed apart
            t0 = time.perf_counter()
            with torch.no_grad(), precision.autocast(amp, "cpu"):
                predict(model, samples)
            first_call[name] = time.perf_counter() - t0
    timings: dict[str, list[float]] = {name: [] for name in args.modes}
    cpu_times: dict[str, list[float]] = {name: [] for name in args.modes}
    if args.all_queries:
        timings["all-queries (fp32)"] = []
    outputs = {}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name in args.modes:
                amp = MODES[name][0]
                t0, c0 = time.perf_counter(), time.process_time()
                with precision.autocast(amp, "cpu"):
                    outputs[name] = predict(models[name], samples)
                timings[name].append(time.perf_counter() - t0)
                cpu_times[name].append(time.process_time() - c0)
            if args.all_queries:
                t0 = time.perf_counter()
                models[args.modes[0]].inference(samples)
                timings["all-queries (fp32)"].append(time.perf_counter() - t0)
    ref = outputs.get("fp32")
    print(f"threads={args.threads}  load average {os.getloadavg()[0]:.1f} (2 cores)  peak RSS after build "
          f"{rss_build:.2f} GB, overall {peak_rss_gb():.2f} GB (original: 2.2 GB)")
    print("| mode | min s | median s | process CPU s (median) | vs fp32 | vs original pure-PyTorch 11.0-13.1 s "
          "| vs original compiled op 6.7 s | max abs diff of logits vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    fp32_med = sorted(timings["fp32"])[len(timings["fp32"]) // 2] if "fp32" in timings else None
    for name, ts in timings.items():
        ts = sorted(ts)
        med = ts[len(ts) // 2]
        diff = "-"
        if ref is not None and name in outputs:
            diff = f"{float((outputs[name][0].logits[-1] - ref[0].logits[-1]).abs().max()):.1e}"
        rel = f"{fp32_med / med:.2f}x" if fp32_med else "-"
        cpu = sorted(cpu_times.get(name, [float("nan")]))[len(cpu_times.get(name, [0])) // 2]
        print(f"| {name} | {ts[0]:.2f} | {med:.2f} | {cpu:.1f} | {rel} | {ORIGINAL_PYTORCH[0] / med:.1f}x - "
              f"{ORIGINAL_PYTORCH[1] / med:.1f}x | {ORIGINAL_COMPILED_OP / med:.2f}x | {diff} |")
    for name, seconds in first_call.items():
        print(f"first call of {name} (compiles): {seconds:.1f} s")


if __name__ == "__main__":
    main()
