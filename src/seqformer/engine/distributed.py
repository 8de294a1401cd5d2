"""Process-group setup for torchrun and SLURM launches, and the few collectives the engine needs.

Launch modes, checked in this order:

* torchrun / ``torch.distributed.run`` (one or several nodes): ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` are set by the launcher;
* SLURM ``srun`` (one task per GPU): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``;
  ``MASTER_ADDR`` is taken from the environment or else the first host of ``SLURM_NODELIST``
  (``scontrol show hostnames``), ``MASTER_PORT`` from the environment or 29500;
* anything else: a single process, no process group.

The backend is NCCL on CUDA and Gloo on CPU.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _first_slurm_host(nodelist: str) -> str:
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"cannot resolve MASTER_ADDR from SLURM_NODELIST={nodelist!r} with scontrol ({e}); "
                           f"set MASTER_ADDR") from None
    hosts = out.split()
    if not hosts:
        raise RuntimeError(f"scontrol returned no host for SLURM_NODELIST={nodelist!r}; set MASTER_ADDR")
    return hosts[0]


def detect_launch(env: dict[str, str] | None = None) -> DistInfo:
    """Rank layout from the launcher's environment (exports ``MASTER_*``, ``RANK``... for SLURM)."""
    env = dict(os.environ) if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        info = DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
        os.environ.setdefault("MASTER_ADDR", env.get("MASTER_ADDR") or _first_slurm_host(env["SLURM_NODELIST"]))
        os.environ.setdefault("MASTER_PORT", env.get("MASTER_PORT", "29500"))
        os.environ["RANK"] = str(info.rank)
        os.environ["WORLD_SIZE"] = str(info.world_size)
        os.environ["LOCAL_RANK"] = str(info.local_rank)
        return info
    return DistInfo()


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` = CUDA when available; in a CUDA process group each process takes ``cuda:LOCAL_RANK``
    (``info`` None: a single process)."""
    info = info or DistInfo()
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"train.device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but CUDA is not available")
        index = info.local_rank if name == "cuda" else int(name.split(":")[1])
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def init_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Detect the launch mode, pick the device and join the process group when there are several ranks."""
    info = detect_launch()
    device = resolve_device(device_name, info)
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=info.rank, world_size=info.world_size)
    return info, device


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


def reduce_mean(values: dict[str, float | torch.Tensor], device: torch.device) -> dict[str, float]:
    """Average scalar values over ranks (every rank gets the result), as plain floats.

    Every rank must pass the same keys; keys are sorted so the tensor layout agrees across ranks.
    """
    keys = sorted(values)
    if not keys:
        return {}
    flat = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device).detach().reshape(()) for k in keys])
    if is_dist():
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
    return dict(zip(keys, flat.tolist()))


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, indexed by rank (``[obj]`` without a process group)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank_share(num_items: int) -> range:
    """Indices of this rank's share of ``num_items`` for distributed prediction (every ``world``-th from ``rank``)."""
    if not is_dist():
        return range(num_items)
    return range(dist.get_rank(), num_items, dist.get_world_size())


def gather_in_order(indexed_rows: list[tuple[int, list[T]]]) -> list[T] | None:
    """On rank 0, every rank's rows in the order one process would produce them; ``None`` elsewhere.

    Each rank passes ``(item index, rows of that item)`` for the items of :func:`rank_share`.
    Sorting by item index restores the single-process order exactly, which matters: with score
    ties the official AVA evaluator's result depends on the order of keyframes and rows, so
    distributed validation must not reorder them (it would change the mAP).
    """
    parts = all_gather_objects(indexed_rows)
    if is_dist() and dist.get_rank() != 0:
        return None
    merged = sorted((item for part in parts for item in part), key=lambda item: item[0])
    return [row for _, rows in merged for row in rows]
