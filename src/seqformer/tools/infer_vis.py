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
    from seqformer.config import load_config
    from seqformer.data.video_input import expand_inputs, open_input
    from seqformer.engine import precision
    from seqformer.engine.distributed import resolve_device
    from seqformer.engine.task import get_task
    from seqformer.engine.threads import describe, set_num_threads
    from seqformer.inference.video_common import prepare_out_dir
    from seqformer.inference.video_vis import category_names, infer_vis, vis_options
    from seqformer.weight_files import load_model_weights

    paths = expand_inputs(args.input)  # inputs and output folder first: they fail in seconds, not after a model loads
    inputs = [open_input(p, args.fps, args.start, args.end, args.on_decode_error) for p in paths]
    out_dir = prepare_out_dir(args.out)
    cfg = load_config(args.config, [*args.overrides, *([f"eval.amp={args.amp}"] if args.amp else [])])
    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    model = get_task("vis").build_model(cfg)
    load_model_weights(model, args.weights)
    precision.prepare_model(model.to(device).eval(), cfg.eval.amp)
    opts = vis_options(cfg, args.short_side, args.max_side, args.score_threshold)
    categories = category_names(cfg, args.categories)
    for video in inputs:
        written = infer_vis(model, video, cfg, device, out_dir, opts, categories, render=not args.no_render,
                            render_max_side=args.render_max_side, render_upscale=args.render_upscale,
                            amp=cfg.eval.amp, progress=not args.no_progress)
        print(f"{video.path}: wrote {', '.join(str(p) for p in written.values())}")
    return 0
