"""``seqformer split vis``: deterministic held-out split of a YouTube-VIS train json by video.

Rule: every video gets the key ``sha256("<seed>:<video id>")``; videos are sorted by that key and the first
``round(val_fraction * n)`` (at least 1 and at most n - 1 when 0 < fraction < 1 and n >= 2) form the val split.
The key depends only on the seed and the video id, so the split is the same on every Python/numpy version and
does not change when the json lists videos in another order.  Both outputs are complete official-format files
(``info``, ``licenses``, ``categories`` copied; videos and their annotations partitioned, ids unchanged); the val
file keeps its ground truth.  No images are copied: both files refer to the original ``train/JPEGImages`` folder,
so point the val image directory at it.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from seqformer.data.ytvis_format import load_ytvis_json, save_ytvis_json
from seqformer.errors import SeqFormerError


class SplitError(SeqFormerError, ValueError):
    """Options of ``split vis`` that cannot be honoured; the message names the option."""


def split_video_ids(video_ids: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train ids, val ids), each sorted ascending."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n = len(video_ids)
    n_val = round(val_fraction * n)
    if 0.0 < val_fraction < 1.0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = sorted(video_ids, key=lambda v: (hashlib.sha256(f"{seed}:{v}".encode()).hexdigest(), v))
    val = set(ranked[:n_val])
    return sorted(v for v in video_ids if v not in val), sorted(val)


def split_ytvis(data: dict, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """Partition a parsed YouTube-VIS json into (train, val) dicts."""
    train_ids, val_ids = split_video_ids([v["id"] for v in data["videos"]], val_fraction, seed)
    parts = []
    for ids in (set(train_ids), set(val_ids)):
        part = {k: v for k, v in data.items() if k not in ("videos", "annotations")}
        part["videos"] = [v for v in data["videos"] if v["id"] in ids]
        part["annotations"] = [a for a in data.get("annotations", []) if a["video_id"] in ids]
        parts.append(part)
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="YouTube-VIS train json to split")
    parser.add_argument("--out-dir", required=True, help="folder for the two json files")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the videos held out")
    parser.add_argument("--seed", type=int, default=0, help="a different seed draws a different split")
    parser.add_argument("--train-name", default="instances_train_sub.json", help="file name of the train part")
    parser.add_argument("--val-name", default="instances_val_sub.json", help="file name of the held-out part")


def run(args: argparse.Namespace) -> int:
    source = Path(args.annotations).resolve()
    outputs = [Path(args.out_dir) / args.train_name, Path(args.out_dir) / args.val_name]
    if any(p.resolve() == source for p in outputs):
        raise SplitError(f"--out-dir {args.out_dir}: refusing to overwrite the input {source}; "
                         "choose another --out-dir or names")
    if not 0.0 <= args.val_fraction <= 1.0:
        raise SplitError(f"--val-fraction must be in [0, 1], got {args.val_fraction}")
    train, val = split_ytvis(load_ytvis_json(source).data, args.val_fraction, args.seed)
    for path, part in zip(outputs, (train, val)):
        save_ytvis_json(part, path)
        print(f"{path}: {len(part['videos'])} videos, {len(part['annotations'])} annotations")
    return 0
