"""Human-readable AVA results: the per-class AP table printed by ``evaluate ava`` and the demo, and a bar chart."""
from __future__ import annotations

import math
from pathlib import Path


def format_table(result: dict) -> str:
    width = max([len(name) for name in result["per_class"]] + [len("mAP")])
    lines = [f"{'class':<{width}}  AP@0.5"]
    for name, ap in result["per_class"].items():
        lines.append(f"{name:<{width}}  {'n/a (no GT)' if math.isnan(ap) else f'{ap:.4f}'}")
    lines.append(f"{'mAP':<{width}}  {result['mAP']:.4f}")
    return "\n".join(lines)


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
    ax.set_title("AVA per-class AP (classes with ground truth)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
