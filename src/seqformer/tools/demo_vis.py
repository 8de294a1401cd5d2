"""``seqformer demo vis``: the whole VIS workflow on synthetic data, on a CPU, in minutes.

synthetic YouTube-VIS-format set -> train the tiny config -> predict the held-out videos ->
evaluate (official ytvoseval semantics) -> GIF of predictions + training-curve plot.  Every step is
the same code a user runs on real YouTube-VIS (``seqformer synth|train|predict|evaluate``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ytvis" / "tiny_synth.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo_vis", help="folder for data, checkpoints, results, plots")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--train-videos", type=int, default=48)
    parser.add_argument("--val-videos", type=int, default=64,
                        help="held-out videos; fewer give a noisier AP (16 overstated it by up to 0.12)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from seqformer.config import load_config, save_config
    from seqformer.data.ytvis_synth import SYNTH_CATEGORIES, SynthVisConfig, generate_synth_vis
    from seqformer.engine.logger import plot_training_curves
    from seqformer.engine.trainer import Trainer
    from seqformer.evaluation.ytvis_eval import evaluate_ytvis, format_ytvis_table
    from seqformer.tasks.vis import VISTask, vis_paths
    from seqformer.utils.visualize import render_vis_gif

    t_start = time.time()
    out = Path(args.out)
    data_dir = out / "data"
    counts = _existing_video_counts(data_dir)
    if counts == (args.train_videos, args.val_videos):
        print(f"[1/5] reusing the synthetic data in {data_dir}")
    else:
        if counts is not None:
            print(f"[1/5] {data_dir} holds {counts[0]} train / {counts[1]} held-out videos, "
                  f"{args.train_videos} / {args.val_videos} asked for: regenerating")
        print(f"[1/5] generating synthetic YouTube-VIS-format data in {data_dir}")
        generate_synth_vis(data_dir, SynthVisConfig(num_train_videos=args.train_videos, num_val_videos=args.val_videos))
    # The demo evaluates once, after training (step 4), so validation during training would only repeat it.
    defaults = [f"data.ytvis_path={data_dir}", f"train.output_dir={out / 'train'}", "train.val_freq=0"]
    cfg = load_config(args.config, defaults + args.overrides)
    print(f"[2/5] training {args.config} for {cfg.optim.epochs} epochs (outputs in {cfg.train.output_dir})")
    task = VISTask()
    trainer = Trainer(cfg, task, progress=not args.no_progress)
    trainer.fit()
    model = trainer.model.eval()
    print("[3/5] predicting the held-out videos")
    results = task.predict(model, cfg, trainer.device)
    results_path = out / "results_valid.json"
    results_path.write_text(json.dumps(results))
    print("[4/5] evaluating (official YouTube-VIS semantics)")
    img_dir, ann = vis_paths(cfg, "val")
    stats = evaluate_ytvis(ann, results)
    print(format_ytvis_table(stats))
    (out / "metrics.json").write_text(json.dumps(stats, indent=2))
    print("[5/5] rendering predictions and training curves")
    videos = json.loads(Path(ann).read_text())["videos"]
    names = {c["id"]: c["name"] for c in SYNTH_CATEGORIES}
    gifs = [render_vis_gif(img_dir, v, results, names, out / f"predictions_{v['id']}.gif") for v in videos[:2]]
    plot_training_curves(str(Path(cfg.train.output_dir) / "log.jsonl"), str(out / "training_curves.png"))
    save_config(cfg, out / "config.yaml")
    print(f"done in {time.time() - t_start:.0f} s: AP {stats['AP']:.3f}, AP50 {stats['AP50']:.3f}; "
          f"wrote {results_path}, {out / 'metrics.json'}, {', '.join(map(str, gifs))}, {out / 'training_curves.png'}")
    from seqformer.inference.video_vis import render_held_out  # `seqformer infer vis` on one held-out video
    render_held_out(model, cfg, trainer.device, img_dir / Path(videos[0]["file_names"][0]).parent, out / "infer")
    return 0


def _existing_video_counts(data_dir: Path) -> tuple[int, int] | None:
    """(train, held-out) video counts of a synthetic set already in ``data_dir``, or None if there is none.

    The generator is deterministic, so a set with the asked-for counts is exactly what it would write again.
    """
    files = [data_dir / "annotations" / f"instances_{split}_sub.json" for split in ("train", "valid")]
    if not all(f.is_file() for f in files):
        return None
    try:
        train, valid = (len(json.loads(f.read_text())["videos"]) for f in files)
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: write it again
    return train, valid
