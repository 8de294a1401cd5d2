"""``seqformer evaluate ava``: AVA frame-mAP@0.5, per class equal to the reference evaluators.

``--protocol activitynet`` (default) is the official ActivityNet ``get_ava_performance.py`` as it
is since April 2020 (AVA challenge numbers); ``pyslowfast`` and ``mmaction2`` give those toolkits'
model-zoo numbers (see :mod:`seqformer.evaluation.ava_protocols` and docs/ava.md section 9).
Prints a per-class AP table, the mAP and what happened to the detection rows; optionally writes
``--json`` as ``{"mAP": float, "per_class": {"<class name>": float | null}, "protocol": str,
"detections": {fate: count}}`` (null = class left out of the mean, NaN in the reference output;
strict JSON has no NaN), and saves a per-class AP bar chart.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DEFAULT_PLOT = "ava_per_class_ap.png"


PROTOCOL_HELP = (
    "whose numbers to reproduce. activitynet (default): the official get_ava_performance.py since 2020 "
    "(AVA challenge); detections on keyframes absent from the GT CSV are ignored, on keyframes in it "
    "without an evaluated box (2-column row, other classes only) they are false positives; 50 per keyframe. "
    "pyslowfast: PySlowFast's ava_eval_helper (its model zoo); detections on any keyframe without an "
    "evaluated box are false positives; no cap, file order. mmaction2: MMAction2's ava_eval with "
    "ignore_empty_frames=True (its model zoo); only keyframes with an evaluated box are scored; no cap, "
    "float32; classes without detections left out of the mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from seqformer.evaluation.ava_protocols import PROTOCOLS

    parser.add_argument("--labelmap", required=True, help="label map .pbtxt (its ids are the evaluated classes)")
    parser.add_argument("--groundtruth", required=True,
                        help="GT CSV: video,second,x1,y1,x2,y2,action[,person] rows, and video,second rows "
                             "for annotated keyframes without a box")
    parser.add_argument("--detections", required=True, help="detection CSV: video,second,x1,y1,x2,y2,action,score")
    parser.add_argument("--exclusions", default=None,
                        help="excluded timestamps CSV (video,second): these keyframes' rows are removed from both "
                             "files first (pre-2020 official option, still in PySlowFast and MMAction2)")
    parser.add_argument("--protocol", default="activitynet", choices=list(PROTOCOLS), help=PROTOCOL_HELP)
    parser.add_argument("--json", default=None, metavar="OUT", help="write results as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png",
                        help=f"per-class AP bar chart (default: next to --json as <stem>_per_class_ap.png, "
                             f"else ./{DEFAULT_PLOT})")
    parser.add_argument("--no-plot", action="store_true", help="do not save the bar chart")


def run(args: argparse.Namespace) -> int:
    from seqformer.evaluation.ava_eval import evaluate_ava
    from seqformer.evaluation.ava_report import format_detection_counts, format_table, save_bar_chart

    result = evaluate_ava(args.labelmap, args.groundtruth, args.detections, args.exclusions, protocol=args.protocol)
    for note in result.get("notes", []):
        print(f"warning: {note}", file=sys.stderr)
    print(format_table(result))
    print(format_detection_counts(result))
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

    return {"mAP": clean(result["mAP"]), "per_class": {k: clean(v) for k, v in result["per_class"].items()},
            "protocol": result["protocol"], "detections": result["detections"]}
