"""``seqformer synth ava``: write a synthetic AVA-format dataset (see ``seqformer.data.ava_synth``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from seqformer.data.ava_synth import SynthAvaConfig, generate_synth_ava

HELP = {"num_train_videos": "videos in annotations/train.csv", "num_val_videos": "videos in annotations/val.csv",
        "num_test_videos": "videos in annotations/test.csv (a third split; 0 = none)",
        "seconds": "video length; keyframes at the segment centres", "segment_seconds": "seconds per action segment",
        "fps": "frames per second", "start_second": "second of the first frame (AVA: 900)",
        "min_actors": "fewest actors per video", "max_actors": "most actors per video",
        "walk_speed": "px/s", "jump_height": "px", "spin_speed": "deg/s", "pulse_amplitude": "relative size change",
        "action_prob": "probability of each of jump/spin/pulse per segment", "jpeg_quality": "JPEG quality",
        "seed": "the dataset is a pure function of the settings and this seed",
        "write_videos": "also write videos/<id>.mp4 (for the PyAV clip reader)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (frames/, annotations/, dataset.yaml)")
    defaults = SynthAvaConfig()
    for f in fields(SynthAvaConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=HELP.get(f.name))
        else:
            parser.add_argument(flag, type=type(value), default=value, help=HELP.get(f.name, f.name.replace("_", " ")))


def run(args: argparse.Namespace) -> int:
    cfg = SynthAvaConfig(**{f.name: getattr(args, f.name) for f in fields(SynthAvaConfig)})
    paths = generate_synth_ava(args.out, cfg)
    for key, path in paths.items():
        print(f"{key}: {path}")
    print(f"train with: seqformer train <config> with `_base_: {paths['config']}` or the overrides in it "
          f"(ava_fps={cfg.fps}, ava_start_second={cfg.start_second})")
    return 0
