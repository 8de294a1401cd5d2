"""Two CPU processes (Gloo, DDP) train exactly like one process with the same global batch."""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from seqformer.engine.distributed import cleanup, init_distributed
from seqformer.engine.logger import read_log
from seqformer.engine.trainer import Trainer

from engine_toy import ToyTask, toy_config

GLOBAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deterministic_config(output_dir: str, batch_size: int):
    cfg = toy_config(output_dir, val_freq=0)
    cfg.optim.batch_size = batch_size
    return cfg


def _ddp_worker(rank: int, world_size: int, port: int, output_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info, device = init_distributed("cpu")
    assert info.world_size == world_size and torch.distributed.get_backend() == "gloo"
    try:
        cfg = _deterministic_config(output_dir, GLOBAL_BATCH // world_size)
        Trainer(cfg, ToyTask(augment=False, dropout=0.0), progress=False, dist_info=info, device=device).fit()
    finally:
        cleanup()


def test_two_gloo_processes_match_one_process(tmp_path):
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp")), nprocs=2, join=True)

    torch.set_num_threads(1)
    single = Trainer(_deterministic_config(str(tmp_path / "single"), GLOBAL_BATCH),
                     ToyTask(augment=False, dropout=0.0), progress=False)
    single.fit()

    ddp_state = torch.load(tmp_path / "ddp" / "checkpoint.pth", weights_only=True)["model"]
    for name, param in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], param, atol=1e-5, rtol=0, msg=name)
    first = torch.load(tmp_path / "single" / "checkpoint0000.pth", weights_only=True)["model"]
    assert any((first[k] - v).abs().max() > 1e-3 for k, v in single.model.state_dict().items())  # it trained

    ddp_iters, _ = read_log(tmp_path / "ddp" / "log.jsonl")
    single_iters, _ = read_log(tmp_path / "single" / "log.jsonl")
    assert [r["step"] for r in ddp_iters] == [r["step"] for r in single_iters] == list(range(8))
    torch.testing.assert_close([r["loss"] for r in ddp_iters], [r["loss"] for r in single_iters],
                               atol=1e-6, rtol=0)
    lines = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 8 + 2  # written by rank 0 only: 8 iterations, 2 epochs
