"""Training logs: a JSON-lines file, TensorBoard scalars and a matplotlib summary plot.

``log.jsonl`` holds one object per line with ``"type": "iter"`` (every ``train.log_every``
iterations: epoch, iter, step, loss terms, lr) or ``"type": "epoch"`` (mean train losses,
learning rates, validation metrics, wall time).  Only rank 0 writes; the file is appended to, so
a resumed run continues the same log, after :func:`truncate_log` has cut it back to the checkpoint's
epoch (an interrupted epoch's iterations would otherwise appear twice).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class RunLogger:
    """Writes ``log.jsonl`` and TensorBoard events under ``output_dir``; a no-op when not ``enabled``."""

    def __init__(self, output_dir: str | Path, enabled: bool, tensorboard: bool = True,
                 purge_step: int | None = None, resume_epoch: int | None = None):
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        if resume_epoch is not None:
            truncate_log(output_dir / "log.jsonl", resume_epoch)
        self._file = open(output_dir / "log.jsonl", "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(output_dir / "tensorboard"), purge_step=purge_step)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record) + "\n")

    def log_iter(self, record: dict[str, Any]) -> None:
        """``record`` needs ``step``; every other numeric value becomes the scalar ``train/<key>``."""
        if not self.enabled:
            return
        self._write({"type": "iter", **record})
        if self._tb is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "iter") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, record["step"])

    def log_epoch(self, record: dict[str, Any], step: int) -> None:
        """``record`` needs ``epoch``; numeric values become ``epoch/<key>`` scalars at iteration ``step``
        (one step axis for all scalars, so ``purge_step`` on resume drops stale events of both kinds)."""
        if not self.enabled:
            return
        self._write({"type": "epoch", **record})
        if self._tb is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"epoch/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def truncate_log(log_jsonl: str | Path, epoch: int) -> int:
    """Drop the records of epochs >= ``epoch`` (and a half-written last line) from ``log_jsonl``.

    A run resumed at ``epoch`` repeats those iterations; without this the log would hold them twice,
    as the TensorBoard events would without ``purge_step``.  Returns the number of lines dropped;
    the file is replaced atomically.
    """
    path = Path(log_jsonl)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines(keepends=True):
        try:
            record = json.loads(line)
            stale = int(record.get("epoch", -1)) >= epoch or not line.endswith("\n")
        except (ValueError, TypeError, AttributeError):
            stale = not line.strip() or not line.endswith("\n")  # a line cut by a kill
        if stale:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)
    return dropped


def read_log(log_jsonl: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(iteration records, epoch records)``, deduplicated by step / epoch keeping the last one."""
    iters: dict[int, dict[str, Any]] = {}
    epochs: dict[int, dict[str, Any]] = {}
    with open(log_jsonl) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{log_jsonl}:{lineno}: not a JSON line ({e.msg})") from None
            if record.get("type") == "iter":
                iters[int(record["step"])] = record
            elif record.get("type") == "epoch":
                epochs[int(record["epoch"])] = record
    return [iters[k] for k in sorted(iters)], [epochs[k] for k in sorted(epochs)]


def plot_training_curves(log_jsonl: str, out_png: str, metrics: list[str] | None = None,
                         final_metrics: dict[str, float] | None = None) -> "Figure":
    """Plot training losses per iteration and validation metrics per epoch from ``log_jsonl`` to ``out_png``.

    Auxiliary-layer terms (``loss_ce_0`` ...) are left out to keep the plot readable; ``metrics``
    selects validation metrics (default: every one with a value >= 0, since COCO-style evaluators
    report -1 for "not applicable").  ``final_metrics`` (e.g. the test AP measured after training) are
    written into the metrics panel, as dashed lines next to the validation curves or as bars without them,
    so the figure never shows an empty panel when the run was evaluated.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    iters, epochs = read_log(log_jsonl)
    if not iters and not epochs:
        raise ValueError(f"{log_jsonl}: no training records to plot")
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    loss_keys = sorted({k for r in iters for k, v in r.items() if k.startswith("loss")
                        and not k.rsplit("_", 1)[-1].isdigit() and isinstance(v, (int, float))})
    for key in loss_keys:
        points = [(r["step"], r[key]) for r in iters if key in r and math.isfinite(r[key])]
        if points:
            ax_loss.plot(*zip(*points), lw=2.0 if key == "loss" else 0.8, label=key)
    if loss_keys:
        if all(r.get(k, 1) > 0 for r in iters for k in loss_keys):
            ax_loss.set_yscale("log")
        ax_loss.legend(fontsize="x-small")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_title("training losses")
    if metrics is None:
        metrics = sorted({k[len("val_"):] for r in epochs for k, v in r.items()
                          if k.startswith("val_") and isinstance(v, (int, float)) and v >= 0})
    for name in metrics:
        points = [(r["epoch"] + 1, r[f"val_{name}"]) for r in epochs if f"val_{name}" in r]
        if points:
            ax_val.plot(*zip(*points), marker="o", label=f"val {name}")
    final = {k: v for k, v in (final_metrics or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)}
    if metrics:
        for i, (name, value) in enumerate(final.items()):
            ax_val.axhline(value, ls="--", lw=1.0, color=f"C{len(metrics) + i}", label=f"{name} {value:.3f}")
        ax_val.set_xlabel("epoch")
    elif final:
        ax_val.barh(list(final), list(final.values()), color=[f"C{i}" for i in range(len(final))])
        for i, value in enumerate(final.values()):
            ax_val.text(value, i, f" {value:.3f}", va="center")
        ax_val.set_xlabel("value")
    title = "validation metrics" if metrics else "final metrics" if final else "no metrics logged"
    ax_val.set_title(title + (" (dashed: " + ", ".join(final) + ")" if metrics and final else ""))
    if metrics:
        ax_val.legend(fontsize="x-small")
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return fig
