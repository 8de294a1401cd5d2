"""``seqformer train --config FILE [key=value ...]``: train the task named by ``model.task``.

The same command runs single-process or under a launcher (``scripts/dist_train.sh`` for
torchrun, ``scripts/slurm_train.sh`` for SLURM); the engine reads the rank layout from the
environment.  ``--resume``, ``--pretrain-weights`` and ``--output-dir`` are shorthands for the
``train.*`` options; ``--resume auto`` continues from ``OUTPUT_DIR/checkpoint.pth`` if it exists.
An output folder that already holds a run is refused unless ``--resume`` continues it or ``--overwrite``
starts over (see :mod:`seqformer.engine.run_folder`).
"""
from __future__ import annotations

import argparse
import logging

from seqformer.config import Config, load_config, validate
from seqformer.engine.threads import threads_help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (may use _base_)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. optim.lr=1e-4 train.output_dir=outputs/x")
    parser.add_argument("--resume", help="training checkpoint to continue from, or 'auto' "
                        "(OUTPUT_DIR/checkpoint.pth if it exists, else start clean)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete an earlier run's files in the output folder and start clean")
    parser.add_argument("--pretrain-weights", "--pretrain_weights", dest="pretrain_weights",
                        help="weights to initialise from (class_embed dropped unless train.jointfinetune=true)")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", help="where checkpoints and logs go")
    parser.add_argument("--threads", type=int, default=None, help=threads_help() + " (train.num_threads)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars: one summary line per epoch (for log files)")


def build_config(args: argparse.Namespace) -> Config:
    """The resolved config: file, then ``key=value`` overrides, then the ``--`` shorthands."""
    cfg = load_config(args.config, args.overrides)
    if args.resume:
        cfg.train.resume = args.resume
    if args.pretrain_weights:
        cfg.train.pretrain_weights = args.pretrain_weights
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if args.overwrite:
        cfg.train.overwrite = True
    if args.threads is not None:
        cfg.train.num_threads = args.threads
    validate(cfg)
    return cfg


def run(args: argparse.Namespace) -> int:
    from seqformer.engine.distributed import cleanup, init_distributed
    from seqformer.engine.task import get_task
    from seqformer.engine.trainer import Trainer

    cfg = build_config(args)
    info, device = init_distributed(cfg.train.device)
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING,
                        format=f"%(asctime)s [rank {info.rank}] %(levelname)s %(message)s")
    try:
        task = get_task(cfg.model.task)
        result = Trainer(cfg, task, progress=not args.no_progress, dist_info=info, device=device).fit()
        best = result["best"]
        if info.is_main:
            out = cfg.train.output_dir
            print(f"done: checkpoints, log.jsonl and tensorboard/ in {out}" + (
                f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch'] + 1} ({out}/checkpoint_best.pth)"
                if best else ""))
    finally:
        cleanup()
    return 0
