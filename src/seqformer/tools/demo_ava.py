"""``seqformer demo ava``: the whole action-detection workflow on synthetic AVA-format data, on a CPU.

synthetic AVA-format set (actions defined by motion; train / val / test) -> train the tiny config,
validating on ``val`` and keeping the best checkpoint by its frame-mAP -> predict the ``test`` videos with
that checkpoint -> official frame-mAP@0.5 -> per-class AP chart, keyframe picture, training-curve plot.
The reported split is never the one that chose the checkpoint.  The same commands and files a user has on
real AVA (``seqformer synth|train|predict|evaluate ava``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from seqformer.engine.threads import threads_help

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ava" / "tiny_synth.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo_ava", help="folder for data, checkpoints, results, plots")
    parser.add_argument("--config", default=None, help="training config (default: the repository's configs/ava/tiny_synth.yaml)")
    parser.add_argument("--train-videos", type=int, default=24, help="synthetic training videos")
    parser.add_argument("--val-videos", type=int, default=6,
                        help="validation videos: choose the checkpoint (train.val_freq), never reported")
    parser.add_argument("--test-videos", type=int, default=12, help="test videos: the reported frame-mAP")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (train.seed=N draws training)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--resume", action="store_true", help="continue the training run in OUT/train")
    parser.add_argument("--overwrite", action="store_true", help="delete the training run in OUT/train and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars: one line per epoch")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.config import apply_overrides, load_config, overrides_from_mapping, save_config
    from seqformer.data.ava_format import read_labelmap
    from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava
    from seqformer.engine.logger import plot_training_curves
    from seqformer.engine.run_folder import prepare_run_folder
    from seqformer.engine.trainer import Trainer
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.evaluation.ava_report import format_table, save_bar_chart
    from seqformer.inference.ava import write_rows
    from seqformer.tasks.ava import AVATask
    from seqformer.utils.ava_picture import render_ava_keyframes
    from seqformer.utils.demo_data import prepare_synthetic_data
    from seqformer.weight_files import load_model_weights

    t_start = time.time()
    args.config = args.config or str(CONFIG)
    out = Path(args.out)
    data_dir = out / "data"
    # Validation on `val` every epoch picks checkpoint_best; only the last and the best are kept.
    defaults = [f"train.output_dir={out / 'train'}", "train.val_freq=1", "train.keep_checkpoints=0",
                f"train.resume={'auto' if args.resume else 'null'}",
                f"train.overwrite={'true' if args.overwrite else 'false'}"]
    if args.threads is not None:
        defaults.append(f"train.num_threads={args.threads}")
    check = load_config(args.config, defaults + args.overrides)
    prepare_run_folder(check.train.output_dir, check.train.resume, check.train.overwrite, delete=False)  # fail fast
    print("[1/5] synthetic AVA-format data (train / val / test)")
    prepare_synthetic_data(data_dir, SynthAvaConfig(num_train_videos=args.train_videos, num_val_videos=args.val_videos,
                                                    num_test_videos=args.test_videos, seed=args.seed),
                           generate_synth_ava, say=lambda line: print("      " + line))
    dataset_overrides = overrides_from_mapping(yaml.safe_load((data_dir / "dataset.yaml").read_text()))
    cfg = load_config(args.config, dataset_overrides + defaults + args.overrides)
    print(f"[2/5] training {args.config} for {cfg.optim.epochs} epochs, validating on {args.val_videos} val videos")
    task = AVATask()
    trainer = Trainer(cfg, task, progress=not args.no_progress)
    fit = trainer.fit()
    model = trainer.model.eval()
    best_path = Path(cfg.train.output_dir) / "checkpoint_best.pth"
    chosen = f"last epoch ({cfg.optim.epochs})"
    if fit["best"] and best_path.is_file():
        load_model_weights(model, best_path)
        chosen = f"epoch {fit['best']['epoch'] + 1} (val frame-mAP {fit['best']['value']:.3f})"
    print(f"[3/5] predicting the {args.test_videos} test videos with the checkpoint of {chosen}")
    test_csv, test_excl = data_dir / "annotations" / "test.csv", data_dir / "annotations" / "test_excluded_timestamps.csv"
    test_cfg = apply_overrides(load_config(args.config, dataset_overrides + defaults + args.overrides),
                               [f"data.ava_val_csv={test_csv}", f"data.ava_exclusions={test_excl}"])
    rows = task.predict(model, test_cfg, trainer.device, progress=not args.no_progress)
    det_path = out / "detections_test.csv"
    write_rows(det_path, rows)
    print("[4/5] evaluating on the test videos (official AVA frame-mAP@0.5 protocol)")
    labelmap = cfg.data.ava_eval_labelmap or cfg.data.ava_labelmap
    result = evaluate_ava(labelmap, test_csv, det_path, test_excl)
    print(format_table(result))
    (out / "metrics.json").write_text(json.dumps({"split": "test", "mAP": result["mAP"],
                                                  "per_class": result["per_class"], "checkpoint": chosen}, indent=2))
    print("[5/5] plotting per-class AP, test keyframes and training curves")
    save_bar_chart(result, out / "per_class_ap.png")
    picture = render_ava_keyframes(cfg.data.ava_frames, cfg.data.ava_frame_pattern, cfg.data.ava_fps,
                                   cfg.data.ava_start_second, rows, dict(read_labelmap(cfg.data.ava_labelmap)),
                                   out / "detections_test.png")
    curves = out / "training_curves.png"
    plot_training_curves(str(Path(cfg.train.output_dir) / "log.jsonl"), str(curves),
                         final_metrics={"test frame-mAP": result["mAP"]})
    save_config(cfg, out / "config.yaml")
    from seqformer.inference.video_ava import render_held_out  # `seqformer infer ava` on one test video

    rendered = render_held_out(model, test_cfg, trainer.device, out / "infer")
    print(f"done in {time.time() - t_start:.0f} s: test frame-mAP@0.5 {result['mAP']:.3f} (checkpoint of {chosen})\n"
          f"  results: {det_path}, {out / 'metrics.json'}\n"
          f"  open:    {rendered.get('video', '')}, {out / 'per_class_ap.png'}, {picture}, {curves}\n"
          f"  model:   {best_path if best_path.is_file() else Path(cfg.train.output_dir) / 'checkpoint.pth'}")
    return 0
