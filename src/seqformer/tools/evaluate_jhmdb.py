"""``seqformer evaluate jhmdb|ucf24``: frame-mAP@0.5 and video-mAP with the ACT/MOC protocol.

Prints a per-class table (frame AP@0.5 and, with ``--tubes``, video AP@0.2/0.5/0.75/0.5:0.95) and
the detection counts (rows/tubes on videos outside the split's test list are skipped and counted);
``--json`` writes ``{"frame_mAP", "frame_per_class", "video_mAP", "video_per_class", "counts"}``
(fractions).  The protocol and the file formats are in ``docs/jhmdb_ucf.md``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DATASET_NAMES = {"jhmdb": "JHMDB-21", "ucf24": "UCF101-24"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groundtruth", required=True, help="ACT ground-truth pickle (JHMDB-GT.pkl, UCF101v2-GT.pkl)")
    parser.add_argument("--split", type=int, default=1, help="1-based split; its test videos are evaluated")
    parser.add_argument("--detections", required=True,
                        help="per-frame detections CSV: video,frame,x1,y1,x2,y2,label,score (header row)")
    parser.add_argument("--tubes", default=None, help="video tubes JSON for video-mAP: "
                        '[{"video", "label", "score", "boxes": [[frame, x1, y1, x2, y2], ...]}]')
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    from seqformer.evaluation.jhmdb_eval import evaluate_jhmdb
    from seqformer.evaluation.jhmdb_report import format_counts, format_table

    result = evaluate_jhmdb(args.groundtruth, args.split, args.detections, args.tubes)
    dataset = DATASET_NAMES.get(getattr(args, "_task", None) or "", "JHMDB-21 / UCF101-24")
    print(f"{dataset}, split {args.split} (ground truth {args.groundtruth})")
    print(format_table(result))
    print(format_counts(result["counts"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0
