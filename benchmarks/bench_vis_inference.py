"""CPU inference time and peak memory of SeqFormer R50 on one 5x360x640 clip.

Reference point (shared/reference/seqformer_forward_io.md): the original implementation with its
pure-PyTorch deformable attention takes 11.0-13.1 s per ``inference()`` forward on this 2-core
machine (2 threads) and peaks at 2.2 GB RSS.  ``inference()`` there renders masks for all 300
queries after each of the 6 decoder layers; we measure

* ``all-queries``: our ``SeqFormer.inference`` -- masks for all 300 queries, last layer only
  (the same outputs the original returns);
* ``predict``: what ``seqformer predict vis`` runs -- heads, then masks for the top-10 queries only.

Usage: ``python benchmarks/bench_vis_inference.py [--threads 2] [--repeats 3]``.  Weights are
random (timing does not depend on them); the input is the reference's seeded ``torch.randn``.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from seqformer.config import load_config
from seqformer.engine.task import get_task
from seqformer.structures import clip_batch_from_tensor


def build_model_for(cfg):
    """The task's model for ``cfg`` (the task adapter is the one place that picks it)."""
    return get_task(cfg.model.task).build_model(cfg)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model_for(load_config(None, ["model.backbone=resnet50"])).eval()
    rss_build = peak_rss_gb()
    img = torch.randn(1, 5, 3, 360, 640, generator=torch.Generator().manual_seed(1))[0]
    samples = clip_batch_from_tensor(img)
    timings: dict[str, list[float]] = {"all-queries": [], "predict (top-10 masks)": []}
    with torch.no_grad():
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.inference(samples)
            timings["all-queries"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            heads = model.detr.forward_heads(samples)
            scores = heads.logits[-1][0].sigmoid().flatten()
            queries = torch.unique(torch.topk(scores, 10).indices // heads.logits[-1].shape[-1])
            model.render_masks(heads, len(heads.logits) - 1, [queries], torch.tensor([[360, 640]]))
            timings["predict (top-10 masks)"].append(time.perf_counter() - t0)
    original = 11.0, 13.1
    print(f"threads={args.threads}  peak RSS after build {rss_build:.2f} GB, overall {peak_rss_gb():.2f} GB (original: 2.2 GB)")
    print("| path | min s | median s | speed-up vs original 11.0-13.1 s |")
    print("|---|---|---|---|")
    for name, ts in timings.items():
        ts = sorted(ts)
        med = ts[len(ts) // 2]
        print(f"| {name} | {ts[0]:.2f} | {med:.2f} | {original[0] / med:.1f}x - {original[1] / med:.1f}x |")


if __name__ == "__main__":
    main()
