"""``seqformer predict vis``: YouTube-VIS results.json (and the server zip) from a checkpoint."""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import load_config
from ..engine.distributed import DistInfo
from ..engine.distributed import resolve_device as engine_resolve_device
from ..engine import precision
from ..engine.predict_vis import iter_predictions, read_videos
from ..models.build import build_model
from ..models.weights import load_model_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="model config, e.g. configs/ytvis/r50_seqformer.yaml")
    parser.add_argument("--weights", required=True, help="released or trained checkpoint (.pth)")
    parser.add_argument("--images", required=True, help="JPEGImages folder (frame paths are relative to it)")
    parser.add_argument("--annotations", required=True, help="YouTube-VIS-format json with 'videos'")
    parser.add_argument("--out", default="results.json")
    parser.add_argument("--zip", action="store_true", help="also write <out>.zip with results.json at its root")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def resolve_device(name: str) -> torch.device:
    """The inference device for a single process (same rules as training's ``train.device``)."""
    return engine_resolve_device(name, DistInfo())


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    device = resolve_device(args.device)
    model = build_model(cfg)
    load_model_weights(model, args.weights)
    model.to(device).eval()
    precision.prepare_model(model, cfg.eval.amp, cfg.eval.compile)
    videos = read_videos(args.annotations)
    results: list[dict] = []
    preds = iter_predictions(model, args.images, videos, device, short_side=cfg.data.val_short_side,
                             topk=cfg.eval.topk, mask_threshold=cfg.eval.mask_threshold, null_score=cfg.eval.null_score,
                             max_frames_per_clip=cfg.eval.max_frames_per_clip, clip_overlap=cfg.eval.clip_overlap,
                             max_size=cfg.data.val_max_size)
    with precision.autocast(cfg.eval.amp, device):
        for entries in tqdm(preds, total=len(videos), desc="videos", unit="video"):
            results.extend(entries)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results))
    tmp.replace(out)
    print(f"wrote {len(results)} instances for {len(videos)} videos to {out}")
    if args.zip:
        zpath = out.with_suffix(".zip")
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(out, arcname="results.json")
        print(f"wrote {zpath}")
    return 0
