"""``seqformer evaluate vis``: YouTube-VIS / OVIS mask AP with the official ``ytvoseval`` semantics."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from seqformer.evaluation.ytvis_eval import YTVISEvalError, evaluate_ytvis, format_ytvis_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groundtruth", required=True, type=Path,
                        help="YouTube-VIS annotation json (videos, categories, annotations)")
    parser.add_argument("--results", required=True, type=Path,
                        help="results json: list of {video_id, category_id, score, segmentations}")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the 12 numbers (AP, AP50, ..., ARl) to this json file")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for parsing and mask intersections (default: min(2, CPUs))")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        stats = evaluate_ytvis(args.groundtruth, args.results, workers=args.workers)
    except YTVISEvalError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_ytvis_table(stats))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(stats, indent=2) + "\n")
    return 0
