"""``seqformer synth vis``: write a synthetic YouTube-VIS-format dataset (see ``seqformer.data.ytvis_synth``)."""
from __future__ import annotations

import argparse

from seqformer.data.ytvis_synth import generate_synthetic_vis


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 128x192 (HxW), got {text!r}") from None
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (train/, valid/, annotations/ are created)")
    parser.add_argument("--num-train-videos", type=int, default=24)
    parser.add_argument("--num-val-videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--size", type=parse_size, default=(128, 192), help="frame size HxW")
    parser.add_argument("--max-objects", type=int, default=3, help="objects per video are drawn in 1..N")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    paths = generate_synthetic_vis(args.out, args.num_train_videos, args.num_val_videos, args.frames, args.size,
                                   args.seed, args.max_objects)
    for key in ("train_images", "train_ann", "valid_images", "valid_ann"):
        print(f"{key}: {paths[key]}")
    return 0
