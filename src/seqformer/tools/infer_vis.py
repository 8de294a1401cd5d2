"""``seqformer infer vis``: a video file (or frame folder) in, masks video + YouTube-VIS results out."""
from __future__ import annotations

import argparse

from seqformer.inference.video_common import add_video_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_video_arguments(parser, "VIS config, e.g. configs/ytvis/r50_seqformer.yaml")
    parser.add_argument("--categories", default=None,
                        help="YouTube-VIS json whose 'categories' name the classes (default: the config's "
                             "validation annotations, else YouTube-VIS 2019 names for 42-class models)")


def run(args: argparse.Namespace) -> int:
    from seqformer.inference.video_common import load_inference_model, load_video_config, open_inputs
    from seqformer.inference.video_vis import category_names, infer_vis, vis_options

    inputs, out_dir = open_inputs(args)
    cfg = load_video_config(args)
    device, model = load_inference_model(args, cfg, "vis")
    opts = vis_options(cfg, args.short_side, args.max_side, args.score_threshold)
    categories = category_names(cfg, args.categories)
    for video in inputs:
        written = infer_vis(model, video, cfg, device, out_dir, opts, categories, render=not args.no_render,
                            render_max_side=args.render_max_side, render_upscale=args.render_upscale,
                            amp=cfg.eval.amp, progress=not args.no_progress)
        print(f"{video.path}: wrote {', '.join(str(p) for p in written.values())}")
    return 0
