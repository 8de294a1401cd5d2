"""Merge the GPU benchmark parts (PARTS_DIR/*.json) into OUT_DIR/results.json and OUT_DIR/results.md, goals marked.

Usage: ``python benchmarks/gpu/report.py PARTS_DIR OUT_DIR``.

Goals (issue 14, H200): Triton kernel fwd+bwd at the encoder shape >= 1.0x the original CUDA kernel
and >= 5x the pure-PyTorch path; bf16 training step >= 2.5x the float32 pure-PyTorch step; r50
inference >= 150 frames/s at 360p.  A part that was skipped or failed is reported as such.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PARTS = ["tests", "cuda_op_build", "kernel", "model_train", "model_infer", "model_predict", "ddp_step"]


def _load(out: Path) -> dict[str, dict]:
    parts = {}
    for name in PARTS:
        path = out / f"{name}.json"
        parts[name] = json.loads(path.read_text()) if path.is_file() else {"status": "missing", "reason": "not run"}
    return parts


def _row(rows, **match):
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def goals(parts: dict[str, dict]) -> list[dict]:
    out = []

    def goal(name, value, target, unit="x"):
        met = None if value is None else value >= target
        out.append({"goal": name, "measured": value, "target": target, "unit": unit, "met": met})

    k = parts["kernel"].get("rows", [])
    tri = _row(k, shape="encoder", **{"pass": "fwd+bwd"}, dtype="float32", impl="triton")
    pyt = _row(k, shape="encoder", **{"pass": "fwd+bwd"}, dtype="float32", impl="pytorch")
    cop = _row(k, shape="encoder", **{"pass": "fwd+bwd"}, dtype="float32", impl="cuda-op")
    goal("Triton fwd+bwd vs torch-ms-deform-attn (encoder, fp32)",
         cop["median_ms"] / tri["median_ms"] if tri and cop else None, 1.0)
    goal("Triton fwd+bwd vs pure PyTorch (encoder, fp32)", pyt["median_ms"] / tri["median_ms"] if tri and pyt else None, 5.0)
    t = parts["model_train"].get("rows", [])
    base = _row(t, impl="pytorch", amp="none")
    best = _row(t, impl="triton", amp="bf16")
    goal("bf16 training step (triton) vs fp32 pure-PyTorch step", base["s_per_iter"] / best["s_per_iter"]
         if base and best else None, 2.5)
    i = parts["model_infer"].get("rows", [])
    fps = [r["frames_per_s"] for r in i if r["frames"] == 36]
    goal("r50 inference frames/s at 360p (36-frame clip, best setting)", max(fps) if fps else None, 150.0, "frames/s")
    return out


def markdown(parts: dict[str, dict], goal_rows: list[dict]) -> str:
    env = next((p["env"] for p in parts.values() if "env" in p), None)
    if env is None:
        from _common import environment

        env = environment()
    lines = [f"# GPU benchmarks ({env.get('gpu', 'no GPU')}, torch {env.get('torch')}, triton {env.get('triton')}, "
             f"{env.get('date', '')})", "", "| part | status | note |", "|---|---|---|"]
    for name in PARTS:
        p = parts[name]
        lines.append(f"| {name} | {p.get('status')} | {p.get('reason', p.get('summary', ''))} |")
    lines += ["", "## Goals", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    for g in goal_rows:
        val = "-" if g["measured"] is None else f"{g['measured']:.2f} {g['unit']}"
        met = "not measured" if g["met"] is None else ("yes" if g["met"] else "no")
        lines.append(f"| {g['goal']} | {val} | {g['target']} {g['unit']} | {met} |")
    k = parts["kernel"].get("rows", [])
    if k:
        lines += ["", "## Kernel (r50, 360x640 x 5 frames)", "",
                  "| shape | pass | dtype | impl | median ms | max diff out | max diff grads |", "|---|---|---|---|---|---|---|"]
        for r in k:
            grads = ", ".join(f"{d:.1e}" for d in r["max_diff_grads"]) or "-"
            lines.append(f"| {r['shape']} (Lq {r['lq']}) | {r['pass']} | {r['dtype']} | {r['impl']} | "
                         f"{r['median_ms']:.3f} | {r['max_diff_out']:.1e} | {grads} |")
    for name, title, cols in (
        ("model_train", "Training step (r50, 2 clips x 5 frames, 384x640)", ["impl", "amp", "s_per_iter", "peak_mem_gb", "loss"]),
        ("model_infer", "Inference (r50, 360x640 clip, heads + top-10 masks)",
         ["frames", "impl", "amp", "s_per_clip", "frames_per_s", "peak_mem_gb"]),
        ("model_predict", "`seqformer predict vis` end to end", ["impl", "amp", "seconds", "videos_per_s", "frames_per_s"]),
    ):
        rows = parts[name].get("rows", [])
        if rows:
            lines += ["", f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for r in rows:
                lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    if "bf16_vs_fp32" in parts["model_predict"]:
        lines += ["", f"predict vis bf16 vs fp32 agreement: {parts['model_predict']['bf16_vs_fp32']}"]
    if parts["ddp_step"].get("status") == "ok":
        d = parts["ddp_step"]
        lines += ["", f"torchrun step: backend {d['backend']}, world size {d['world_size']}, {d['ddp']}, "
                      f"pin_memory {d['pin_memory']}, loss {d['train_loss']}, {d['seconds']:.1f} s"]
    return "\n".join(lines) + "\n"


def main(parts_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = _load(Path(parts_dir))
    goal_rows = goals(parts)
    (out / "results.json").write_text(json.dumps({"parts": parts, "goals": goal_rows}, indent=1, default=str))
    (out / "results.md").write_text(markdown(parts, goal_rows))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
