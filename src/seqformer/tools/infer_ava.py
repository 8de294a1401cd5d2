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
    from seqformer.data.video_input import InputVideoError
    from seqformer.inference.video_ava import AvaOptions, action_labels, infer_ava
    from seqformer.inference.video_common import load_inference_model, load_video_config, open_inputs

    if args.keyframe_step < 1:
        raise InputVideoError(f"--keyframe-step must be a whole number of seconds >= 1, got {args.keyframe_step}")
    inputs, out_dir = open_inputs(args)
    cfg = load_video_config(args)
    class_ids, names = action_labels(cfg, args.labelmap)  # a bad label map fails before the model loads
    device, model = load_inference_model(args, cfg, "ava")
    opts = AvaOptions(args.short_side or cfg.data.ava_val_short_side, args.keyframe_step, args.score_threshold)
    for video in inputs:
        written = infer_ava(model, video, cfg, device, out_dir, opts, class_ids, names, render=not args.no_render,
                            render_max_side=args.render_max_side, render_upscale=args.render_upscale,
                            amp=cfg.eval.amp, progress=not args.no_progress)
        print(f"{video.path}: wrote {', '.join(str(p) for p in written.values())}")
    return 0
