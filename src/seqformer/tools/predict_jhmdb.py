"""``seqformer predict jhmdb|ucf24``: per-frame detections CSV and linked video tubes JSON of the test videos.

Slides clips over every video of ``test_videos[split - 1]`` and links the clip tubelets into tubes
(docs/jhmdb_ucf.md, "Prediction"); both files are what ``seqformer evaluate jhmdb|ucf24`` reads.
"""
from __future__ import annotations

import argparse

from seqformer.config import load_config
from seqformer.engine import precision
from seqformer.engine.distributed import resolve_device
from seqformer.engine.threads import describe, set_num_threads, threads_help
from seqformer.utils.output_paths import check_writable_file
from seqformer.weight_files import load_model_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="e.g. configs/jhmdb/csn152_seqformer_jhmdb.yaml")
    parser.add_argument("--weights", required=True, help="trained checkpoint (.pth)")
    parser.add_argument("--frames-csv", default="frame_detections.csv", help="per-frame detections CSV to write")
    parser.add_argument("--tubes", default="tubes.json", help="video tubes JSON to write")
    parser.add_argument("--split", type=int, default=None, help="1-based split (default: data.jhmdb_split)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (auto: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (line-oriented output for logs)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.engine.task import get_task
    from seqformer.inference.jhmdb import write_predictions

    overrides = list(args.overrides) + ([f"data.jhmdb_split={args.split}"] if args.split is not None else [])
    cfg = load_config(args.config, overrides)
    check_writable_file(args.frames_csv, "--frames-csv")  # before the whole split is predicted, not after
    check_writable_file(args.tubes, "--tubes")
    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    task = get_task(getattr(args, "_task", None) or cfg.model.task)
    model = task.build_model(cfg)
    load_model_weights(model, args.weights)
    precision.prepare_model(model.to(device).eval(), cfg.eval.amp, cfg.eval.compile)
    with precision.autocast(cfg.eval.amp, device):
        predictions = task.predict(model, cfg, device, progress=not args.no_progress)
    rows, tubes = write_predictions(predictions, args.frames_csv, args.tubes, cfg.eval.tube_frame_nms)
    print(f"wrote {rows} frame detections to {args.frames_csv} and {tubes} tubes of {len(predictions)} videos "
          f"to {args.tubes}")
    return 0
