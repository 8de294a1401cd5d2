"""r50 SeqFormer on the GPU: training step, inference frames/s, ``predict vis`` videos/s.

* ``train``: batch of 2 clips x 5 frames at 384x640 (2 instances each, synthetic targets), the
  real model + matcher + criterion + AdamW step; float32 vs bf16 autocast x msda_impl pytorch vs
  triton; seconds per iteration (median after warm-up) and peak GPU memory.
* ``infer``: model only, one 360x640 clip (5 and 36 frames): heads + masks of the top-10 queries
  (what ``predict vis`` runs); frames per second (the paper: 72.3 FPS on a V100).
* ``predict``: ``seqformer predict vis`` end to end (JPEG decoding, RLE encoding included) on a
  synthetic YouTube-VIS set (8 videos x 36 frames at 360x640) with a released-format r50
  checkpoint (random weights), float32 vs ``eval.amp=bf16``: videos/s and the agreement of the
  bf16 results with the float32 ones (same top-10 ranking, mask IoU).

Usage: ``python benchmarks/gpu/bench_model.py OUT_DIR [train|infer|predict ...]``; writes OUT_DIR/model_<part>.json.
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import DEVICE, SMOKE, environment, peak_memory_gb, reset_peak_memory, skip_without_cuda, sync, write_part

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=12"]
SIZE = (64, 96) if SMOKE else (360, 640)


def r50_config(impl: str, extra: list[str] | None = None):
    """r50 (the released architecture); the tiny model in a CPU smoke run, with the pure-PyTorch backend."""
    from seqformer.config import load_config

    impl = "pytorch" if SMOKE and impl == "triton" else impl
    base = TINY if SMOKE else ["model.backbone=resnet50"]
    return load_config(None, base + [f"model.msda_impl={impl}", "model.dropout=0.0"] + (extra or []))


def synthetic_batch(device, clips: int = 2, frames: int = 5, size=(64, 96) if SMOKE else (384, 640)):
    from seqformer.structures import pad_clips

    g = torch.Generator().manual_seed(0)
    h, w = size
    videos, targets = [], []
    for _ in range(clips):
        videos.append(torch.randn(frames, 3, h, w, generator=g))
        masks = torch.zeros(2, frames, h, w, dtype=torch.uint8)
        masks[0, :, h // 10:h // 2, w // 10:w // 2] = 1
        masks[1, :, h // 3:9 * h // 10, w // 2:9 * w // 10] = 1
        boxes = torch.tensor([[180 / w, 120 / h, 240 / w, 160 / h], [460 / w, 250 / h, 280 / w, 200 / h]])
        targets.append({"labels": torch.tensor([3, 7]), "boxes": boxes[:, None].expand(2, frames, 4).clone(),
                        "masks": masks, "valid": torch.ones(2, frames, dtype=torch.bool),
                        "size": torch.tensor([h, w]), "orig_size": torch.tensor([h, w])})
    batch = pad_clips(videos, 32).to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    return batch, targets


def bench_train(out_dir: str, warmup: int = 2, iters: int = 5) -> None:
    from seqformer.engine import precision
    from seqformer.engine.trainer import weighted_total
    from seqformer.tasks.vis import VISTask

    rows = []
    batch, targets = synthetic_batch(DEVICE)
    for impl in ("pytorch", "triton"):
        for amp in ("none", "bf16"):
            torch.manual_seed(0)
            cfg = r50_config(impl, [f"train.amp={amp}"])
            task = VISTask()
            model, criterion = task.build_model(cfg).to(DEVICE).train(), task.build_criterion(cfg).to(DEVICE)
            precision.prepare_model(model, amp)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
            reset_peak_memory()
            times = []
            for it in range(warmup + iters):
                sync()
                t0 = time.perf_counter()
                with precision.autocast(amp, DEVICE):
                    outputs = model(batch, targets)
                loss = weighted_total(criterion(outputs, targets), criterion.weight_dict)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
                optimizer.step()
                sync()
                if it >= warmup:
                    times.append(time.perf_counter() - t0)
            rows.append({"impl": impl, "amp": amp, "s_per_iter": statistics.median(times), "min_s": min(times),
                         "peak_mem_gb": peak_memory_gb(), "loss": loss.item()})
            print(rows[-1], flush=True)
            del model, criterion, optimizer, outputs, loss
            gc.collect()
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    write_part(out_dir, "model_train", {"status": "ok", "env": environment(), "rows": rows,
                                        "setup": "r50, 2 clips x 5 frames, 384x640, 2 instances per clip"})


def predict_path(model, samples, topk: int = 10):
    heads = model.detr.forward_heads(samples)
    logits = heads.logits[-1][0]
    queries = torch.unique(torch.topk(logits.sigmoid().flatten(), topk).indices // logits.shape[-1])
    size = torch.tensor([samples.tensors.shape[-2:]], device=samples.tensors.device)
    return model.render_masks(heads, len(heads.logits) - 1, [queries], size)


def bench_infer(out_dir: str, repeats: int = 2 if SMOKE else 10) -> None:
    from seqformer.engine import precision
    from seqformer.engine.task import get_task
    from seqformer.structures import clip_batch_from_tensor

    rows = []
    for frames in (5, 36):
        clip = torch.randn(frames, 3, *SIZE, generator=torch.Generator().manual_seed(1)).to(DEVICE)
        samples = clip_batch_from_tensor(clip)
        for impl, amp in (("pytorch", "none"), ("triton", "none"), ("pytorch", "bf16"), ("triton", "bf16")):
            torch.manual_seed(0)
            model = get_task("vis").build_model(r50_config(impl)).to(DEVICE).eval()
            precision.prepare_model(model, amp)
            reset_peak_memory()
            with torch.no_grad(), precision.autocast(amp, DEVICE):
                for _ in range(3):
                    predict_path(model, samples)
                sync()
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    predict_path(model, samples)
                    sync()
                    times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rows.append({"frames": frames, "impl": impl, "amp": amp, "s_per_clip": med, "frames_per_s": frames / med,
                         "peak_mem_gb": peak_memory_gb()})
            print(rows[-1], flush=True)
            del model
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    write_part(out_dir, "model_infer", {"status": "ok", "env": environment(), "rows": rows,
                                        "setup": "r50, one 360x640 clip, heads + top-10 masks (predict vis path)"})


def bench_predict(out_dir: str, videos: int = 2 if SMOKE else 8, frames: int = 5 if SMOKE else 36) -> None:
    from bench_vis_precision import agreement  # benchmarks/ (same measure as on the CPU)

    from seqformer.cli import main as cli
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.engine.task import get_task

    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = generate_synth_vis(root / "data", SynthVisConfig(num_train_videos=0, num_val_videos=videos, num_frames=frames,
                                                                 height=SIZE[0], width=SIZE[1], seed=0))
        torch.manual_seed(0)
        torch.save({"model": get_task("vis").build_model(r50_config("pytorch")).state_dict()}, root / "r50.pth")  # released format
        for impl, amp in (("pytorch", "none"), ("triton", "none"), ("triton", "bf16")):
            out = root / f"{impl}_{amp}.json"
            model_args = TINY if SMOKE else []
            args = ["predict", "vis", "--config", "configs/ytvis/r50_seqformer.yaml", "--weights", str(root / "r50.pth"),
                    "--images", str(paths["valid_images"]), "--annotations", str(paths["valid_ann"]),
                    "--out", str(out), "--device", DEVICE, *model_args,
                    f"model.msda_impl={'pytorch' if SMOKE else impl}", f"eval.amp={amp}"]
            t0 = time.perf_counter()
            assert cli(args) == 0
            dt = time.perf_counter() - t0
            results[(impl, amp)] = json.loads(out.read_text())
            rows.append({"impl": impl, "amp": amp, "seconds": dt, "videos_per_s": videos / dt,
                         "frames_per_s": videos * frames / dt})
            print(rows[-1], flush=True)
    agree = agreement(results[("pytorch", "none")], results[("triton", "bf16")])
    agree_fp32 = agreement(results[("pytorch", "none")], results[("triton", "none")])
    agree.pop("per_video"), agree_fp32.pop("per_video")
    write_part(out_dir, "model_predict", {"status": "ok", "env": environment(), "rows": rows,
                                          "bf16_vs_fp32": agree, "triton_vs_pytorch_fp32": agree_fp32,
                                          "setup": f"{videos} synthetic videos x {frames} frames at 360x640, "
                                                   "released-format r50 (random weights), whole process per run"})


PARTS = {"train": bench_train, "infer": bench_infer, "predict": bench_predict}

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "outputs/gpu_bench"
    for part in sys.argv[2:] or list(PARTS):
        if not skip_without_cuda(out, f"model_{part}"):
            try:
                PARTS[part](out)
            except Exception as e:  # record and go on with the next part: one script, one GPU session
                write_part(out, f"model_{part}", {"status": "failed", "reason": f"{type(e).__name__}: {e}"})
                import traceback

                traceback.print_exc()
