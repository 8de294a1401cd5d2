"""``seqformer predict ava``: official AVA detection CSV (``video_id,second,x1,y1,x2,y2,action_id,score``)."""
from __future__ import annotations

import argparse

from seqformer.config import load_config
from seqformer.engine import precision
from seqformer.engine.distributed import resolve_device
from seqformer.engine.threads import describe, set_num_threads, threads_help
from seqformer.utils.output_paths import check_writable_file
from seqformer.weight_files import load_model_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="AVA config, e.g. configs/ava/csn50_seqformer_ava21.yaml")
    parser.add_argument("--weights", required=True, help="trained checkpoint (.pth)")
    parser.add_argument("--out", default="detections.csv", help="detection CSV to write")
    parser.add_argument("--split", default="val", choices=["train", "val"],
                        help="which CSV's keyframes to predict (data.ava_val_csv for val)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (auto: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.engine.task import get_task
    from seqformer.inference.ava import write_rows

    cfg = load_config(args.config, args.overrides)
    check_writable_file(args.out, "--out")  # before the whole split is predicted, not after
    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    task = get_task("ava")
    model = task.build_model(cfg)
    load_model_weights(model, args.weights)
    precision.prepare_model(model.to(device).eval(), cfg.eval.amp, cfg.eval.compile)
    with precision.autocast(cfg.eval.amp, device):
        rows = task.predict(model, cfg, device, split=args.split, progress=not args.no_progress)
    write_rows(args.out, rows)
    keyframes = len({(r[0], r[1]) for r in rows})
    print(f"wrote {len(rows)} detection rows for {keyframes} keyframes to {args.out}")
    return 0
