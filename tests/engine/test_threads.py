"""CPU thread defaults: the cores this process may use, OMP_NUM_THREADS respected, shared among local ranks."""
from __future__ import annotations

import os

import torch

from seqformer.engine import threads


def test_default_is_the_affinity_set_shared_among_local_processes(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    assert threads.available_cores() == 6
    assert threads.default_num_threads() == 6
    assert threads.default_num_threads(local_processes=4) == 1  # 6 // 4, never 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(256)), raising=False)
    assert threads.default_num_threads() == threads.MAX_DEFAULT_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_num_threads() == 3


def test_set_num_threads_applies_and_describes(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert threads.set_num_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.set_num_threads(None) == 2 and torch.get_num_threads() == 2
        assert threads.describe(torch.device("cpu"), 1).startswith("device cpu, 1 CPU thread (")
    finally:
        torch.set_num_threads(before)


def test_busy_machine_hint(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 8.0, 7.0))
    assert threads.describe(torch.device("cpu"), 2).endswith("(load average 9.5 on 2 cores): if iterations are "
                                                              "slow, try --threads 1")
    assert "busy" not in threads.describe(torch.device("cpu"), 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert "busy" not in threads.describe(torch.device("cpu"), 2)
