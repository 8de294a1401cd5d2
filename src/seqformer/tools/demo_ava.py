"""``seqformer demo ava``: the whole action-detection workflow on synthetic AVA-format data, on a CPU.

synthetic AVA-format set (actions defined by motion) -> train the tiny config -> predict the held-out
videos -> official frame-mAP@0.5 -> per-class AP chart + training-curve plot.  The same commands and
files a user has on real AVA (``seqformer synth|train|predict|evaluate ava``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ava" / "tiny_synth.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo_ava", help="folder for data, checkpoints, results, plots")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--train-videos", type=int, default=24)
    parser.add_argument("--val-videos", type=int, default=6)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def _flatten(data: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def run(args: argparse.Namespace) -> int:
    from seqformer.config import load_config, save_config
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
    from seqformer.engine.logger import plot_training_curves
    from seqformer.engine.trainer import Trainer
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.evaluation.ava_report import format_table, save_bar_chart
    from seqformer.inference.ava import write_rows
    from seqformer.tasks.ava import AVATask

    t_start = time.time()
    out = Path(args.out)
    data_dir = out / "data"
    if not (data_dir / "dataset.yaml").is_file():
        print(f"[1/5] generating synthetic AVA-format data in {data_dir}")
        generate_synth_ava(data_dir, SynthAvaConfig(num_train_videos=args.train_videos, num_val_videos=args.val_videos))
    dataset_overrides = _flatten(yaml.safe_load((data_dir / "dataset.yaml").read_text()))
    cfg = load_config(args.config, dataset_overrides + [f"train.output_dir={out / 'train'}"] + args.overrides)
    print(f"[2/5] training {args.config} for {cfg.optim.epochs} epochs (outputs in {cfg.train.output_dir})")
    task = AVATask()
    trainer = Trainer(cfg, task, progress=not args.no_progress)
    trainer.fit()
    model = trainer.model.eval()
    print("[3/5] predicting the held-out videos")
    rows = task.predict(model, cfg, trainer.device, progress=not args.no_progress)
    det_path = out / "detections_val.csv"
    write_rows(det_path, rows)
    print("[4/5] evaluating (official AVA frame-mAP@0.5 protocol)")
    labelmap = cfg.data.ava_eval_labelmap or cfg.data.ava_labelmap
    result = evaluate_ava(labelmap, cfg.data.ava_val_csv, det_path, cfg.data.ava_exclusions)
    print(format_table(result))
    (out / "metrics.json").write_text(json.dumps({"mAP": result["mAP"], "per_class": result["per_class"]}, indent=2))
    print("[5/5] plotting per-class AP and training curves")
    save_bar_chart(result, out / "per_class_ap.png")
    plot_training_curves(str(Path(cfg.train.output_dir) / "log.jsonl"), str(out / "training_curves.png"))
    save_config(cfg, out / "config.yaml")
    print(f"done in {time.time() - t_start:.0f} s: frame-mAP@0.5 {result['mAP']:.3f}; wrote {det_path}, "
          f"{out / 'metrics.json'}, {out / 'per_class_ap.png'}, {out / 'training_curves.png'}")
    from seqformer.inference.video_ava import render_held_out  # `seqformer infer ava` on one held-out video
    render_held_out(model, cfg, trainer.device, out / "infer")
    return 0
