"""``seqformer predict vis`` in bfloat16 vs float32: agreement of the results and time, on the synthetic set.

A released-format r50 checkpoint (``{"model": state_dict}`` with the released parameter names;
random weights, seed 0, since no trained weights can be downloaded here) predicts the held-out
videos of a seeded synthetic YouTube-VIS set twice in one process, with ``eval.amp=none`` and
``eval.amp=bf16`` (any other ``key=value`` after ``--`` is passed to both).  Reported per video: the
same top-10 ranking (category ids in score order), and the mask IoU of the entries at equal ranks
(mean over frames); plus how many ranks are separated from their neighbours by more than the
largest score change, where bf16 cannot reorder them.

The results files carry no query index, so equal ranks of near-tied scores (random weights give
many) may hold different queries; :func:`same_query_agreement` therefore also compares the masks of
the same queries, rendered in each precision.

Usage: ``python benchmarks/bench_vis_precision.py [--videos 6] [--frames 12] [--threads 2] [-- key=value ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pycocotools.mask as mask_util
import torch

REPO = Path(__file__).resolve().parents[1]


def _iou(a, b) -> float:
    union = mask_util.area(mask_util.merge([a, b], intersect=False))
    return float(mask_util.area(mask_util.merge([a, b], intersect=True)) / union) if union else 1.0


def agreement(ref: list[dict], got: list[dict]) -> dict:
    """Same top-10 ranking per video? Mask IoU at equal ranks; score changes; ranks bf16 could not swap."""
    per_video, ious, deltas, separated, separated_same = [], [], [], 0, 0
    for vid in sorted({r["video_id"] for r in ref}):
        a = sorted((r for r in ref if r["video_id"] == vid), key=lambda r: -r["score"])
        b = sorted((r for r in got if r["video_id"] == vid), key=lambda r: -r["score"])
        same = [r["category_id"] for r in a] == [r["category_id"] for r in b]
        video_ious = []
        for x, y in zip(a, b):
            deltas.append(abs(x["score"] - y["score"]))
            pairs = [_iou(p, q) for p, q in zip(x["segmentations"], y["segmentations"]) if p and q]
            if pairs:
                video_ious.append(sum(pairs) / len(pairs))
        ious += video_ious
        per_video.append({"video_id": vid, "same_ranking": same, "entries": len(a),
                          "mean_iou": sum(video_ious) / max(len(video_ious), 1)})
    max_delta = max(deltas, default=0.0)
    for vid in sorted({r["video_id"] for r in ref}):
        a = sorted((r for r in ref if r["video_id"] == vid), key=lambda r: -r["score"])
        b = sorted((r for r in got if r["video_id"] == vid), key=lambda r: -r["score"])
        scores = [r["score"] for r in a]
        for i in range(len(a)):
            gaps = [abs(scores[i] - scores[j]) for j in (i - 1, i + 1) if 0 <= j < len(a)]
            if min(gaps, default=1.0) > 2 * max_delta:
                separated += 1
                separated_same += i < len(b) and a[i]["category_id"] == b[i]["category_id"]
    return {"videos": len(per_video), "videos_same_top10_ranking": sum(v["same_ranking"] for v in per_video),
            "mean_mask_iou": sum(ious) / max(len(ious), 1), "min_mask_iou": min(ious, default=1.0),
            "max_score_change": max_delta, "ranks_separated_beyond_score_change": separated,
            "of_those_same_category": separated_same, "per_video": per_video}


def same_query_agreement(model, images, annotations, short_side: int = 360) -> dict:
    """Model-level view of the same videos: top-10 (query, class) pairs of float32 vs bf16, and the IoU of
    the binary masks of the *same* queries (the float32 top-10) rendered in each precision.

    ``predict vis`` results carry no query index, so with near-tied scores equal ranks can hold
    different queries; this separates precision effects on the masks from such swaps.
    """
    import copy

    import torch.nn.functional as F

    from seqformer.engine import precision
    from seqformer.inference.vis import load_frames, read_videos
    from seqformer.structures import clip_batch_from_tensor

    half = precision.prepare_model(copy.deepcopy(model), "bf16")
    same_pairs, same_set, ious = 0, 0, []
    videos = read_videos(annotations)
    for video in videos:
        frames, size = load_frames(images, video, short_side)
        samples = clip_batch_from_tensor(frames)
        pairs, rendered = {}, {}
        for name, m, amp in (("fp32", model, "none"), ("bf16", half, "bf16")):
            with torch.no_grad(), precision.autocast(amp, "cpu"):
                heads = m.detr.forward_heads(samples)
                logits = heads.logits[-1][0]
                flat = torch.topk(logits.sigmoid().flatten(), 10).indices
                pairs[name] = [(int(i) // logits.shape[-1], int(i) % logits.shape[-1]) for i in flat]
                queries = torch.tensor(sorted({q for q, _ in pairs["fp32"]}))
                masks = m.render_masks(heads, len(heads.logits) - 1, [queries], torch.tensor([frames.shape[-2:]]))[0]
            rendered[name] = F.interpolate(masks.float(), size, mode="bilinear").sigmoid() > 0.5  # [n, T, H, W]
        same_pairs += pairs["fp32"] == pairs["bf16"]
        same_set += set(pairs["fp32"]) == set(pairs["bf16"])
        inter = (rendered["fp32"] & rendered["bf16"]).flatten(2).sum(-1).float()
        union = (rendered["fp32"] | rendered["bf16"]).flatten(2).sum(-1).float()
        ious += torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean(1).tolist()
    return {"videos": len(videos), "videos_same_top10_pairs_in_order": same_pairs, "videos_same_top10_pairs": same_set,
            "mean_mask_iou_same_queries": sum(ious) / max(len(ious), 1), "min_mask_iou_same_queries": min(ious, default=1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default=str(REPO / "configs/ytvis/r50_seqformer.yaml"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from seqformer.cli import main as cli
    from seqformer.config import load_config
    from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis
    from seqformer.engine.task import get_task

    results, seconds, model_level = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = generate_synth_vis(root / "data", SynthVisConfig(num_train_videos=1, num_val_videos=args.videos,
                                                                 num_frames=args.frames, seed=0))
        torch.manual_seed(0)
        model = get_task("vis").build_model(load_config(args.config, args.overrides))
        torch.save({"model": model.state_dict()}, root / "r50.pth")  # the released checkpoints' layout
        for amp in ("none", "bf16"):
            out = root / f"{amp}.json"
            t0 = time.perf_counter()
            assert cli(["predict", "vis", "--config", args.config, "--weights", str(root / "r50.pth"),
                        "--images", str(paths["valid_images"]), "--annotations", str(paths["valid_ann"]),
                        "--out", str(out), "--device", "cpu", f"eval.amp={amp}", *args.overrides]) == 0
            seconds[amp] = time.perf_counter() - t0
            results[amp] = json.loads(out.read_text())
        cfg = load_config(args.config, args.overrides)
        model.eval()
        model_level = same_query_agreement(model, paths["valid_images"], paths["valid_ann"], cfg.data.val_short_side)
    report = agreement(results["none"], results["bf16"])
    print(json.dumps({k: v for k, v in report.items() if k != "per_video"}, indent=1))
    for v in report["per_video"]:
        print(v)
    print("same queries:", json.dumps(model_level))
    print(f"predict vis, {args.videos} videos x {args.frames} frames: float32 {seconds['none']:.1f} s, "
          f"bf16 {seconds['bf16']:.1f} s ({seconds['none'] / seconds['bf16']:.2f}x); "
          f"load average {os.getloadavg()[0]:.1f}, {args.threads} threads")


if __name__ == "__main__":
    main()
