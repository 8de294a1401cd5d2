"""``seqformer predict vis``: YouTube-VIS results.json (and the server zip) from a checkpoint."""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

from seqformer.config import load_config
from seqformer.engine import precision
from seqformer.engine.distributed import resolve_device
from seqformer.engine.task import get_task
from seqformer.engine.threads import describe, set_num_threads, threads_help
from seqformer.inference.vis import predict_videos, read_videos
from seqformer.utils.output_paths import check_writable_file
from seqformer.weight_files import load_model_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="model config, e.g. configs/ytvis/r50_seqformer.yaml")
    parser.add_argument("--weights", required=True, help="released or trained checkpoint (.pth)")
    parser.add_argument("--images", required=True, help="JPEGImages folder (frame paths are relative to it)")
    parser.add_argument("--annotations", required=True, help="YouTube-VIS-format json with 'videos'")
    parser.add_argument("--out", default="results.json", help="results json to write")
    parser.add_argument("--zip", action="store_true",
                        help="also write the server's zip next to --out, named after it without its suffix "
                             "(results.json -> results.zip), holding results.json at its root")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (auto: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    check_writable_file(args.out, "--out")  # before hours of prediction, not after
    if args.zip:
        check_writable_file(Path(args.out).with_suffix(".zip"), "--zip")
    read_videos(args.annotations)  # a malformed annotation file fails before the model is built
    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    model = get_task("vis").build_model(cfg)
    load_model_weights(model, args.weights)
    model.to(device).eval()
    precision.prepare_model(model, cfg.eval.amp, cfg.eval.compile)
    with precision.autocast(cfg.eval.amp, device):
        per_video = predict_videos(model, cfg, device, args.images, args.annotations, progress=True)
    results = [entry for _, entries in per_video for entry in entries]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results))
    tmp.replace(out)
    print(f"wrote {len(results)} instances for {len(per_video)} videos to {out}")
    if args.zip:
        zpath = out.with_suffix(".zip")
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(out, arcname="results.json")
        print(f"wrote {zpath}")
    return 0
