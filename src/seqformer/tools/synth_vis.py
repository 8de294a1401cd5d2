"""``seqformer synth vis``: write a synthetic YouTube-VIS-format dataset (see ``seqformer.data.ytvis_synth``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from seqformer.data.ytvis_synth import SynthVisConfig, generate_synth_vis


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (train/, valid/, annotations/ are created)")
    defaults = SynthVisConfig()
    for f in fields(SynthVisConfig):
        value = getattr(defaults, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(value), default=value, help=f"default {value}")


def run(args: argparse.Namespace) -> int:
    paths = generate_synth_vis(args.out, SynthVisConfig(**{f.name: getattr(args, f.name) for f in fields(SynthVisConfig)}))
    for key in ("train_images", "train_ann", "valid_images", "valid_ann"):
        print(f"{key}: {paths[key]}")
    return 0
