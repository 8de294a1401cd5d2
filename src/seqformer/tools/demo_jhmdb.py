"""``seqformer demo jhmdb``: the whole action-tube workflow on synthetic JHMDB-format data, on a CPU.

synthetic set (``Frames/<video>/%05d.png`` + ``JHMDB-GT.pkl``, actions defined by motion, tubes that start
and end inside videos) -> train the tiny config on split 1 -> slide clips over the held-out test videos and
link tubes -> ACT/MOC frame-mAP@0.5 and video-mAP.  The same commands and files a user has on the real
datasets (``seqformer synth|train|predict|evaluate jhmdb``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from seqformer.engine.threads import threads_help

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "jhmdb" / "tiny_synth.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo_jhmdb", help="folder for data, checkpoints, detections, metrics")
    parser.add_argument("--config", default=str(CONFIG), help="tube-detection config to train")
    parser.add_argument("--videos", type=int, default=30, help="synthetic videos (a third are split 1's test set)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (line-oriented output for logs)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.config import load_config, overrides_from_mapping, save_config
    from seqformer.data.jhmdb_synth import SynthJhmdbConfig, generate_synth_jhmdb
    from seqformer.engine.task import get_task
    from seqformer.engine.trainer import Trainer
    from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb
    from seqformer.evaluation.jhmdb_report import format_counts, format_table
    from seqformer.inference.jhmdb import write_predictions

    t_start = time.time()
    out = Path(args.out)
    data_dir = out / "data"
    if not (data_dir / "dataset.yaml").is_file():
        print(f"[1/4] generating synthetic JHMDB-format data in {data_dir}")
        generate_synth_jhmdb(data_dir, SynthJhmdbConfig(num_videos=args.videos))
    dataset_overrides = overrides_from_mapping(yaml.safe_load((data_dir / "dataset.yaml").read_text()))
    defaults = [f"train.output_dir={out / 'train'}"] + ([f"train.num_threads={args.threads}"] if args.threads else [])
    cfg = load_config(args.config, dataset_overrides + defaults + args.overrides)
    print(f"[2/4] training {args.config} for {cfg.optim.epochs} epochs (outputs in {cfg.train.output_dir})")
    task = get_task(cfg.model.task)
    trainer = Trainer(cfg, task, progress=not args.no_progress)
    trainer.fit()
    t_train = time.time()
    print(f"[3/4] predicting the test videos of split {cfg.data.jhmdb_split} (sliding clips, linked tubes)")
    predictions = task.predict(trainer.model.eval(), cfg, trainer.device, progress=not args.no_progress)
    frames_csv, tubes_json = out / "frame_detections.csv", out / "tubes.json"
    rows, tubes = write_predictions(predictions, frames_csv, tubes_json, cfg.eval.tube_frame_nms)
    print(f"[4/4] evaluating {rows} frame detections and {tubes} tubes (ACT/MOC protocol)")
    result = evaluate_jhmdb(cfg.data.jhmdb_groundtruth, cfg.data.jhmdb_split, frames_csv, tubes_json)
    print(format_table(result))
    print(format_counts(result["counts"]))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    save_config(cfg, out / "config.yaml")
    t_end = time.time()
    print(f"done in {t_end - t_start:.0f} s (training {t_train - t_start:.0f} s): frame-mAP@0.5 "
          f"{result['frame_mAP']:.3f}, video-mAP@0.5 {result['video_mAP']['0.5']:.3f}; wrote {frames_csv}, "
          f"{tubes_json}, {out / 'metrics.json'}")
    return 0
