"""Human-readable AVA results: the per-class AP table printed by ``evaluate ava`` and the demo, the
line that says which detection rows were not scored and why, and a per-class bar chart."""
from __future__ import annotations

import math
from pathlib import Path


def format_table(result: dict) -> str:
    width = max([len(name) for name in result["per_class"]] + [len("mAP")])
    lines = [f"{'class':<{width}}  AP@0.5"]
    for name, ap in result["per_class"].items():
        lines.append(f"{name:<{width}}  {'n/a (not scored)' if math.isnan(ap) else f'{ap:.4f}'}")
    lines.append(f"{'mAP':<{width}}  {result['mAP']:.4f}")
    return "\n".join(lines)


def format_detection_counts(result: dict) -> str:
    """One line: how many detection rows were scored and why the others were not."""
    counts = result["detections"]
    reasons = {"not_in_labelmap": "class not in the label map", "excluded": "excluded keyframe",
               "keyframe_not_scored": "keyframe not scored by the protocol", "over_cap": "beyond 50 per keyframe",
               "invalid_box": "x1 >= x2 or y1 >= y2"}
    skipped = [f"{counts[k]:,} {text}" for k, text in reasons.items() if counts.get(k)]
    return (f"protocol {result['protocol']}: {counts['scored']:,} detection rows scored"
            + (f"; not scored: {', '.join(skipped)}" if skipped else ""))


def save_bar_chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [(name, ap) for name, ap in result["per_class"].items() if not math.isnan(ap)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(scored) + 2), 5))
    ax.bar(range(len(scored)), [ap for _, ap in scored], color="tab:blue")
    ax.set_xticks(range(len(scored)))
    ax.set_xticklabels([name for name, _ in scored], rotation=90, fontsize=7)
    ax.axhline(result["mAP"], color="tab:red", linestyle="--", label=f"mAP {result['mAP']:.4f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP@0.5 (frame)")
    ax.set_title(f"AVA per-class AP ({result['protocol']} protocol, scored classes)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
