"""``seqformer synth ava``: write a synthetic AVA-format dataset (see ``seqformer.data.ava_synth``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (frames/, annotations/, dataset.yaml)")
    defaults = SynthAvaConfig()
    for f in fields(SynthAvaConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"default {value}")


def run(args: argparse.Namespace) -> int:
    cfg = SynthAvaConfig(**{f.name: getattr(args, f.name) for f in fields(SynthAvaConfig)})
    paths = generate_synth_ava(args.out, cfg)
    for key, path in paths.items():
        print(f"{key}: {path}")
    print(f"train with: seqformer train <config> with `_base_: {paths['config']}` or the overrides in it "
          f"(ava_fps={cfg.fps}, ava_start_second={cfg.start_second})")
    return 0
