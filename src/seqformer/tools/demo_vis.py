"""``seqformer demo vis``: the whole VIS workflow on synthetic data, on a CPU, in minutes.

synthetic YouTube-VIS-format set (train / valid / test) -> train the tiny config, validating on ``valid``
and keeping the best checkpoint by its AP -> predict the ``test`` videos with that checkpoint -> evaluate
(official ytvoseval semantics) -> GIFs of predictions + training-curve plot.  The reported split is never
the one that chose the checkpoint.  Every step is the same code a user runs on real YouTube-VIS
(``seqformer synth|train|predict|evaluate``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seqformer.engine.threads import threads_help

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ytvis" / "tiny_synth.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo_vis", help="folder for data, checkpoints, results, plots")
    parser.add_argument("--config", default=None, help="training config (default: the repository's configs/ytvis/tiny_synth.yaml)")
    parser.add_argument("--train-videos", type=int, default=48, help="synthetic training videos")
    parser.add_argument("--val-videos", type=int, default=16,
                        help="validation videos: choose the checkpoint (train.val_freq), never reported")
    parser.add_argument("--test-videos", type=int, default=64,
                        help="test videos: the reported AP; fewer give a noisier AP (16 overstated it by up to 0.12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (train.seed=N draws training)")
    parser.add_argument("--gif-scale", type=int, default=3, help="upscale factor of the prediction GIFs")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--resume", action="store_true", help="continue the training run in OUT/train")
    parser.add_argument("--overwrite", action="store_true", help="delete the training run in OUT/train and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars: one line per epoch")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.config import load_config, save_config
    from seqformer.data.ytvis_synth import SYNTH_CATEGORIES, SynthVisConfig, generate_synth_vis
    from seqformer.engine.logger import plot_training_curves
    from seqformer.engine.run_folder import prepare_run_folder
    from seqformer.engine.trainer import Trainer
    from seqformer.evaluation.ytvis_eval import evaluate_ytvis, format_ytvis_table
    from seqformer.inference.vis import predict_videos
    from seqformer.tasks.vis import VISTask
    from seqformer.utils.demo_data import prepare_synthetic_data
    from seqformer.utils.visualize import render_vis_gif
    from seqformer.weight_files import load_model_weights

    t_start = time.time()
    args.config = args.config or str(CONFIG)
    out = Path(args.out)
    data_dir = out / "data"
    # Validation on `valid` every epoch picks checkpoint_best; only the last and the best are kept.
    defaults = [f"data.ytvis_path={data_dir}", f"train.output_dir={out / 'train'}", "train.val_freq=1",
                "train.keep_checkpoints=0", f"train.resume={'auto' if args.resume else 'null'}",
                f"train.overwrite={'true' if args.overwrite else 'false'}"]
    if args.threads is not None:
        defaults.append(f"train.num_threads={args.threads}")
    cfg = load_config(args.config, defaults + args.overrides)
    prepare_run_folder(cfg.train.output_dir, cfg.train.resume, cfg.train.overwrite, delete=False)  # fail fast
    print("[1/5] synthetic YouTube-VIS-format data (train / valid / test)")
    prepare_synthetic_data(data_dir, SynthVisConfig(num_train_videos=args.train_videos, num_val_videos=args.val_videos,
                                                    num_test_videos=args.test_videos, seed=args.seed),
                           generate_synth_vis, say=lambda line: print("      " + line))
    print(f"[2/5] training {args.config} for {cfg.optim.epochs} epochs, validating on {args.val_videos} valid videos")
    task = VISTask()
    trainer = Trainer(cfg, task, progress=not args.no_progress)
    fit = trainer.fit()
    model = trainer.model.eval()
    best_path = Path(cfg.train.output_dir) / "checkpoint_best.pth"
    chosen = f"last epoch ({cfg.optim.epochs})"
    if fit["best"] and best_path.is_file():
        load_model_weights(model, best_path)
        chosen = f"epoch {fit['best']['epoch'] + 1} (valid AP {fit['best']['value']:.3f})"
    print(f"[3/5] predicting the {args.test_videos} test videos with the checkpoint of {chosen}")
    img_dir, ann = data_dir / "test" / "JPEGImages", data_dir / "annotations" / "instances_test_sub.json"
    results = [r for _, rows in predict_videos(model, cfg, trainer.device, img_dir, ann,
                                               progress=not args.no_progress) for r in rows]
    results_path = out / "results_test.json"
    results_path.write_text(json.dumps(results))
    print("[4/5] evaluating on the test videos (official YouTube-VIS semantics)")
    stats = evaluate_ytvis(ann, results)
    print(format_ytvis_table(stats))
    (out / "metrics.json").write_text(json.dumps({"split": "test", **stats, "checkpoint": chosen}, indent=2))
    print("[5/5] rendering predictions and training curves")
    videos = json.loads(Path(ann).read_text())["videos"]
    names = {c["id"]: c["name"] for c in SYNTH_CATEGORIES}
    gifs = [render_vis_gif(img_dir, v, results, names, out / f"predictions_test_{v['id']}.gif", scale=args.gif_scale)
            for v in videos[:2]]
    curves = out / "training_curves.png"
    plot_training_curves(str(Path(cfg.train.output_dir) / "log.jsonl"), str(curves), metrics=["AP", "AP50", "AR10"],
                         final_metrics={"test AP": stats["AP"], "test AP50": stats["AP50"]})
    save_config(cfg, out / "config.yaml")
    from seqformer.inference.video_vis import render_held_out  # `seqformer infer vis` on one test video

    rendered = render_held_out(model, cfg, trainer.device, img_dir / Path(videos[0]["file_names"][0]).parent,
                               out / "infer")
    print(f"done in {time.time() - t_start:.0f} s: test AP {stats['AP']:.3f}, AP50 {stats['AP50']:.3f} "
          f"(checkpoint of {chosen})\n"
          f"  results: {results_path}, {out / 'metrics.json'}\n"
          f"  open:    {rendered.get('video', '')}, {', '.join(map(str, gifs))}, {curves}\n"
          f"  model:   {best_path if best_path.is_file() else Path(cfg.train.output_dir) / 'checkpoint.pth'}")
    return 0
