"""Shared helpers of the GPU benchmark scripts: one JSON file per part, skips that say why, CUDA timing."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
# BENCH_DEVICE=cpu: a smoke run of the scripts' own logic on the CPU with tiny models and sizes
# (numbers meaningless); the real run uses the GPU.
DEVICE = os.environ.get("BENCH_DEVICE", "cuda")
SMOKE = DEVICE == "cpu"


def write_part(out_dir: str | Path, name: str, data: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<name>.json`` (status ok / skipped / failed, reason, rows) and echo a line."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"part": name, **data}
    path.write_text(json.dumps(data, indent=1, default=str))
    print(f"[{name}] {data.get('status')}: {data.get('reason', '')} -> {path}", flush=True)
    return path


def skip_without_cuda(out_dir: str | Path, name: str) -> bool:
    """True (after writing a 'skipped' record) when no CUDA GPU is visible (and this is no CPU smoke run)."""
    if torch.cuda.is_available() or SMOKE:
        return False
    write_part(out_dir, name, {"status": "skipped", "reason": "no CUDA GPU visible (dry run: the GPU part is skipped)"})
    return True


def environment() -> dict[str, Any]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "host": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def peak_memory_gb() -> float:
    return torch.cuda.max_memory_allocated() / 1e9 if DEVICE == "cuda" else 0.0


def reset_peak_memory() -> None:
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def cuda_time(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10) -> dict[str, float]:
    """Median and min milliseconds of ``fn`` between CUDA events (after ``warmup`` calls); wall clock on the CPU."""
    if SMOKE:
        warmup, repeats = 1, 2
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        if DEVICE == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def r50_levels(height: int = 360, width: int = 640) -> list[tuple[int, int]]:
    """Feature-level sizes of r50 (strides 8, 16, 32, then a stride-2 conv on C5; each conv rounds up).

    360x640 gives 45x80, 23x40, 12x20, 6x10 = 4,820 tokens per frame (shared/reference).
    """
    sizes = [(-(-height // 8), -(-width // 8))]
    for _ in range(3):
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes
