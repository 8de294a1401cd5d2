"""``seqformer synth jhmdb``: a synthetic JHMDB-21 / UCF101-24-format dataset (``seqformer.data.jhmdb_synth``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from seqformer.data.jhmdb_synth import LAYOUTS, SynthJhmdbConfig, generate_synth_jhmdb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (Frames/ or rgb-images/, the GT pickle, dataset.yaml)")
    defaults = SynthJhmdbConfig()
    for f in fields(SynthJhmdbConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        kwargs = {"choices": list(LAYOUTS)} if f.name == "layout" else {}
        parser.add_argument(flag, type=type(value), default=value, help=f"default {value}", **kwargs)


def run(args: argparse.Namespace) -> int:
    cfg = SynthJhmdbConfig(**{f.name: getattr(args, f.name) for f in fields(SynthJhmdbConfig)})
    paths = generate_synth_jhmdb(args.out, cfg)
    for key, path in paths.items():
        print(f"{key}: {path}")
    print(f"train with: seqformer train --config configs/jhmdb/tiny_synth.yaml plus the overrides in {paths['config']}")
    return 0
