"""``seqformer synth vis``: write a synthetic YouTube-VIS-format dataset (see ``seqformer.data.ytvis_synth``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis

HELP = {"num_train_videos": "videos in train/", "num_val_videos": "videos in valid/ (ground truth kept)",
        "num_test_videos": "videos in test/ (a third split; 0 = none)", "num_frames": "frames per video",
        "height": "frame height", "width": "frame width", "max_objects": "objects per video are drawn in 1..N",
        "seed": "the dataset is a pure function of the settings and this seed", "jpeg_quality": "JPEG quality"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (train/, valid/, annotations/ are created)")
    defaults = SynthVisConfig()
    for f in fields(SynthVisConfig):
        value = getattr(defaults, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(value), default=value, help=HELP.get(f.name, f.name.replace("_", " ")))


def run(args: argparse.Namespace) -> int:
    paths = generate_synth_vis(args.out, SynthVisConfig(**{f.name: getattr(args, f.name) for f in fields(SynthVisConfig)}))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0
