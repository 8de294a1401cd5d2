"""``seqformer infer ava``: a video file (or frame folder) in, actor boxes + actions video and AVA CSV out."""
from __future__ import annotations

import argparse

from seqformer.inference.video_common import add_video_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_video_arguments(parser, "AVA config, e.g. configs/ava/csn50_seqformer_ava21.yaml")
    parser.add_argument("--keyframe-step", type=int, default=1, help="seconds between keyframes")
    parser.add_argument("--labelmap", default=None,
                        help="label map .pbtxt of the model's classes (default: the config's data.ava_labelmap)")


def run(args: argparse.Namespace) -> int:
    from seqformer.config import load_config
    from seqformer.data.video_input import InputVideoError, expand_inputs, open_input
    from seqformer.engine import precision
    from seqformer.engine.distributed import resolve_device
    from seqformer.engine.task import get_task
    from seqformer.engine.threads import describe, set_num_threads
    from seqformer.inference.video_ava import AvaOptions, action_labels, infer_ava
    from seqformer.inference.video_common import prepare_out_dir
    from seqformer.weight_files import load_model_weights

    if args.keyframe_step < 1:
        raise InputVideoError(f"--keyframe-step must be a whole number of seconds >= 1, got {args.keyframe_step}")
    paths = expand_inputs(args.input)  # inputs and output folder first: they fail in seconds, not after a model loads
    inputs = [open_input(p, args.fps, args.start, args.end, args.on_decode_error) for p in paths]
    out_dir = prepare_out_dir(args.out)
    cfg = load_config(args.config, [*args.overrides, *([f"eval.amp={args.amp}"] if args.amp else [])])
    class_ids, names = action_labels(cfg, args.labelmap)
    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    model = get_task("ava").build_model(cfg)
    load_model_weights(model, args.weights)
    precision.prepare_model(model.to(device).eval(), cfg.eval.amp)
    opts = AvaOptions(args.short_side or cfg.data.ava_val_short_side, args.keyframe_step, args.score_threshold)
    for video in inputs:
        written = infer_ava(model, video, cfg, device, out_dir, opts, class_ids, names, render=not args.no_render,
                            render_max_side=args.render_max_side, render_upscale=args.render_upscale,
                            amp=cfg.eval.amp, progress=not args.no_progress)
        print(f"{video.path}: wrote {', '.join(str(p) for p in written.values())}")
    return 0
