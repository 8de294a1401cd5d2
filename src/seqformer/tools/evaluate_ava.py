"""``seqformer evaluate ava``: AVA frame-mAP@0.5 with the official ActivityNet protocol.

Prints a per-class AP table and the mAP, optionally writes ``--json`` as
``{"mAP": float, "per_class": {"<class name>": float | null}}`` (null = class without ground truth,
NaN in the official output; strict JSON has no NaN), and saves a per-class AP bar chart.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DEFAULT_PLOT = "ava_per_class_ap.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labelmap", required=True, help="label map .pbtxt (its ids are the evaluated classes)")
    parser.add_argument("--groundtruth", required=True, help="GT CSV: video,second,x1,y1,x2,y2,action[,person]")
    parser.add_argument("--detections", required=True, help="detection CSV: video,second,x1,y1,x2,y2,action,score")
    parser.add_argument("--exclusions", default=None, help="excluded timestamps CSV: video,second")
    parser.add_argument("--ignore-keyframes-without-gt", action="store_true",
                        help="drop detections on keyframes without ground truth (default: false positives, "
                             "as the official code counts them); for evaluating on a subset of the videos")
    parser.add_argument("--json", default=None, metavar="OUT", help="write results as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png",
                        help=f"per-class AP bar chart (default: next to --json as <stem>_per_class_ap.png, "
                             f"else ./{DEFAULT_PLOT})")
    parser.add_argument("--no-plot", action="store_true", help="do not save the bar chart")


def run(args: argparse.Namespace) -> int:
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.evaluation.ava_report import format_table, save_bar_chart

    result = evaluate_ava(args.labelmap, args.groundtruth, args.detections, args.exclusions,
                          ignore_keyframes_without_gt=args.ignore_keyframes_without_gt)
    for note in result.get("notes", []):
        print(f"warning: {note}", file=sys.stderr)
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(_strict_json(result), f, indent=2)
        print(f"wrote {args.json}")
    if not args.no_plot:
        plot_path = Path(args.plot) if args.plot else _default_plot_path(args.json)
        save_bar_chart(result, plot_path)
        print(f"wrote {plot_path}")
    return 0


def _default_plot_path(json_path: str | None) -> Path:
    if json_path is None:
        return Path(DEFAULT_PLOT)
    json_file = Path(json_path)
    return json_file.with_name(json_file.stem + "_per_class_ap.png")


def _strict_json(result: dict) -> dict:
    def clean(x: float) -> float | None:
        return None if math.isnan(x) else x

    return {"mAP": clean(result["mAP"]), "per_class": {k: clean(v) for k, v in result["per_class"].items()}}
