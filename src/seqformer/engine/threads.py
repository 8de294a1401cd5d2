"""How many CPU threads torch uses, chosen from the cores this process may actually run on.

torch's default is the machine's physical core count, whatever else runs there.  On a shared machine
(several trainings, a test suite, other users) every process then starts that many threads and they fight
over the same cores: the measured cost was 10-20x slower iterations (docs/benchmarks.md, "CPU threads").
The default here is the size of the process's CPU affinity set (``os.sched_getaffinity``: what a container,
``taskset`` or SLURM actually grants), divided among the processes of one node, capped so that a large
host does not spawn threads whose synchronisation costs more than they compute.  An ``OMP_NUM_THREADS``
set in the environment is the user's choice and is kept as the default.
"""
from __future__ import annotations

import os

import torch

MAX_DEFAULT_THREADS = 32


def available_cores() -> int:
    """Cores this process may run on (affinity set where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # macOS / Windows have no sched_getaffinity
        return max(os.cpu_count() or 1, 1)


def default_num_threads(local_processes: int = 1) -> int:
    """``OMP_NUM_THREADS`` when set, else the available cores shared among ``local_processes`` processes
    on this node (at least 1, at most ``MAX_DEFAULT_THREADS``)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(available_cores() // max(local_processes, 1), MAX_DEFAULT_THREADS))


def set_num_threads(requested: int | None, local_processes: int = 1) -> int:
    """Set torch's intra-op thread count (``requested``, or the default when None / <= 0); returns it."""
    n = requested if requested and requested > 0 else default_num_threads(local_processes)
    torch.set_num_threads(n)
    return n


def describe(device: torch.device, threads: int) -> str:
    """``device cpu, 2 CPU threads (2 cores available)``: the line a run prints before it starts, with a hint
    when other work already keeps the cores busy (the measured case where fewer threads ran 10x faster)."""
    line = f"device {device}, {threads} CPU thread{'s' if threads != 1 else ''} ({available_cores()} cores available)"
    load = busy_load()
    if device.type == "cpu" and threads > 1 and load is not None:
        line += (f"; the machine is busy (load average {load:.1f} on {os.cpu_count()} cores): if iterations are "
                 f"slow, try --threads 1")
    return line


def busy_load() -> float | None:
    """The 1-minute load average when it exceeds the machine's core count (other work is waiting), else None."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return load if load > (os.cpu_count() or 1) else None


THREADS_HELP = ("torch CPU threads (default: OMP_NUM_THREADS if set, else the cores available to this process, "
                "%d here, shared among the processes of a node); when other jobs share the cores, fewer run faster")


def threads_help() -> str:
    return THREADS_HELP % available_cores()
