"""Text report of a JHMDB-21 / UCF101-24 evaluation: the per-class table and the detection counts.

Shared by ``seqformer evaluate jhmdb|ucf24`` and ``seqformer demo jhmdb`` (tools do not import each other).
"""
from __future__ import annotations

VIDEO_KEYS = ("0.2", "0.5", "0.75", "0.5:0.95")


def format_table(result: dict) -> str:
    names = list(result["frame_per_class"])
    width = max(len(n) for n in names + ["mAP", "class"])
    video = "video_per_class" in result
    columns = ["frame@0.5"] + ([f"video@{k}" for k in VIDEO_KEYS] if video else [])
    lines = [f"{'class':<{width}}  " + "  ".join(f"{c:>14}" for c in columns)]

    def row(name: str, values: list[float]) -> str:
        return f"{name:<{width}}  " + "  ".join(f"{v:>14.4f}" for v in values)

    for name in names:
        values = [result["frame_per_class"][name]]
        if video:
            values += [result["video_per_class"][k][name] for k in VIDEO_KEYS]
        lines.append(row(name, values))
    totals = [result["frame_mAP"]] + ([result["video_mAP"][k] for k in VIDEO_KEYS] if video else [])
    lines.append(row("mAP", totals))
    return "\n".join(lines)


def format_counts(counts: dict) -> str:
    text = (f"frame detections: {counts['frame_detections']} evaluated, "
            f"{counts['frame_detections_outside_split']} skipped (videos outside the split's test list)")
    if "tubes" in counts:
        text += (f"\ntubes: {counts['tubes']} evaluated ({counts['tubes_after_nms']} after tube NMS at 0.3), "
                 f"{counts['tubes_outside_split']} skipped (videos outside the split's test list)")
    return text
